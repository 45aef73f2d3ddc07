// Package partitioner maps a record's key to a partition, as Kafka's producers do.
package partitioner

// Partitioner picks a partition for a record. n is the topic's partition count and must
// be positive; the producer guarantees it. key is nil for a record without key; an empty
// non-nil key counts as a key, as in Kafka. Implementations need not be safe for
// concurrent use unless documented; the producer calls them from one goroutine.
type Partitioner interface {
	Partition(key []byte, n int32) int32
}

// BatchNotifier is implemented by partitioners that want to know when the producer closed
// a batch for a partition (sticky partitioning moves on then), like Kafka's
// Partitioner.onNewBatch. n is the topic's partition count and prev the partition whose
// batch was closed.
type BatchNotifier interface {
	OnNewBatch(n int32, prev int32)
}

var (
	_ Partitioner   = (*Default)(nil)
	_ Partitioner   = (*Sticky)(nil)
	_ Partitioner   = (*RoundRobin)(nil)
	_ Partitioner   = Manual(0)
	_ Partitioner   = NATS{}
	_ Partitioner   = Func(nil)
	_ BatchNotifier = (*Default)(nil)
	_ BatchNotifier = (*Sticky)(nil)
)

// Func adapts a function to a Partitioner. It is as safe for concurrent use as the
// function it wraps.
type Func func(key []byte, n int32) int32

// Partition returns f(key, n).
func (f Func) Partition(key []byte, n int32) int32 { return f(key, n) }

// Manual sends every record to one fixed partition, whatever its key. The producer, not
// Manual, checks that the partition exists. Safe for concurrent use.
type Manual int32

// NewManual returns a Manual that always picks partition p.
func NewManual(p int32) Manual { return Manual(p) }

// Partition returns m, ignoring key and n.
func (m Manual) Partition(_ []byte, _ int32) int32 { return int32(m) }

// RoundRobin spreads records evenly over the partitions, ignoring keys, like Kafka's
// RoundRobinPartitioner: 0, 1, …, n-1, 0, …. It keeps one counter for all records, so a
// change of n carries on from the counter modulo the new n. Not safe for concurrent use.
type RoundRobin struct {
	next uint64
}

// NewRoundRobin returns a RoundRobin whose first record goes to partition 0.
func NewRoundRobin() *RoundRobin { return &RoundRobin{} }

// Partition returns the next partition in the cycle.
func (r *RoundRobin) Partition(_ []byte, n int32) int32 {
	p := int32(r.next % uint64(n))
	r.next++
	return p
}
