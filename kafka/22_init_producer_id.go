package kafka

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId gives an idempotent producer its id, from the space the SDK's
// producers draw theirs from, with epoch 0. A producer that passes its id and epoch
// (v3+, after a sequence error) keeps its id and gets the next epoch, which the
// partition writers accept as a new session of the producer. A transactional id
// goes to the transaction coordinator (see initTxnProducer).
func handleInitProducerID(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.InitProducerIDRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		if req.TransactionalID != nil {
			return c.initTxnProducer(ctx, req, resp)
		}
		if req.ProducerID >= 0 && req.ProducerEpoch >= 0 {
			if req.ProducerEpoch < math.MaxInt16-1 {
				resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
				return resp
			}
		}
		id, err := c.b.ProducerID(ctx)
		if err != nil {
			resp.ErrorCode = code(err)
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return resp
	}
}
