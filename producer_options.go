package qxd

import (
	"fmt"
	"time"

	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/semantics"
)

// Acks says when the writer's answer counts as stored, as Kafka's acks setting.
type Acks int8

const (
	// AcksNone does not wait for an answer: fastest, may lose records, not idempotent.
	AcksNone Acks = 0
	// AcksLeader waits for the partition's stream to store the batch. On JetStream the
	// stream acknowledges only what its RAFT group committed, so this is AcksAll.
	AcksLeader Acks = 1
	// AcksAll waits for the stream to store the batch on a quorum of its replicas.
	AcksAll Acks = -1
)

// ParseAcks reads "all", "-1", "leader", "1", "none" or "0".
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "all", "-1":
		return AcksAll, nil
	case "leader", "1":
		return AcksLeader, nil
	case "none", "0":
		return AcksNone, nil
	}
	return 0, semantics.Errorf(semantics.ErrInvalidConfig, "acks %q is not valid: use all, leader or none", s)
}

// Compression is a batch compression codec.
type Compression = semantics.Compression

// Compression codecs.
const (
	CompressionNone   = semantics.CompressionNone
	CompressionGzip   = semantics.CompressionGzip
	CompressionSnappy = semantics.CompressionSnappy
	CompressionLZ4    = semantics.CompressionLZ4
	CompressionZstd   = semantics.CompressionZstd
)

// ParseCompression reads "none", "gzip", "snappy", "lz4" or "zstd".
func ParseCompression(s string) (Compression, error) { return semantics.ParseCompression(s) }

// The producer's defaults, in one place.
const (
	DefaultLinger          = 5 * time.Millisecond
	DefaultBatchBytes      = 256 << 10
	DefaultMaxInFlight     = 5
	DefaultRequestTimeout  = 5 * time.Second
	DefaultDeliveryTimeout = 2 * time.Minute
	DefaultBufferBytes     = 64 << 20
	DefaultRetryBackoff    = 50 * time.Millisecond
)

type producerConfig struct {
	linger          time.Duration
	batchBytes      int
	maxInFlight     int
	acks            Acks
	compression     Compression
	idempotent      bool
	newPartitioner  func() partitioner.Partitioner
	recordPartition bool
	requestTimeout  time.Duration
	deliveryTimeout time.Duration
	bufferBytes     int64
	retryBackoff    time.Duration
	defaultTopic    string
	txnID           string        // TransactionalID
	txnTimeout      time.Duration // TransactionTimeout
}

func defaultProducerConfig() producerConfig {
	return producerConfig{
		linger:          DefaultLinger,
		batchBytes:      DefaultBatchBytes,
		maxInFlight:     DefaultMaxInFlight,
		acks:            AcksAll,
		idempotent:      true,
		newPartitioner:  func() partitioner.Partitioner { return partitioner.NewDefault() },
		requestTimeout:  DefaultRequestTimeout,
		deliveryTimeout: DefaultDeliveryTimeout,
		bufferBytes:     DefaultBufferBytes,
		retryBackoff:    DefaultRetryBackoff,
		txnTimeout:      DefaultTransactionTimeout,
	}
}

// ProducerOption configures a Producer.
type ProducerOption func(*producerConfig)

// Linger is how long a partition's batch waits for more records before it is sent
// (Kafka's linger.ms). While earlier batches are in flight, records keep collecting
// regardless. Default 5ms. 0 sends a batch as soon as the partition has none in
// flight: records that arrive while one is in flight collect into the next batch
// (full batches still go MaxInFlight at a time).
func Linger(d time.Duration) ProducerOption { return func(c *producerConfig) { c.linger = d } }

// BatchBytes caps a batch's uncompressed size (Kafka's batch.size); a full batch is
// sent at once. It is also capped by the topic's max message bytes. Default 256 KiB.
func BatchBytes(n int) ProducerOption { return func(c *producerConfig) { c.batchBytes = n } }

// MaxInFlight is how many batches per partition may await an answer. Default 5, the
// most Kafka allows with idempotence. At Linger 0 only full batches (BatchBytes) fill
// it: a batch that is not full waits for the one in flight.
func MaxInFlight(n int) ProducerOption { return func(c *producerConfig) { c.maxInFlight = n } }

// RequiredAcks sets when a batch counts as stored. Default AcksAll. AcksNone turns
// idempotence off.
func RequiredAcks(a Acks) ProducerOption { return func(c *producerConfig) { c.acks = a } }

// BatchCompression compresses each batch with codec. Default none.
func BatchCompression(codec Compression) ProducerOption {
	return func(c *producerConfig) { c.compression = codec }
}

// Idempotent turns idempotence (producer id, epoch and sequence numbers, so a retried
// batch is never stored twice) on or off. Default on.
func Idempotent(on bool) ProducerOption { return func(c *producerConfig) { c.idempotent = on } }

// RecordPartitioner sets how records without an explicit partition pick one; newFn is
// called once per topic. Default partitioner.NewDefault: murmur2 of the key as
// Kafka's Java client, sticky for records without key.
func RecordPartitioner(newFn func() partitioner.Partitioner) ProducerOption {
	return func(c *producerConfig) { c.newPartitioner = newFn }
}

// RecordPartition sends every record to its Record.Partition, as Kafka's explicit
// partition. Default off.
func RecordPartition() ProducerOption { return func(c *producerConfig) { c.recordPartition = true } }

// RequestTimeout is how long one batch waits for its writer's answer before it is
// retried. Default 5s: a batch sent to a node that died unseen is resent after it.
func RequestTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.requestTimeout = d }
}

// DeliveryTimeout bounds the time from Produce to a record's final result, retries
// included (Kafka's delivery.timeout.ms). Default 2 minutes.
func DeliveryTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.deliveryTimeout = d }
}

// BufferBytes caps the bytes of records produced but not yet acknowledged; Produce
// blocks while it is full (Kafka's buffer.memory). Default 64 MiB.
func BufferBytes(n int64) ProducerOption { return func(c *producerConfig) { c.bufferBytes = n } }

// RetryBackoff is the pause before resending failed batches. Default 50ms.
func RetryBackoff(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.retryBackoff = d }
}

// DefaultTopic is the topic of records produced without one. Default none: such
// records are refused.
func DefaultTopic(name string) ProducerOption {
	return func(c *producerConfig) { c.defaultTopic = name }
}

func (c producerConfig) validate() error {
	if c.defaultTopic != "" {
		if err := semantics.ValidateTopicName(c.defaultTopic); err != nil {
			return fmt.Errorf("default topic: %w", err)
		}
	}
	if err := c.validateTxn(); err != nil {
		return err
	}
	switch {
	case c.linger < 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "linger %v is negative", c.linger)
	case c.batchBytes < 1024:
		return semantics.Errorf(semantics.ErrInvalidConfig, "batch bytes %d is below 1024", c.batchBytes)
	case c.maxInFlight < 1 || c.idempotent && c.maxInFlight > 5:
		return semantics.Errorf(semantics.ErrInvalidConfig, "max in flight %d: use 1 to 5 with idempotence", c.maxInFlight)
	case c.acks != AcksAll && c.acks != AcksLeader && c.acks != AcksNone:
		return semantics.Errorf(semantics.ErrInvalidConfig, "acks %d is not valid", c.acks)
	case c.requestTimeout <= 0 || c.deliveryTimeout < c.requestTimeout:
		return semantics.Errorf(semantics.ErrInvalidConfig, "request timeout %v must be positive and at most the delivery timeout %v", c.requestTimeout, c.deliveryTimeout)
	case c.bufferBytes < int64(c.batchBytes):
		return semantics.Errorf(semantics.ErrInvalidConfig, "buffer bytes %d is below batch bytes %d", c.bufferBytes, c.batchBytes)
	case c.newPartitioner == nil:
		return semantics.Errorf(semantics.ErrInvalidConfig, "no partitioner")
	}
	return nil
}
