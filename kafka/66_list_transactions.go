package kafka

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// codeInvalidRegularExpression is Kafka's INVALID_REGULAR_EXPRESSION.
const codeInvalidRegularExpression int16 = 128

// txnStates are the states ListTransactions can filter on.
var txnStates = []semantics.TxnState{semantics.TxnEmpty, semantics.TxnOngoing, semantics.TxnPrepareCommit,
	semantics.TxnPrepareAbort, semantics.TxnCompleteCommit, semantics.TxnCompleteAbort}

// ListTransactions lists the transactional ids of the node coordinating
// transactions (NOT_COORDINATOR elsewhere), filtered by state, producer id,
// (v1) how long they have been running and (v2, KIP-1152) a regular expression
// (RE2, as Kafka's) the whole transactional id matches; a pattern that does not
// compile is INVALID_REGULAR_EXPRESSION.
func handleListTransactions(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ListTransactionsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
		for _, s := range req.StateFilters {
			if !slices.Contains(txnStates, semantics.TxnState(s)) {
				resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
			}
		}
		var pattern *regexp.Regexp
		if p := req.TransactionalIDPattern; p != nil && *p != "" {
			re, err := regexp.Compile("^(?:" + *p + ")$")
			if err != nil {
				resp.ErrorCode = codeInvalidRegularExpression
				return resp
			}
			pattern = re
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
				req.DurationFilterMillis > 0 && (d.StartMs < 0 || now-d.StartMs < req.DurationFilterMillis),
				pattern != nil && !pattern.MatchString(d.TransactionalID):
				continue
			}
			st := kmsg.NewListTransactionsResponseTransactionState()
			st.TransactionalID, st.ProducerID, st.TransactionState = d.TransactionalID, d.ProducerID, string(d.State)
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		return resp
	}
}
