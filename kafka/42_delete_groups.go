package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups deletes groups without members and their committed offsets
// (NON_EMPTY_GROUP while a group has members).
func handleDeleteGroups(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, code(c.b.DeleteGroup(ctx, g))
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
}
