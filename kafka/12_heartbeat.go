package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
)

// Heartbeat keeps a member in its group; REBALANCE_IN_PROGRESS tells it to rejoin.
func handleHeartbeat(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.HeartbeatRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		hr := groups.HeartbeatRequest{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation}
		if req.InstanceID != nil {
			hr.InstanceID = *req.InstanceID
		}
		resp.ErrorCode = code(c.b.Heartbeat(ctx, hr))
		return resp
	}
}
