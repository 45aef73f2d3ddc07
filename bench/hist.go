package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits is how many bits of each value the histogram keeps: 32 buckets per power
// of two, so a reported quantile is within about 3% of the true value.
const subBits = 5

const (
	subCount   = 1 << subBits
	numBuckets = (64 - subBits) * subCount
)

// Histogram counts durations in logarithmic buckets, as HdrHistogram does: exact
// below 32ns, then 32 buckets per power of two. Record is safe for concurrent use and
// does not allocate.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
	sum    atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return new(Histogram) }

func bucketOf(v int64) int {
	if v < subCount {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - subBits - 1
	m := v >> e // in [subCount, 2*subCount)
	return (e+1)*subCount + int(m-subCount)
}

// bucketBounds returns the smallest and largest value bucket i holds.
func bucketBounds(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	e := i/subCount - 1
	m := int64(i%subCount + subCount)
	return m << e, (m+1)<<e - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest duration recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the average duration recorded.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the duration that fraction q (0 to 1) of the recorded ones are at
// or below: the middle of the bucket holding it, never above Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketBounds(i)
			return min(time.Duration(lo+(hi-lo)/2), h.Max())
		}
	}
	return h.Max()
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	for {
		m, v := h.max.Load(), o.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Bucket is one histogram bucket: Count durations from Lo to Hi.
type Bucket struct {
	Lo, Hi time.Duration
	Count  uint64
}

// Buckets returns the histogram merged into at most n buckets of equal width on a
// log scale, from the smallest to the largest duration recorded; empty ones included.
func (h *Histogram) Buckets(n int) []Bucket {
	first, last := -1, -1
	for i := range h.counts {
		if h.counts[i].Load() > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || n < 1 {
		return nil
	}
	lo, _ := bucketBounds(first)
	_, hi := bucketBounds(last)
	lo = max(lo, 1)
	llo, lhi := math.Log(float64(lo)), math.Log(float64(hi+1))
	out := make([]Bucket, n)
	for i := range out {
		out[i].Lo = time.Duration(math.Exp(llo + (lhi-llo)*float64(i)/float64(n)))
		out[i].Hi = time.Duration(math.Exp(llo + (lhi-llo)*float64(i+1)/float64(n)))
	}
	for i := first; i <= last; i++ {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		blo, bhi := bucketBounds(i)
		mid := float64(max(blo+(bhi-blo)/2, 1))
		j := int(float64(n) * (math.Log(mid) - llo) / (lhi - llo))
		out[min(max(j, 0), n-1)].Count += c
	}
	return out
}

// Latency is a histogram's summary in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summary returns h's count, p50, p99, p99.9, max and mean.
func (h *Histogram) Summary() Latency {
	return Latency{
		Count: h.Count(),
		P50:   ms(h.Quantile(0.50)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
		Mean:  ms(h.Mean()),
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
