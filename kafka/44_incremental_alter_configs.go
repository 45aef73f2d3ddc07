package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// IncrementalAlterConfigs sets (op 0) and deletes (op 1, back to the default) a
// topic's configs; append and subtract (for list configs) are refused: the only
// list config, cleanup.policy, is fixed at create.
func handleIncrementalAlterConfigs(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, r := range req.Resources {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			err := alterConfigs(ctx, c, r.ResourceType, r.ResourceName, req.ValidateOnly, func(semantics.TopicMeta) (map[string]string, []string, error) {
				set := map[string]string{}
				var del []string
				for _, cfg := range r.Configs {
					switch cfg.Op {
					case kmsg.IncrementalAlterConfigOpSet:
						if cfg.Value == nil {
							return nil, nil, semantics.Errorf(semantics.ErrInvalidConfig, "config %s: set without a value", cfg.Name)
						}
						set[cfg.Name] = *cfg.Value
					case kmsg.IncrementalAlterConfigOpDelete:
						del = append(del, cfg.Name)
					default:
						return nil, nil, semantics.Errorf(semantics.ErrInvalidConfig, "config %s: operation %s is not supported: use set or delete", cfg.Name, cfg.Op)
					}
				}
				return set, del, nil
			})
			rr.ErrorCode, rr.ErrorMessage = code(err), message(err)
			resp.Resources = append(resp.Resources, rr)
		}
		return resp
	}
}
