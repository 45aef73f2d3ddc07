package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups deletes groups without members and their committed offsets
// (NON_EMPTY_GROUP while a group has members); v3 says why in each group's
// error message.
func handleDeleteGroups(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			err := c.b.DeleteGroup(ctx, g)
			rg.Group, rg.ErrorCode = g, code(err)
			if req.Version >= 3 {
				rg.ErrorMessage = message(err)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
}
