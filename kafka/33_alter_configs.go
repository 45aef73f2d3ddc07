package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// alterableConfigs are the topic configs AlterConfigs replaces: a key it does not
// name goes back to its default, as in Kafka. cleanup.policy is fixed at create.
var alterableConfigs = []string{"retention.ms", "retention.bytes", "max.message.bytes", "delete.retention.ms"}

// AlterConfigs replaces a topic's configs: those given are set, the others go back
// to their defaults. Only topics can be altered.
func handleAlterConfigs(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.AlterConfigsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		for _, r := range req.Resources {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			err := alterConfigs(ctx, c, r.ResourceType, r.ResourceName, req.ValidateOnly, func(t semantics.TopicMeta) (map[string]string, []string, error) {
				set := map[string]string{}
				for _, cfg := range r.Configs {
					if cfg.Value == nil {
						continue
					}
					set[cfg.Name] = *cfg.Value
				}
				var del []string
				for _, k := range alterableConfigs {
					if _, ok := set[k]; ok {
						continue
					}
					if k == "delete.retention.ms" && !t.Config.Compact || k == "retention.ms" && t.Config.Compact {
						continue
					}
					del = append(del, k)
				}
				return set, del, nil
			})
			rr.ErrorCode, rr.ErrorMessage = code(err), message(err)
			resp.Resources = append(resp.Resources, rr)
		}
		return resp
	}
}

// alterConfigs checks a resource is a topic, reads it, and applies the change that
// change computes from it. cleanup.policy may be given with the topic's own value.
func alterConfigs(ctx context.Context, c *conn, typ kmsg.ConfigResourceType, name string, validateOnly bool,
	change func(semantics.TopicMeta) (map[string]string, []string, error)) error {
	if typ != kmsg.ConfigResourceTypeTopic {
		return semantics.Errorf(semantics.ErrInvalidRequest, "only topic configs can be altered, not %s %q", typ, name)
	}
	t, err := c.b.Topic(ctx, name)
	if err != nil {
		return err
	}
	set, del, err := change(t)
	if err != nil {
		return err
	}
	if v, ok := set["cleanup.policy"]; ok {
		policy := "delete"
		if t.Config.Compact {
			policy = "compact"
		}
		if v != policy {
			return semantics.Errorf(semantics.ErrInvalidConfig, "topic %q: cleanup.policy is fixed when the topic is created (it is %s): create a new topic", name, policy)
		}
		delete(set, "cleanup.policy")
	}
	if len(set) == 0 && len(del) == 0 {
		return nil
	}
	return c.b.AlterConfig(ctx, name, set, del, validateOnly)
}
