package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// FindCoordinator points at the node that runs the group coordinator. Transaction
// coordinators (key type 1) do not exist yet and are answered INVALID_REQUEST.
func handleFindCoordinator(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		find := func(key string) (Broker, error) {
			if req.CoordinatorType != 0 {
				return Broker{}, semantics.Errorf(semantics.ErrInvalidRequest, "transactions are not supported yet: there is no transaction coordinator")
			}
			return c.b.Coordinator(ctx, key)
		}
		if req.Version < 4 {
			b, err := find(req.CoordinatorKey)
			resp.ErrorCode, resp.ErrorMessage = code(err), message(err)
			resp.NodeID, resp.Host, resp.Port = -1, "", -1
			if err == nil {
				resp.NodeID, resp.Host, resp.Port = b.ID, b.Host, b.Port
			}
			return resp
		}
		for _, key := range req.CoordinatorKeys {
			rc := kmsg.NewFindCoordinatorResponseCoordinator()
			rc.Key = key
			b, err := find(key)
			rc.ErrorCode, rc.ErrorMessage = code(err), message(err)
			rc.NodeID, rc.Port = -1, -1
			if err == nil {
				rc.NodeID, rc.Host, rc.Port = b.ID, b.Host, b.Port
			}
			resp.Coordinators = append(resp.Coordinators, rc)
		}
		return resp
	}
}
