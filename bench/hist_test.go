package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	h := NewHistogram()
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		all = append(all, d)
		h.Record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.04 || diff < -0.04 {
			t.Errorf("q%v = %v, want %v within 4%%", q, got, want)
		}
	}
	if h.Max() != all[len(all)-1] {
		t.Errorf("max %v, want %v", h.Max(), all[len(all)-1])
	}
	if h.Count() != uint64(len(all)) {
		t.Errorf("count %d", h.Count())
	}
	var n uint64
	for _, b := range h.Buckets(40) {
		n += b.Count
		if b.Hi < b.Lo {
			t.Errorf("bucket %+v", b)
		}
	}
	if n != h.Count() {
		t.Errorf("buckets hold %d, want %d", n, h.Count())
	}
}

func TestHistogramBuckets(t *testing.T) {
	for _, v := range []int64{0, 1, 31, 32, 33, 63, 64, 1000, 1 << 40, 1<<62 + 12345} {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("%d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if i >= numBuckets {
			t.Errorf("%d: bucket %d of %d", v, i, numBuckets)
		}
	}
}
