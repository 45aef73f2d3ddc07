package partitioner

import (
	"encoding/binary"
	"math/rand/v2"
)

// Murmur2 returns the 32-bit murmur2 hash of data exactly as Kafka's
// org.apache.kafka.common.utils.Utils.murmur2 computes it (seed 0x9747b28c), the hash
// behind the partition of every keyed record a Java producer sends. nil hashes like an
// empty slice.
func Murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	// The last len%4 bytes, with Java's switch fallthrough.
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// ToPositive clears the sign bit of v, as Kafka's Utils.toPositive does. It is not Abs:
// ToPositive(-1) is math.MaxInt32.
func ToPositive(v int32) int32 { return v & 0x7fffffff }

// KafkaPartition returns the partition Kafka's producers pick for a keyed record:
// ToPositive(Murmur2(key)) % n. n must be positive.
func KafkaPartition(key []byte, n int32) int32 { return ToPositive(Murmur2(key)) % n }

// Default is Kafka's DefaultPartitioner from 2.4 to 3.2: a record with a key goes to
// KafkaPartition(key, n); a record without key (nil) goes to a sticky partition, as in
// Sticky (KIP-480). Not safe for concurrent use.
type Default struct {
	sticky Sticky
}

// NewDefault returns a Default whose sticky choices come from a freshly seeded generator.
func NewDefault() *Default { return NewDefaultWithRand(nil) }

// NewDefaultWithRand returns a Default whose sticky choices come from r, which it then
// owns. A nil r means a freshly seeded generator.
func NewDefaultWithRand(r *rand.Rand) *Default {
	return &Default{sticky: *NewStickyWithRand(r)}
}

// Partition returns KafkaPartition(key, n) for a non-nil key and the sticky partition for
// a nil key.
func (d *Default) Partition(key []byte, n int32) int32 {
	if key == nil {
		return d.sticky.Partition(nil, n)
	}
	return KafkaPartition(key, n)
}

// OnNewBatch moves the sticky partition on if prev is it; see Sticky.OnNewBatch.
// Batches closed for keyed partitions leave it alone.
func (d *Default) OnNewBatch(n, prev int32) { d.sticky.OnNewBatch(n, prev) }

// Sticky is the keyless half of Kafka's DefaultPartitioner (KIP-480), usable alone: every
// record goes to one randomly chosen partition until the producer closes a batch for that
// partition, then to another, different one (when n > 1). Records thus fill batches one
// partition at a time instead of trickling into all of them. Partition ignores the key.
// Unlike Kafka, which chooses among partitions with a known leader, Sticky chooses among
// all n. Not safe for concurrent use.
type Sticky struct {
	rng *rand.Rand
	cur int32 // the sticky partition; -1 until chosen
}

// NewSticky returns a Sticky whose choices come from a freshly seeded generator.
func NewSticky() *Sticky { return NewStickyWithRand(nil) }

// NewStickyWithRand returns a Sticky whose choices come from r, which it then owns. A nil
// r means a freshly seeded generator.
func NewStickyWithRand(r *rand.Rand) *Sticky {
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Sticky{rng: r, cur: -1}
}

// Partition returns the sticky partition, choosing one uniformly at random on first use or
// when it no longer exists in n.
func (s *Sticky) Partition(_ []byte, n int32) int32 {
	if s.cur < 0 || s.cur >= n {
		s.cur = s.rng.Int32N(n)
	}
	return s.cur
}

// OnNewBatch moves the sticky partition, if it is prev, to a partition other than prev
// chosen uniformly at random; with n == 1 it stays 0. A prev that is not the sticky
// partition changes nothing, as in Kafka's StickyPartitionCache.nextPartition.
func (s *Sticky) OnNewBatch(n, prev int32) {
	switch {
	case s.cur < 0 || s.cur != prev: // not chosen yet, or already moved on
	case prev >= n: // gone; choose afresh on the next record
		s.cur = -1
	case n == 1:
		s.cur = 0
	default:
		p := s.rng.Int32N(n - 1)
		if p >= prev {
			p++
		}
		s.cur = p
	}
}
