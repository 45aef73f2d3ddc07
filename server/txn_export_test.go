package server

import (
	"context"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// DecideEndAndHalt stores the decision to commit or abort the transaction of id
// and stops the coordinator's background work, as a coordinator whose node died
// right after storing the decision leaves the transaction: decided, no marker
// written. The node's requests still reach the halted coordinator.
func (t *Transactions) DecideEndAndHalt(ctx context.Context, id string, pid int64, epoch int16, commit bool) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	c.close()
	e, err := c.existing(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := checkLocked(e, pid, epoch); err != nil {
		return err
	}
	e.rec.State = semantics.TxnPrepareAbort
	if commit {
		e.rec.State = semantics.TxnPrepareCommit
	}
	return c.saveLocked(ctx, e)
}

// SetTxnEpoch stores epoch as the current one of transactional id's producer,
// as that many bumps would have.
func (t *Transactions) SetTxnEpoch(ctx context.Context, id string, epoch int16) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	e, err := c.existing(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rec.Epoch = epoch
	return c.saveLocked(ctx, e)
}

// HoldTxn holds transactional id at the coordinator, as the coordinator does
// while it stores the transaction's state or writes its end's markers: its
// calls for id (adding partitions, ending) wait until release.
func (t *Transactions) HoldTxn(id string) (release func(), err error) {
	c, err := t.current()
	if err != nil {
		return nil, err
	}
	e, err := c.existing(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	return sync.OnceFunc(e.mu.Unlock), nil
}

// TxnCoordinator is the transaction coordinator, for tests that drive one over a
// bucket of their own.
type TxnCoordinator = txnCoordinator

// NewTxnCoordinator is a transaction coordinator storing transactions in kv
// (reading it from its leader through nc), without markers, offsets or groups:
// enough for InitProducerID.
func NewTxnCoordinator(nc *nats.Conn, kv jetstream.KeyValue) *TxnCoordinator {
	return newTxnCoordinator(slog.New(slog.DiscardHandler), nc, kv, nil, nil, nil, nil)
}

// Load exposes load to the tests: the coordinator reads every stored
// transaction and starts its background work.
func (c *TxnCoordinator) Load(ctx context.Context) error { return c.load(ctx) }

// Close exposes close to the tests.
func (c *TxnCoordinator) Close() { c.close() }
