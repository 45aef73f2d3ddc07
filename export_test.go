package qxd

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Test hooks for the conformance suite (package qxd_test).

// SetDeliveryHook calls f with every batch of records Poll returns, at the moment of
// delivery, with the member id and generation they were delivered under.
func SetDeliveryHook(c *Consumer, f func(member string, generation int32, recs []Record)) {
	c.mu.Lock()
	c.testDeliveryHook = f
	c.mu.Unlock()
}

// PauseHeartbeats cuts a group member off from its coordinator (no heartbeats, no
// rejoin) while it keeps polling: a member that stalled or was cut off without
// noticing.
func PauseHeartbeats(c *Consumer) {
	c.mu.Lock()
	if c.member != nil {
		c.member.testPauseHeartbeats = true
	}
	c.mu.Unlock()
}

// FetchedChunks returns how many decoded batches wait for Poll.
func FetchedChunks(c *Consumer) int { return len(c.out) }

// Watchdog returns a partition read's watchdog check (what the read does after
// each fetchQuiet without records), for a read of tp through consumer cons, served
// by node host, that handed over the records before offset next, the last stored
// at stream sequence lastStream. The check returns whether the read keeps
// waiting; else the error it would end with, and whether that is final.
func Watchdog(ctx context.Context, c *Consumer, tp TopicPartition, cons jetstream.Consumer, host string, next int64, lastStream uint64) (func() (wait bool, err error, fatal bool), error) {
	meta, err := c.c.topic(ctx, tp.Topic)
	if err != nil {
		return nil, err
	}
	r := &partRead{c: c, pc: newPartSource(c.c, meta, tp.Partition, true), ctx: ctx, cons: cons, host: host,
		next: next, lastStream: lastStream, failed: make(chan readFailure, 1)}
	return func() (bool, error, bool) {
		f, wait := r.check(ctx)
		return wait, f.err, f.fatal
	}, nil
}

// ToldToMove records that the server at url told c to move at at, as its notice
// (or a check that found it silent) does: a client that moved off it then.
func ToldToMove(c *Client, url string, at time.Time) {
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	if c.watch.moves.told == nil {
		c.watch.moves.told = map[string]time.Time{}
	}
	c.watch.moves.told[url] = at
}
