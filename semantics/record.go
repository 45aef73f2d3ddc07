package semantics

import "time"

// Header is one record header. Keys may repeat; order is kept.
type Header struct {
	Key   string
	Value []byte // nil is Kafka's null header value
}

// Record is one Kafka record as a producer sends it and a consumer receives it.
type Record struct {
	Topic     string
	Partition int32
	// Offset is the record's position in its partition: set on consume, and after a
	// produce is acknowledged.
	Offset int64
	// Key is the record's key; nil means no key (Kafka's null).
	Key []byte
	// Value is the record's payload; nil is a tombstone on compacted topics.
	Value   []byte
	Headers []Header
	// Timestamp is the record's create time, kept to the millisecond. Zero means the
	// producer stamps time.Now().
	Timestamp time.Time
}
