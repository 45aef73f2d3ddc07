package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
)

// LeaveGroup removes members (one before v3, a list from v3); a static member
// named by its instance id leaves for good, as with Kafka's admin removal.
func handleLeaveGroup(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.LeaveGroupRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		if req.Version < 3 {
			resp.ErrorCode = code(c.b.Leave(ctx, groups.LeaveRequest{Group: req.Group, MemberID: req.MemberID}))
			return resp
		}
		for _, m := range req.Members {
			lr := groups.LeaveRequest{Group: req.Group, MemberID: m.MemberID}
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
			if m.InstanceID != nil {
				lr.InstanceID = *m.InstanceID
			}
			rm.ErrorCode = code(c.b.Leave(ctx, lr))
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}
}
