package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// DescribeConfigs describes topics' configs (Kafka's names and units; source
// DYNAMIC_TOPIC_CONFIG for a value set at create or alter, DEFAULT_CONFIG for a
// default). A broker has no configs to show.
func handleDescribeConfigs(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
		for _, r := range req.Resources {
			rr := kmsg.NewDescribeConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			switch r.ResourceType {
			case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
				rr.Configs = []kmsg.DescribeConfigsResponseResourceConfig{}
			case kmsg.ConfigResourceTypeTopic:
				t, err := c.b.Topic(ctx, r.ResourceName)
				if err == nil && t.State != semantics.TopicReady {
					err = semantics.Errorf(semantics.ErrUnknownTopic, "topic %q is %s", t.Name, t.State)
				}
				if err != nil {
					rr.ErrorCode, rr.ErrorMessage = code(err), message(err)
					break
				}
				for _, tc := range topicConfigs(t) {
					if r.ConfigNames != nil && !slices.Contains(r.ConfigNames, tc.name) {
						continue
					}
					rc := kmsg.NewDescribeConfigsResponseResourceConfig()
					v := tc.value
					rc.Name, rc.Value, rc.ReadOnly, rc.IsDefault = tc.name, &v, tc.readOnly, !tc.set
					rc.Source, rc.ConfigType = tc.source(), tc.kind
					if req.IncludeSynonyms {
						syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
						syn.Name, syn.Value, syn.Source = tc.name, &v, tc.source()
						rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
					}
					rr.Configs = append(rr.Configs, rc)
				}
			default:
				rr.ErrorCode = semantics.ErrInvalidRequest.Code
				msg := "only topic and broker configs can be described"
				rr.ErrorMessage = &msg
			}
			resp.Resources = append(resp.Resources, rr)
		}
		return resp
	}
}
