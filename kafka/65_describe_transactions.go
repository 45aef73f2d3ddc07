package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// DescribeTransactions describes transactional ids, on the node coordinating
// transactions (NOT_COORDINATOR elsewhere). Partitions of topics the connection
// has no right on are left out.
func handleDescribeTransactions(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		tb, terr := c.txns()
		for _, id := range req.TransactionalIDs {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID = id
			st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
			err := c.allowTxn(id)
			if err == nil {
				err = terr
			}
			var d semantics.TxnDescription
			if err == nil {
				d, err = tb.DescribeTxn(ctx, id)
			}
			st.ErrorCode = code(err)
			if err == nil {
				st.State, st.TimeoutMillis, st.StartTimestamp = string(d.State), d.TimeoutMs, d.StartMs
				st.ProducerID, st.ProducerEpoch = d.ProducerID, d.Epoch
				for _, tp := range d.Partitions {
					if !c.describesTopic(tp.Topic) {
						continue
					}
					i := len(st.Topics) - 1
					if i < 0 || st.Topics[i].Topic != tp.Topic {
						t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
						t.Topic = tp.Topic
						st.Topics = append(st.Topics, t)
						i++
					}
					st.Topics[i].Partitions = append(st.Topics[i].Partitions, tp.Partition)
				}
			}
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		return resp
	}
}
