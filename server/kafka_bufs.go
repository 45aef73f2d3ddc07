package server

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

// batchBufs pools the buffers the Kafka listener loads stored batches into from
// a partition's store (leaderStore.read). A buffer goes back to the pool once
// the fetch answer holding its batch is written (kafka.ReadResult.Release), so
// a consumer reading a partition through has its batches loaded into the
// buffers of the answers before, not into fresh memory the collector must then
// free. A buffer's bytes are what the store holds, checked against their
// CRC-32C as any batch read (invariant 7): the pool changes where they are
// loaded, not what is answered.
//
// The pool makes no buffers: with none of the size wanted, the store's load
// allocates one as before (sized to the message, and not zeroed first, which a
// buffer made empty would be), and it joins the pool once given back. Buffers
// are kept by size class, class k holding those of 1<<k bytes or more (up to
// twice that), for k from batchBufMinShift to batchBufMaxShift; others are left
// to the collector.
type batchBufs struct {
	classes [batchBufMaxShift - batchBufMinShift + 1]sync.Pool
	// last is the size of the last message loaded: the guess for the first
	// of the next read (a topic's batches are alike).
	last atomic.Int64
}

const (
	batchBufMinShift = 12 // 4 KiB
	batchBufMaxShift = 24 // 16 MiB
)

// get returns an empty buffer of at least n bytes from the pool, or nil when it
// holds none: from n's own class or the one above.
func (p *batchBufs) get(n int) []byte {
	if p == nil || n < 1<<batchBufMinShift || n >= 2<<batchBufMaxShift {
		return nil
	}
	for k := bits.Len(uint(n)) - 1; k <= min(bits.Len(uint(n)), batchBufMaxShift); k++ {
		c := &p.classes[k-batchBufMinShift]
		b, ok := c.Get().(*[]byte)
		if !ok {
			continue
		}
		if cap(*b) >= n {
			return (*b)[:0]
		}
		c.Put(b) // smaller than n: for a smaller message
	}
	return nil
}

// put gives b back to the pool. The caller no longer uses b, nor any slice of
// it.
func (p *batchBufs) put(b []byte) {
	if p == nil || cap(b) < 1<<batchBufMinShift || cap(b) >= 2<<batchBufMaxShift {
		return
	}
	k := bits.Len(uint(cap(b))) - 1
	b = b[:0]
	p.classes[k-batchBufMinShift].Put(&b)
}

// sameBuf reports whether a and b start at the same address.
func sameBuf(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}
