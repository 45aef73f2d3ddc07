package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn commits or aborts a producer's transaction; the answer comes once every
// marker and offset of it is stored.
func handleEndTxn(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.EndTxnRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		err := c.allowTxn(req.TransactionalID)
		if err == nil {
			var tb TxnBackend
			if tb, err = c.txns(); err == nil {
				err = tb.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
			}
		}
		resp.ErrorCode = txnCode(req.Version, 2, err)
		return resp
	}
}
