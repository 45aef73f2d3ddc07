package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// bridgeStopWait bounds how long a stopping ingest runner waits for the records in
// flight, when the caller's context allows more.
const bridgeStopWait = 10 * time.Second

// bridgeRetry is the pause before a runner that failed starts again.
const bridgeRetry = time.Second

// egressSessionTimeout is a reliable egress bridge's group session timeout: how long
// its partitions wait after the runner's node died before the next runner gets them.
const egressSessionTimeout = 6 * time.Second

// bridgeRunner runs one bridge until stopped.
type bridgeRunner struct {
	h   server.Host
	c   *qxd.Client
	def semantics.Bridge
	log *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	stopCtx context.Context // bounds the graceful part of stopping
	lastErr string

	since    time.Time
	messages atomic.Int64
	failed   atomic.Int64

	// A bridge reading a stream: its consumer (kept across restarts of the loop, as
	// it holds the pin) and its counters.
	cons    jetstream.Consumer
	taken   atomic.Int64
	skipped atomic.Int64
	backlog atomic.Uint64
}

func startBridgeRunner(h server.Host, log *slog.Logger, c *qxd.Client, def semantics.Bridge) *bridgeRunner {
	r := &bridgeRunner{h: h, c: c, def: def, done: make(chan struct{}), since: time.Now().UTC(),
		log: log.With("bridge", def.Name, "topic", def.Topic)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
	return r
}

// stop stops the runner and waits for it, within ctx.
func (r *bridgeRunner) stop(ctx context.Context) {
	r.mu.Lock()
	r.stopCtx = ctx
	r.mu.Unlock()
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		r.log.Warn("bridge runner did not stop in time")
	}
}

// serveStatus answers status requests while the runner is live; the caller
// unsubscribes when it stops.
func (r *bridgeRunner) serveStatus() (*nats.Subscription, error) {
	sub, err := r.h.Conn().Subscribe(semantics.BridgeStatusSubject(r.def.Name), func(m *nats.Msg) {
		r.mu.Lock()
		st := semantics.BridgeStatus{Node: r.h.Name(), Since: r.since, Messages: r.messages.Load(),
			Failed: r.failed.Load(), LastError: r.lastErr,
			Taken: r.taken.Load(), Skipped: r.skipped.Load(), Backlog: r.backlog.Load()}
		r.mu.Unlock()
		b, _ := json.Marshal(st)
		_ = m.Respond(b)
	})
	if err != nil {
		return nil, err
	}
	return sub, r.h.Conn().Flush()
}

func (r *bridgeRunner) fail(err error) {
	r.failed.Add(1)
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

// graceful returns the context bounding the graceful part of a stop.
func (r *bridgeRunner) graceful() (context.Context, context.CancelFunc) {
	r.mu.Lock()
	parent := r.stopCtx
	r.mu.Unlock()
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, bridgeStopWait)
}

func (r *bridgeRunner) run(ctx context.Context) {
	r.log.Info("bridge started", "kind", r.def.Kind)
	defer r.log.Info("bridge stopped")
	for {
		var err error
		switch {
		case streamSource(r.def):
			err = r.runStreamIngest(ctx)
		case r.def.Kind == semantics.BridgeIngest:
			err = r.runIngest(ctx)
		case r.def.Mode == semantics.EgressFast:
			err = r.runFastEgress(ctx)
		default:
			err = r.runReliableEgress(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("bridge failed; restarting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(bridgeRetry):
		}
	}
}

// runIngest subscribes to the bridge's pattern in its queue group and produces every
// message to the topic through an idempotent producer. A request-style message is
// answered once its record is stored. On stop, the subscription is drained and the
// producer flushed, so every message taken is stored and answered.
func (r *bridgeRunner) runIngest(ctx context.Context) error {
	key, err := semantics.ParseKeySpec(r.def.Key)
	if err != nil {
		return err
	}
	hf, err := semantics.ParseHeaderFilter(r.def.Headers)
	if err != nil {
		return err
	}
	prod, err := r.c.NewProducer(qxd.Linger(time.Millisecond))
	if err != nil {
		return err
	}
	// Produce blocks only while the producer's buffer is full; it gives up when the
	// graceful stop ends.
	pctx, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	topic := r.def.Topic
	sub, err := r.h.Conn().QueueSubscribe(r.def.From, semantics.BridgeQueue(r.def.Name), func(m *nats.Msg) {
		rec := &qxd.Record{Topic: topic, Key: key.Extract(m.Subject, m.Header), Value: m.Data}
		if rec.Value == nil {
			rec.Value = []byte{} // an empty message is an empty value, not a tombstone
		}
		for k, vs := range m.Header {
			if !hf.Keep(k) {
				continue
			}
			for _, v := range vs {
				rec.Headers = append(rec.Headers, qxd.Header{Key: k, Value: []byte(v)})
			}
		}
		rec.Headers = append(rec.Headers, qxd.Header{Key: semantics.HeaderSubject, Value: []byte(m.Subject)})
		reply := m.Reply
		cb := func(rec *qxd.Record, err error) {
			if err != nil {
				r.fail(err)
			} else {
				r.messages.Add(1)
			}
			if reply != "" {
				respondIngest(m, rec, err)
			}
		}
		if err := prod.Produce(pctx, rec, cb); err != nil {
			r.log.Debug("message not bridged", "subject", m.Subject, "err", err)
			r.fail(err)
			if reply != "" {
				respondIngest(m, rec, err)
			}
		}
	})
	if err != nil {
		prod.Close(context.Background())
		return err
	}
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	status, err := r.serveStatus()
	if err != nil {
		sub.Unsubscribe()
		prod.Close(context.Background())
		return err
	}
	defer status.Unsubscribe()
	<-ctx.Done()

	gctx, gcancel := r.graceful()
	defer gcancel()
	stopProduce := context.AfterFunc(gctx, pcancel)
	defer stopProduce()
	if err := sub.Drain(); err == nil {
		for sub.IsValid() && gctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := prod.Close(gctx); err != nil {
		r.log.Warn("bridge stopped with records unconfirmed", "err", err)
	}
	return nil
}

// respondIngest answers a request-style publisher: the record's place, or the error.
func respondIngest(m *nats.Msg, rec *qxd.Record, err error) {
	reply := nats.NewMsg(m.Reply)
	ack := semantics.BridgeAck{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	if err != nil {
		ack = semantics.BridgeAck{Topic: rec.Topic, Partition: -1, Offset: -1, Error: semantics.NewAPIError(err)}
		reply.Header.Set(semantics.HeaderError, oneLineHeader(err.Error()))
		reply.Header.Set(semantics.HeaderErrorCode, strconv.Itoa(int(semantics.CodeOf(err))))
	} else {
		reply.Header.Set(semantics.HeaderTopic, rec.Topic)
		reply.Header.Set(semantics.HeaderPartition, strconv.Itoa(int(rec.Partition)))
		reply.Header.Set(semantics.HeaderOffset, strconv.FormatInt(rec.Offset, 10))
	}
	reply.Data, _ = json.Marshal(ack)
	_ = m.RespondMsg(reply)
}

func oneLineHeader(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

// runFastEgress reads every partition from its tail and publishes each record as
// soon as it is appended. Partitions added to the topic are picked up within
// egressRefresh, from their start.
func (r *bridgeRunner) runFastEgress(ctx context.Context) error {
	tmpl, err := semantics.ParseSubjectTemplate(r.def.To)
	if err != nil {
		return err
	}
	cons, err := r.c.NewConsumer()
	if err != nil {
		return err
	}
	defer cons.Close(context.WithoutCancel(ctx))
	partitions := int32(0)
	assign := func() error {
		t, err := r.c.Admin().Topic(ctx, r.def.Topic)
		if err != nil {
			return err
		}
		if t.Config.Partitions == partitions {
			return nil
		}
		var as []qxd.Assignment
		for p := int32(0); p < t.Config.Partitions; p++ {
			o := qxd.AtEnd()
			if pos, ok := cons.Position(r.def.Topic, p); ok {
				o = qxd.At(pos)
			} else if partitions > 0 {
				o = qxd.AtStart() // a partition added while the bridge ran
			}
			as = append(as, qxd.Assignment{Topic: r.def.Topic, Partition: p, Offset: o})
		}
		if err := cons.Assign(ctx, as...); err != nil {
			return err
		}
		partitions = t.Config.Partitions
		return nil
	}
	if err := assign(); err != nil {
		return err
	}
	status, err := r.serveStatus()
	if err != nil {
		return err
	}
	defer status.Unsubscribe()
	refreshed := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		recs, err := cons.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		for i := range recs {
			if err := r.h.Conn().PublishMsg(qxd.RecordMsg(tmpl.Subject(recs[i].Key, recs[i].Partition, recs[i].Offset), &recs[i])); err != nil {
				return err
			}
		}
		r.messages.Add(int64(len(recs)))
		if time.Since(refreshed) > egressRefresh {
			refreshed = time.Now()
			if err := assign(); err != nil {
				return err
			}
		}
	}
}

// egressRefresh is how often a fast egress bridge looks for added partitions.
const egressRefresh = 10 * time.Second

// runReliableEgress reads the topic as the bridge's consumer group and commits after
// each published poll, so a runner that takes over resumes from the last commit:
// records published but not yet committed are published again (at-least-once).
func (r *bridgeRunner) runReliableEgress(ctx context.Context) error {
	tmpl, err := semantics.ParseSubjectTemplate(r.def.To)
	if err != nil {
		return err
	}
	cons, err := r.c.NewConsumer(qxd.Group(semantics.BridgeGroup(r.def.Name)), qxd.AutoCommit(0),
		qxd.SessionTimeout(egressSessionTimeout), qxd.MaxPollRecords(1000))
	if err != nil {
		return err
	}
	defer cons.Close(context.WithoutCancel(ctx))
	if err := cons.Subscribe(ctx, r.def.Topic); err != nil {
		return err
	}
	status, err := r.serveStatus()
	if err != nil {
		return err
	}
	defer status.Unsubscribe()
	for {
		recs, err := cons.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			continue
		}
		for i := range recs {
			if err := r.h.Conn().PublishMsg(qxd.RecordMsg(tmpl.Subject(recs[i].Key, recs[i].Partition, recs[i].Offset), &recs[i])); err != nil {
				return err
			}
		}
		r.messages.Add(int64(len(recs)))
		// The server has every message before the commit is written.
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = r.h.Conn().FlushWithContext(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := cons.Commit(ctx); err != nil && ctx.Err() == nil {
			// A rebalance took the partitions: the next owner publishes from the last
			// commit.
			r.log.Debug("bridge commit failed", "err", err)
		}
	}
}
