package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// FindCoordinator points at the node that runs the group coordinator (key type
// 0) or the transaction coordinator (key type 1). Share groups (key type 2, v6,
// KIP-932) are INVALID_REQUEST, as Kafka answers them on a broker without a
// share coordinator.
func handleFindCoordinator(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		find := func(key string) (Broker, error) {
			switch req.CoordinatorType {
			case 0:
			case 1:
				return c.txnCoordinator(ctx, key)
			default:
				return Broker{}, semantics.Errorf(semantics.ErrInvalidRequest, "coordinator key type %d is neither a group (0) nor a transaction (1): qxd has no share groups (2)", req.CoordinatorType)
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
