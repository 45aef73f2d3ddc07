package bench

import (
	"context"
	"slices"
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
//
// Tail traces the slowest records through the same parts: the p99 of a run says
// how slow its slow records were, and Tail where their time went (the p99s of the
// parts may come from different records).
type Stages struct {
	InProducer    *Histogram
	Stored        *Histogram
	Delivered     *Histogram
	ConsumedFirst int64
	Tail          TailStages
}

// TailStages is where the slowest 1% of a run's records (those at or above its
// p99 from produce to consume) spent their time, as means over those records:
// waiting in the producer, their batch's send to answer (writer, store and the
// trips), and from the ack to the consumer (0 for a record consumed first). The
// parts add up to E2E but for the time between a record's consumption and its ack
// when it was consumed first.
//
// Stored is the part of Batch spent in the stream's store (from the writer's
// append to JetStream's ack), over the StoredRecords of them whose append the
// embedded nodes matched with the producer's answer; the rest of Batch is the
// trips between producer, writer and stream: Back of it from the writer having
// the stream's ack to the producer's sender settling the batch (the answer's way
// back and the sender's wake-up), and the rest the request's way to the writer
// and the writer's append.
type TailStages struct {
	Records                          int
	E2E, InProducer, Batch, Delivery time.Duration
	StoredRecords                    int
	Stored, StoredBatch, Back        time.Duration // StoredBatch: Batch over the same records
}

// stageClock gathers a run's Stages while it runs.
type stageClock struct {
	s     Stages
	first atomic.Int64
	mu    sync.Mutex
	// seen holds the first side seen of a record, until the other side is seen.
	seen map[stageKey]stageSeen
	// met are the records both sides saw, for Tail.
	met []stageMet
}

// stageSeen is what one side noted of a record: ack is its ack's time (Unix ns)
// with wait and batch, or consumed its consumption's time with e2e.
type stageSeen struct {
	ack, consumed            int64
	wait, batch, store, back time.Duration
	e2e                      time.Duration
}

// stageMet is one record's way through the stages.
type stageMet struct {
	e2e, wait, batch, store, back, delivery time.Duration
}

type stageKey struct {
	p   int32
	off int64
}

func newStageClock() *stageClock {
	return &stageClock{s: Stages{InProducer: NewHistogram(), Stored: NewHistogram(), Delivered: NewHistogram()},
		seen: map[stageKey]stageSeen{}}
}

// acked notes that the record at offset off of partition p was acknowledged at
// now, batch being its batch's send-to-answer time, store its batch's store and
// back the answer's way from the writer (0: unknown), and since its
// produce-to-acknowledgement time.
func (sc *stageClock) acked(p int32, off int64, now time.Time, since, batch, store, back time.Duration) {
	if sc == nil {
		return
	}
	wait := time.Duration(0)
	if batch > 0 {
		wait = max(since-batch, 0)
		sc.s.InProducer.Record(wait)
	}
	sc.meet(stageKey{p, off}, stageSeen{ack: now.UnixNano(), wait: wait, batch: batch, store: store, back: back})
}

// consumed notes that the record at offset off of partition p reached a consumer
// at now, e2e after it was produced.
func (sc *stageClock) consumed(p int32, off int64, now time.Time, e2e time.Duration) {
	if sc == nil {
		return
	}
	sc.meet(stageKey{p, off}, stageSeen{consumed: now.UnixNano(), e2e: e2e})
}

// meet records a record's ack-to-consumption time once both sides saw it.
func (sc *stageClock) meet(k stageKey, side stageSeen) {
	sc.mu.Lock()
	other, ok := sc.seen[k]
	if !ok {
		sc.seen[k] = side
		sc.mu.Unlock()
		return
	}
	delete(sc.seen, k)
	ack, cons := side, other
	first := side.ack != 0 // the ack came second: consumed first
	if !first {
		ack, cons = other, side
	}
	var d time.Duration
	if !first {
		d = time.Duration(cons.consumed - ack.ack)
	}
	sc.met = append(sc.met, stageMet{e2e: cons.e2e, wait: ack.wait, batch: ack.batch, store: ack.store, back: ack.back, delivery: d})
	sc.mu.Unlock()
	if first {
		sc.first.Add(1)
	}
	sc.s.Delivered.Record(d)
}

// stages returns what was gathered.
func (sc *stageClock) stages() *Stages {
	s := sc.s
	s.ConsumedFirst = sc.first.Load()
	sc.mu.Lock()
	s.Tail = tailOf(sc.met)
	sc.mu.Unlock()
	return &s
}

// tailOf is where the records of met at or above their p99 from produce to
// consume spent their time (see TailStages).
func tailOf(met []stageMet) TailStages {
	if len(met) == 0 {
		return TailStages{}
	}
	e2es := make([]time.Duration, len(met))
	for i, m := range met {
		e2es[i] = m.e2e
	}
	slices.Sort(e2es)
	p99 := e2es[min(len(e2es)-1, int(0.99*float64(len(e2es))))]
	var t TailStages
	for _, m := range met {
		if m.e2e < p99 {
			continue
		}
		t.Records++
		t.E2E += m.e2e
		t.InProducer += m.wait
		t.Batch += m.batch
		t.Delivery += m.delivery
		if m.store > 0 {
			t.StoredRecords++
			t.Stored += m.store
			t.StoredBatch += m.batch
			t.Back += m.back
		}
	}
	n := time.Duration(t.Records)
	t.E2E, t.InProducer, t.Batch, t.Delivery = t.E2E/n, t.InProducer/n, t.Batch/n, t.Delivery/n
	if t.StoredRecords > 0 {
		t.Stored /= time.Duration(t.StoredRecords)
		t.StoredBatch /= time.Duration(t.StoredRecords)
		t.Back /= time.Duration(t.StoredRecords)
	}
	return t
}

// appendStats observes the embedded nodes' partition writers: each append's time
// from the writer sending it to JetStream's ack, for the topic being timed.
type appendStats struct {
	topic atomic.Pointer[string]
	lat   atomic.Pointer[Histogram]
	// acked holds, per partition, the appends acknowledged and not yet matched
	// with the producer's answer (taken): a writer answers a partition's batches
	// in order, after their append's ack, so the oldest is the next answered.
	mu    sync.Mutex
	acked map[int32][]storedAppend
}

// storedAppend is one acknowledged append: its record count, its store time and
// when the writer had its ack (and answered the producer).
type storedAppend struct {
	records int64
	latency time.Duration
	at      time.Time
}

var _ server.Observer = (*appendStats)(nil)

// start times topic's appends into h until stop.
func (a *appendStats) start(topic string, h *Histogram) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.acked = map[int32][]storedAppend{}
	a.mu.Unlock()
	a.lat.Store(h)
	a.topic.Store(&topic)
}

// taken returns the store time of partition p's oldest acknowledged append not
// yet taken, which must hold records records (the batch whose answer the
// producer just had), and the time since the writer had its ack (the answer's
// way back to the producer's sender); zeros when there is none or it does not
// match.
func (a *appendStats) taken(p int32, records int, now time.Time) (store, back time.Duration) {
	if a == nil || a.topic.Load() == nil {
		return 0, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.acked[p]
	if len(q) == 0 {
		return 0, 0
	}
	a.acked[p] = q[1:]
	if q[0].records != int64(records) {
		return 0, 0
	}
	return q[0].latency, max(now.Sub(q[0].at), 0)
}

func (a *appendStats) stop() {
	if a == nil {
		return
	}
	a.topic.Store(nil)
}

func (a *appendStats) Appended(topic string, p int32, records int64, _ int, latency time.Duration) {
	if t := a.topic.Load(); t != nil && *t == topic {
		if h := a.lat.Load(); h != nil {
			h.Record(latency)
		}
		a.mu.Lock()
		if a.acked != nil {
			a.acked[p] = append(a.acked[p], storedAppend{records: records, latency: latency, at: time.Now()})
		}
		a.mu.Unlock()
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
