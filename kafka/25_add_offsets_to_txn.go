package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddOffsetsToTxn adds a consumer group to a producer's transaction, so that its
// TxnOffsetCommits are stored when the transaction commits.
func handleAddOffsetsToTxn(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		err := c.allowGroup(req.Group)
		if err == nil {
			var tb TxnBackend
			if tb, err = c.txns(); err == nil {
				err = tb.AddOffsetsToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
			}
		}
		resp.ErrorCode = txnCode(req.Version, 2, err)
		return resp
	}
}
