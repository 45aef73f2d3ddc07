package kafka

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// txnStates are the states ListTransactions can filter on.
var txnStates = []semantics.TxnState{semantics.TxnEmpty, semantics.TxnOngoing, semantics.TxnPrepareCommit,
	semantics.TxnPrepareAbort, semantics.TxnCompleteCommit, semantics.TxnCompleteAbort}

// ListTransactions lists the transactional ids of the node coordinating
// transactions (NOT_COORDINATOR elsewhere), filtered by state, producer id and
// (v1) how long they have been running.
func handleListTransactions(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ListTransactionsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
		for _, s := range req.StateFilters {
			if !slices.Contains(txnStates, semantics.TxnState(s)) {
				resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
			}
		}
		err := c.allowTxn("")
		var all []semantics.TxnDescription
		if err == nil {
			var tb TxnBackend
			if tb, err = c.txns(); err == nil {
				all, err = tb.ListTxns(ctx)
			}
		}
		resp.ErrorCode = code(err)
		now := time.Now().UnixMilli()
		for _, d := range all {
			switch {
			case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, string(d.State)),
				len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, d.ProducerID),
				req.DurationFilterMillis > 0 && (d.StartMs < 0 || now-d.StartMs < req.DurationFilterMillis):
				continue
			}
			st := kmsg.NewListTransactionsResponseTransactionState()
			st.TransactionalID, st.ProducerID, st.TransactionState = d.TransactionalID, d.ProducerID, string(d.State)
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		return resp
	}
}
