package partitioner

// NATS picks the partition nats-server's subject-mapping function partition(n, …) picks:
// the 32-bit FNV-1a hash of the key, reduced modulo n as unsigned integers.
//
// What nats-server hashes depends on the form of the mapping. With wildcard indexes,
// partition(n, i, j, …) hashes the subject's wildcard tokens i, j, … concatenated with no
// separator, so under `*.*` the subjects "a.bc" and "ab.c" land together; the key is that
// concatenation. The shorthand partition(n) hashes the whole subject, tokens joined by
// ".", so the key is the subject itself. For example, under the mapping
// `orders.*` → `orders.{{partition(8,1)}}.{{wildcard(1)}}`, subject "orders.k" goes to
// partition NATS{}.Partition([]byte("k"), 8).
//
// Safe for concurrent use.
type NATS struct{}

// NewNATS returns a NATS partitioner.
func NewNATS() NATS { return NATS{} }

// Partition returns FNV-1a-32(key) % n, computed on uint32 as nats-server does. A nil key
// hashes like an empty one.
func (NATS) Partition(key []byte, n int32) int32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for _, c := range key {
		h ^= uint32(c)
		h *= prime32
	}
	return int32(h % uint32(n))
}
