package bench

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// TestStagesTraceTheSlowestRecords: a run's slowest 1% are traced through the
// stages whichever side of a record (its ack or its consumption) is seen first,
// and each part is the mean over those records only.
func TestStagesTraceTheSlowestRecords(t *testing.T) {
	sc := newStageClock()
	base := time.Unix(1000, 0)
	for i := range 1000 {
		// Record i takes i µs from produce to consume, but the ten slowest (990 to
		// 999) wait 40 ms in the producer, their batch takes 10 ms (4 ms of it the
		// store, 2.5 ms the answer's way back), and they reach the consumer 5 ms
		// after their ack.
		e2e, wait, batch, store, delivery := time.Duration(i)*time.Microsecond, time.Duration(0), time.Millisecond, time.Millisecond/2, time.Duration(0)
		if i >= 990 {
			wait, batch, store, delivery = 40*time.Millisecond, 10*time.Millisecond, 4*time.Millisecond, 5*time.Millisecond
			e2e = wait + batch + delivery
		}
		ack := base.Add(time.Duration(i) * time.Second)
		if i%2 == 0 {
			sc.acked(0, int64(i), ack, wait+batch, batch, store, batch/4)
			sc.consumed(0, int64(i), ack.Add(delivery), e2e)
		} else { // consumed first
			sc.consumed(0, int64(i), ack.Add(-delivery), e2e)
			sc.acked(0, int64(i), ack, wait+batch, batch, store, batch/4)
		}
	}
	got := sc.stages().Tail
	want := TailStages{Records: 10, E2E: 55 * time.Millisecond, InProducer: 40 * time.Millisecond, Batch: 10 * time.Millisecond,
		Delivery:      2500 * time.Microsecond, // the odd ones were consumed before their ack: 0
		StoredRecords: 10, Stored: 4 * time.Millisecond, StoredBatch: 10 * time.Millisecond, Back: 2500 * time.Microsecond}
	if got != want {
		t.Errorf("tail %+v, want %+v", got, want)
	}
	if n := sc.stages().ConsumedFirst; n != 500 {
		t.Errorf("consumed first %d, want 500", n)
	}
}

// TestRuntimeClockCountsCollections: the runtime figures of a timed part count
// the collections within it, not those before.
func TestRuntimeClockCountsCollections(t *testing.T) {
	runtime.GC()
	rc := startRuntimeClock()
	for range 3 {
		runtime.GC()
	}
	st := rc.stop()
	if st == nil {
		t.Skip("the runtime does not offer its scheduling and pause metrics")
	}
	if st.GCCycles != 3 || st.GCPauses < 3 || st.GCPauseMax <= 0 || st.GCPauseTotal < st.GCPauseMax {
		t.Errorf("after 3 collections: %+v", st)
	}
}

// TestHistDeltaQuantile: quantiles of the difference of two readings of a
// runtime histogram.
func TestHistDeltaQuantile(t *testing.T) {
	a := &metrics.Float64Histogram{Counts: []uint64{5, 0, 0, 0}, Buckets: []float64{0, 0.001, 0.002, 0.004, 0.008}}
	b := &metrics.Float64Histogram{Counts: []uint64{5, 98, 1, 1}, Buckets: a.Buckets}
	h := histDelta(a, b)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 2 * time.Millisecond}, {0.99, 4 * time.Millisecond}, {1, 8 * time.Millisecond}} {
		if got := h.quantile(c.q); got != c.want {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if n := h.count(); n != 100 {
		t.Errorf("count %d, want 100", n)
	}
}
