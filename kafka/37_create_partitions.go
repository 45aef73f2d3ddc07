package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// CreatePartitions raises a topic's partition count. Manual assignments are
// refused: JetStream places replicas.
func handleCreatePartitions(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic = t.Topic
			var err error
			if len(t.Assignment) > 0 {
				err = semantics.Errorf(semantics.ErrInvalidRequest, "topic %q: replica assignments cannot be given: JetStream places each partition's replicas", t.Topic)
			} else {
				err = c.b.AddPartitions(ctx, t.Topic, t.Count, req.ValidateOnly)
			}
			rt.ErrorCode, rt.ErrorMessage = code(err), message(err)
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
