package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
)

// SyncGroup: the leader sends every member's assignment; each member gets its own.
func handleSyncGroup(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.SyncGroupRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		sr := groups.SyncRequest{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation}
		if req.InstanceID != nil {
			sr.InstanceID = *req.InstanceID
		}
		if len(req.GroupAssignment) > 0 {
			sr.Assignments = map[string][]byte{}
			for _, a := range req.GroupAssignment {
				sr.Assignments[a.MemberID] = a.MemberAssignment
			}
		}
		r, err := c.b.Sync(ctx, sr)
		resp.ErrorCode = code(err)
		resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
		if err == nil {
			resp.MemberAssignment = r.Assignment
		}
		return resp
	}
}
