package bench

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/qxd-io/qxd"
)

// batchStats counts the record batches the bench's qxd producers have had
// acknowledged while a timed part runs: each batch is one JetStream message, so
// records per batch is what qxd's batching buys over raw's one message per record,
// and a batch's send-to-answer time is the writer, the store (and its fsync or RAFT
// round) and the way back. It is the client's HookProduceBatchWritten; outside a
// timed part it counts nothing.
type batchStats struct {
	armed   atomic.Bool
	batches atomic.Int64
	records atomic.Int64
	latency atomic.Pointer[Histogram]
	// last is each partition's last batch send-to-answer time (int32 →
	// *atomic.Int64, ns): a record's callback runs right after its batch's hook, on
	// the same goroutine, so it reads its own batch's.
	last sync.Map
	// stores, when set, is asked each answered batch's store time (lastStore).
	stores *appendStats
	store  sync.Map // int32 → *[2]atomic.Int64 (store, back), as last
}

var _ qxd.HookProduceBatchWritten = (*batchStats)(nil)

func (s *batchStats) OnProduceBatchWritten(_ string, p int32, m qxd.ProduceBatchMetrics) {
	if s == nil || !s.armed.Load() {
		return
	}
	v, ok := s.last.Load(p)
	if !ok {
		v, _ = s.last.LoadOrStore(p, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(int64(m.Latency))
	if s.stores != nil {
		v, ok := s.store.Load(p)
		if !ok {
			v, _ = s.store.LoadOrStore(p, new([2]atomic.Int64))
		}
		store, back := s.stores.taken(p, m.NumRecords, time.Now())
		v.(*[2]atomic.Int64)[0].Store(int64(store))
		v.(*[2]atomic.Int64)[1].Store(int64(back))
	}
	s.batches.Add(1)
	s.records.Add(int64(m.NumRecords))
	if h := s.latency.Load(); h != nil {
		h.Record(m.Latency)
	}
}

// lastLatency is partition p's last acknowledged batch's send-to-answer time, 0
// when none was counted.
func (s *batchStats) lastLatency(p int32) time.Duration {
	if s == nil {
		return 0
	}
	if v, ok := s.last.Load(p); ok {
		return time.Duration(v.(*atomic.Int64).Load())
	}
	return 0
}

// lastStore is partition p's last acknowledged batch's store time, as the
// embedded node's writer timed it, and its answer's way back from the writer to
// the producer's sender; zeros when unknown.
func (s *batchStats) lastStore(p int32) (store, back time.Duration) {
	if s == nil {
		return 0, 0
	}
	if v, ok := s.store.Load(p); ok {
		a := v.(*[2]atomic.Int64)
		return time.Duration(a[0].Load()), time.Duration(a[1].Load())
	}
	return 0, 0
}

// start clears the counts and starts counting.
func (s *batchStats) start() {
	if s == nil {
		return
	}
	s.batches.Store(0)
	s.records.Store(0)
	s.last.Clear()
	s.store.Clear()
	s.latency.Store(NewHistogram())
	s.armed.Store(true)
}

// stop ends counting and returns what was counted since start.
func (s *batchStats) stop() (batches, records int64, latency *Histogram) {
	if s == nil {
		return 0, 0, nil
	}
	s.armed.Store(false)
	return s.batches.Load(), s.records.Load(), s.latency.Load()
}
