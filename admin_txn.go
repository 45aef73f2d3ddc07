package qxd

import (
	"context"
	"fmt"

	"github.com/qxd-io/qxd/semantics"
)

// TxnDescription is one transactional id as the transaction coordinator knows
// it: its producer id and epoch, its state (Ongoing, PrepareCommit,
// CompleteCommit, …), and the partitions and groups of its open transaction.
type TxnDescription = semantics.TxnDescription

// ListTransactions returns every transactional id the coordinator knows.
func (a *Admin) ListTransactions(ctx context.Context) ([]TxnDescription, error) {
	t := &producerTxn{c: a.c}
	var resp semantics.TxnResponse
	if err := t.request(ctx, semantics.TxnList, semantics.TxnRequest{}, &resp); err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	return resp.Txns, nil
}

// DescribeTransaction returns transactional id's state; an error matching
// semantics.ErrTransactionalIDNotFound when the coordinator does not know it.
func (a *Admin) DescribeTransaction(ctx context.Context, id string) (TxnDescription, error) {
	if id == "" {
		return TxnDescription{}, semantics.Errorf(semantics.ErrInvalidRequest, "describe transaction: give a transactional id")
	}
	t := &producerTxn{c: a.c}
	var resp semantics.TxnResponse
	if err := t.request(ctx, semantics.TxnDescribe, semantics.TxnRequest{TransactionalID: id}, &resp); err != nil {
		return TxnDescription{}, fmt.Errorf("describe transaction %q: %w", id, err)
	}
	if resp.Txn == nil {
		return TxnDescription{}, fmt.Errorf("describe transaction %q: the coordinator answered without it", id)
	}
	return *resp.Txn, nil
}
