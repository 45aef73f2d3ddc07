package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
)

// JoinGroup drives the group coordinator the SDK uses. The coordinator gives a
// member its id on its first join (Kafka's MEMBER_ID_REQUIRED round trip is not
// needed). The group's protocol metadata and assignments are bytes to the
// coordinator, so a group's members must all be Kafka clients or all be qxd SDK
// members: the two encode their subscriptions differently.
func handleJoinGroup(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.JoinGroupRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		rebalance := req.RebalanceTimeoutMillis
		if req.Version == 0 {
			rebalance = req.SessionTimeoutMillis
		}
		jr := groups.JoinRequest{Group: req.Group, MemberID: req.MemberID, ClientID: c.clientID, ClientHost: c.clientHost(),
			SessionTimeout:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
			RebalanceTimeout: time.Duration(rebalance) * time.Millisecond,
			ProtocolType:     req.ProtocolType, Unleased: true}
		if req.InstanceID != nil {
			jr.InstanceID = *req.InstanceID
		}
		for _, p := range req.Protocols {
			jr.Protocols = append(jr.Protocols, groups.Protocol{Name: p.Name, Metadata: p.Metadata})
		}
		r, err := c.b.Join(ctx, jr)
		if err != nil {
			resp.ErrorCode = code(err)
			resp.Generation = -1
			resp.MemberID = req.MemberID
			return resp
		}
		pt, proto := req.ProtocolType, r.Protocol
		resp.Generation, resp.ProtocolType, resp.Protocol = r.Generation, &pt, &proto
		resp.LeaderID, resp.MemberID, resp.SkipAssignment = r.Leader, r.MemberID, r.SkipAssignment
		for _, m := range r.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
			if m.InstanceID != "" {
				id := m.InstanceID
				rm.InstanceID = &id
			}
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}
}
