package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn commits or aborts a producer's transaction; the answer comes once every
// marker and offset of it is stored. From v5 (KIP-890 part 2) the end bumps the
// producer's epoch and the answer carries the producer id and epoch of its next
// transaction.
func handleEndTxn(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.EndTxnRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		err := c.allowTxn(req.TransactionalID)
		if err == nil {
			var tb TxnBackend
			if tb, err = c.txns(); err == nil {
				resp.ProducerID, resp.ProducerEpoch, err = tb.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, req.Version >= 5)
			}
		}
		resp.ErrorCode = txnCode(req.Version, 2, err)
		if err != nil || req.Version < 5 {
			resp.ProducerID, resp.ProducerEpoch = -1, -1
		}
		return resp
	}
}
