package server

import (
	"math/bits"
	"sync"
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
// Buffers are kept by size class, a power of two from batchBufMinShift to
// batchBufMaxShift: class k holds buffers of at least 1<<k bytes. Batches outside
// that range are loaded into buffers of their own, as before.
type batchBufs struct {
	classes [batchBufMaxShift - batchBufMinShift + 1]sync.Pool
}

const (
	batchBufMinShift = 12 // 4 KiB
	batchBufMaxShift = 24 // 16 MiB
)

// get returns an empty buffer of at least n bytes from the pool, or nil when n
// is outside the pooled sizes.
func (p *batchBufs) get(n int) []byte {
	if p == nil || n <= 0 || n > 1<<batchBufMaxShift {
		return nil
	}
	k := max(bits.Len(uint(n-1)), batchBufMinShift) // the class of n, rounded up
	if b, ok := p.classes[k-batchBufMinShift].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<k)
}

// put gives b back to the pool. The caller no longer uses b, nor any slice of
// it.
func (p *batchBufs) put(b []byte) {
	if p == nil || cap(b) < 1<<batchBufMinShift {
		return
	}
	k := min(bits.Len(uint(cap(b)))-1, batchBufMaxShift) // the class of cap(b), rounded down
	b = b[:0]
	p.classes[k-batchBufMinShift].Put(&b)
}

// sameBuf reports whether a and b start at the same address.
func sameBuf(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}
