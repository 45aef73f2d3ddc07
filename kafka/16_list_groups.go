package kafka

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
)

// ListGroups lists the groups with members or committed offsets (v4: those in the
// states asked for).
func handleListGroups(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ListGroupsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		gs, err := c.b.ListGroups(ctx)
		if err != nil {
			resp.ErrorCode = code(err)
			return resp
		}
		for _, g := range gs {
			if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(s string) bool { return strings.EqualFold(s, string(g.State)) }) {
				continue
			}
			rg := kmsg.NewListGroupsResponseGroup()
			rg.Group, rg.GroupState = g.Group, string(g.State)
			rg.ProtocolType = groups.ConsumerProtocolType
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
}
