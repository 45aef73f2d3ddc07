package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qxd-io/qxd/server"
)

// Stages splits qxd's end-to-end latency into the parts of a record's way, so a
// slow run says where its time went:
//
//   - InProducer: from Produce to its batch being sent to the partition's writer
//     (waiting for a batch in flight at linger 0, or the linger), per record: its
//     produce-to-acknowledgement time less its batch's send-to-answer time;
//   - Stored: from the writer's append to JetStream's ack, per batch (the stream's
//     store, its fsync or RAFT round), as the embedded nodes observe it (empty
//     against a running cluster); the rest of a batch's send-to-answer time is the
//     trips between producer, writer and stream;
//   - Delivered: from the acknowledgement reaching the producer to the record
//     reaching the consumer, per record; 0 for a record consumed first
//     (ConsumedFirst counts those: the stream delivers to the consumer as it
//     stores, before the ack travels back).
type Stages struct {
	InProducer    *Histogram
	Stored        *Histogram
	Delivered     *Histogram
	ConsumedFirst int64
}

// stageClock gathers a run's Stages while it runs.
type stageClock struct {
	s     Stages
	first atomic.Int64
	mu    sync.Mutex
	// seen holds the first side seen of a record: its ack as the Unix ns time, its
	// consumption as the negated time.
	seen map[stageKey]int64
}

type stageKey struct {
	p   int32
	off int64
}

func newStageClock() *stageClock {
	return &stageClock{s: Stages{InProducer: NewHistogram(), Stored: NewHistogram(), Delivered: NewHistogram()},
		seen: map[stageKey]int64{}}
}

// acked notes that the record at offset off of partition p was acknowledged at
// now, batch being its batch's send-to-answer time and since its
// produce-to-acknowledgement time.
func (sc *stageClock) acked(p int32, off int64, now time.Time, since, batch time.Duration) {
	if sc == nil {
		return
	}
	if batch > 0 {
		sc.s.InProducer.Record(max(since-batch, 0))
	}
	sc.meet(stageKey{p, off}, now.UnixNano(), true)
}

// consumed notes that the record at offset off of partition p reached a consumer
// at now.
func (sc *stageClock) consumed(p int32, off int64, now time.Time) {
	if sc == nil {
		return
	}
	sc.meet(stageKey{p, off}, now.UnixNano(), false)
}

// meet records a record's ack-to-consumption time once both sides saw it.
func (sc *stageClock) meet(k stageKey, t int64, ack bool) {
	sc.mu.Lock()
	other, ok := sc.seen[k]
	if !ok {
		if ack {
			sc.seen[k] = t
		} else {
			sc.seen[k] = -t
		}
		sc.mu.Unlock()
		return
	}
	delete(sc.seen, k)
	sc.mu.Unlock()
	switch {
	case ack && other < 0: // consumed first
		sc.first.Add(1)
		sc.s.Delivered.Record(0)
	case !ack && other > 0:
		sc.s.Delivered.Record(time.Duration(t - other))
	}
}

// stages returns what was gathered.
func (sc *stageClock) stages() *Stages {
	s := sc.s
	s.ConsumedFirst = sc.first.Load()
	return &s
}

// appendStats observes the embedded nodes' partition writers: each append's time
// from the writer sending it to JetStream's ack, for the topic being timed.
type appendStats struct {
	topic atomic.Pointer[string]
	lat   atomic.Pointer[Histogram]
}

var _ server.Observer = (*appendStats)(nil)

// start times topic's appends into h until stop.
func (a *appendStats) start(topic string, h *Histogram) {
	if a == nil {
		return
	}
	a.lat.Store(h)
	a.topic.Store(&topic)
}

func (a *appendStats) stop() {
	if a == nil {
		return
	}
	a.topic.Store(nil)
}

func (a *appendStats) Appended(topic string, _ int32, _ int64, _ int, latency time.Duration) {
	if t := a.topic.Load(); t != nil && *t == topic {
		if h := a.lat.Load(); h != nil {
			h.Record(latency)
		}
	}
}

func (a *appendStats) Answered(string, int16)               {}
func (a *appendStats) Fetched(string, int32, int64, int)    {}
func (a *appendStats) KafkaAnswered(api string, code int16) {}
func (a *appendStats) Start(_ context.Context, h server.Host) (server.Running, error) {
	return observing(h.Observe(a)), nil
}

// observing is a started appendStats: Close stops observing the node.
type observing func()

func (o observing) Close(context.Context) { o() }
