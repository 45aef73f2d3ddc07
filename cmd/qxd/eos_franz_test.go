package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The franz-go members of the exactly-once pipeline (eos_test.go): a
// GroupTransactSession each, on the nodes' Kafka listeners.

// franzIncarnation runs one incarnation of the member as a franz-go
// GroupTransactSession; it returns false when the run stops.
func (m *eosMember) franzIncarnation(ctx context.Context) bool {
	d := &cutDialer{}
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(m.run.seeds...), kgo.TransactionalID(fmt.Sprintf("eos-%d", m.id)),
		kgo.ConsumerGroup("eos"), kgo.ConsumeTopics("eos-in"), kgo.DefaultProduceTopic("eos-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.TransactionTimeout(15*time.Second),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.RetryTimeout(30*time.Second), kgo.Dialer(d.dial),
	)
	if err != nil {
		m.logf("franz-go session: %v", err)
		return true
	}
	// gone ends an incarnation without a word to the nodes, as a killed
	// process's connections end.
	gone := func() bool {
		d.cut()
		go s.Close()
		return true
	}
	for {
		select {
		case <-m.run.stop:
			s.Close()
			return false
		default:
		}
		if ctx.Err() != nil {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fs := s.PollRecords(pctx, 60)
		cancel()
		if err := s.Begin(); err != nil {
			m.logf("begin: %v; starting again", err)
			return gone()
		}
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		for _, r := range recs {
			s.Produce(ctx, &kgo.Record{Key: r.Key, Value: fmt.Appendf(nil, "%s@%d/%d", r.Value, r.Partition, r.Offset)}, nil)
		}
		if len(recs) > 0 && m.kill.Swap(false) {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = s.Client().Flush(fctx)
			cancel()
			m.logf("died with %d records in its open transaction", len(recs))
			return gone()
		}
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		committed, err := s.End(ectx, kgo.TryCommit)
		cancel()
		switch {
		case err != nil:
			m.run.failures.Add(1)
			m.logf("end of a transaction of %d records: %v; starting again", len(recs), err)
			return gone()
		case committed:
			if len(recs) > 0 {
				m.run.commits.Add(1)
			}
		default:
			m.run.failures.Add(1)
		}
	}
}

// cutDialer dials connections that cut closes, and refuses new ones after.
type cutDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	done  bool
}

func (d *cutDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return nil, errors.New("the member is gone")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cutDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	for _, c := range d.conns {
		c.Close()
	}
}
