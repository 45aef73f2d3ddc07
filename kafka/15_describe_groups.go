package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// DescribeGroups describes groups as the coordinator holds them. Each member's
// assignment is given in Kafka's consumer format (ConsumerMemberAssignment) and its
// metadata names the topics of its assignment: the coordinator keeps assignments
// as partitions, not as the bytes the leader sent. A group that does not exist is
// Dead, as Kafka answers before v6; from v6 (KIP-1043) it is also
// GROUP_ID_NOT_FOUND, and every error has its message.
func handleDescribeGroups(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, id := range req.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = id
			d, err := c.b.DescribeGroup(ctx, id)
			switch {
			case errors.Is(err, semantics.ErrGroupIDNotFound):
				rg.State = string(groups.Dead)
				if req.Version >= 6 {
					msg := "group " + id + " does not exist"
					rg.ErrorCode, rg.ErrorMessage = semantics.ErrGroupIDNotFound.Code, &msg
				}
			case err != nil:
				rg.ErrorCode = code(err)
				if req.Version >= 6 {
					rg.ErrorMessage = message(err)
				}
			default:
				rg.State, rg.ProtocolType, rg.Protocol = string(d.State), d.ProtocolType, d.Protocol
				for _, m := range d.Members {
					rm := kmsg.NewDescribeGroupsResponseGroupMember()
					rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
					if m.InstanceID != "" {
						iid := m.InstanceID
						rm.InstanceID = &iid
					}
					var a kmsg.ConsumerMemberAssignment
					var md kmsg.ConsumerMemberMetadata
					for _, tp := range m.Partitions {
						if n := len(a.Topics); n == 0 || a.Topics[n-1].Topic != tp.Topic {
							a.Topics = append(a.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: tp.Topic})
							md.Topics = append(md.Topics, tp.Topic)
						}
						a.Topics[len(a.Topics)-1].Partitions = append(a.Topics[len(a.Topics)-1].Partitions, tp.Partition)
					}
					rm.MemberAssignment, rm.ProtocolMetadata = a.AppendTo(nil), md.AppendTo(nil)
					rg.Members = append(rg.Members, rm)
				}
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
}
