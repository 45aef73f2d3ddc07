package bench

import (
	"math"
	"runtime/metrics"
	"time"
)

// SchedStats is what the Go runtime saw of the process (bench, clients and
// embedded nodes) during a side's timed part: how long runnable goroutines
// waited for a thread to run on (a busy machine's queue shows here first), and
// the collector's stop-the-world pauses, which stop every goroutine of the process
// at once. A pause needs every thread running to stop, so on a loaded machine it
// lasts as long as the slowest thread takes to be scheduled.
type SchedStats struct {
	// SchedP50 and SchedP99: a goroutine's wait from runnable to running.
	SchedP50, SchedP99 time.Duration
	GCCycles           uint64
	// GCPauses counts the stop-the-world pauses, GCPauseTotal sums them and
	// GCPauseMax is the longest (each to the runtime's histogram bucket).
	GCPauses     uint64
	GCPauseTotal time.Duration
	GCPauseMax   time.Duration
}

var runtimeSamples = []string{"/sched/latencies:seconds", "/sched/pauses/total/gc:seconds", "/gc/cycles/total:gc-cycles"}

// runtimeClock reads the runtime's counters at the start of a timed part, and
// their differences at its end.
type runtimeClock struct{ start []metrics.Sample }

func startRuntimeClock() *runtimeClock {
	return &runtimeClock{start: readRuntime()}
}

func readRuntime() []metrics.Sample {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		s[i].Name = n
	}
	metrics.Read(s)
	return s
}

// stop returns what happened since start; nil when the runtime does not offer
// the figures.
func (rc *runtimeClock) stop() *SchedStats {
	end := readRuntime()
	for i := range end {
		if end[i].Value.Kind() == metrics.KindBad {
			return nil
		}
	}
	sched := histDelta(rc.start[0].Value.Float64Histogram(), end[0].Value.Float64Histogram())
	pauses := histDelta(rc.start[1].Value.Float64Histogram(), end[1].Value.Float64Histogram())
	st := &SchedStats{
		SchedP50: sched.quantile(0.5), SchedP99: sched.quantile(0.99),
		GCCycles: end[2].Value.Uint64() - rc.start[2].Value.Uint64(),
		GCPauses: pauses.count(), GCPauseTotal: pauses.sum(), GCPauseMax: pauses.quantile(1),
	}
	return st
}

// hist is the difference of two readings of one runtime histogram.
type hist struct {
	counts  []uint64
	buckets []float64 // len(counts)+1 boundaries, in seconds
}

func histDelta(a, b *metrics.Float64Histogram) hist {
	h := hist{counts: make([]uint64, len(b.Counts)), buckets: b.Buckets}
	for i := range b.Counts {
		h.counts[i] = b.Counts[i]
		if i < len(a.Counts) {
			h.counts[i] -= a.Counts[i]
		}
	}
	return h
}

func (h hist) count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// bound is bucket i's upper boundary, or its lower one when that is infinite.
func (h hist) bound(i int) time.Duration {
	b := h.buckets[i+1]
	if math.IsInf(b, 1) {
		b = h.buckets[i]
	}
	return time.Duration(b * float64(time.Second))
}

// quantile is the upper boundary of the bucket holding quantile q (1: the
// highest bucket counted).
func (h hist) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if c > 0 && seen >= want {
			return h.bound(i)
		}
	}
	return 0
}

// sum adds every count at its bucket's upper boundary.
func (h hist) sum() time.Duration {
	var s time.Duration
	for i, c := range h.counts {
		if c > 0 {
			s += time.Duration(c) * h.bound(i)
		}
	}
	return s
}
