package semantics

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// TopicConfig is what a topic is created with. The zero value of a field means "use
// the default" where a default is documented.
type TopicConfig struct {
	// Partitions is the number of partitions, 1 to MaxPartitions. Default 1, as
	// Kafka's num.partitions.
	Partitions int32 `json:"partitions"`
	// Replicas is each partition's replication factor: 1, 3 or 5. Default 1.
	Replicas int `json:"replicas"`
	// Retention is how long records are kept (Kafka's retention.ms); whole batches
	// age out. Default 7 days; negative keeps records forever.
	Retention time.Duration `json:"retention"`
	// RetentionBytes caps each partition's size (Kafka's retention.bytes); the oldest
	// batches go first. Default -1: no cap.
	RetentionBytes int64 `json:"retention_bytes"`
	// Compact keeps the latest record per key instead of aging records out by time
	// (Kafka's cleanup.policy=compact). Records need a key; a nil value is a
	// tombstone that removes the key after DeleteRetention.
	Compact bool `json:"compact,omitempty"`
	// DeleteRetention is how long a tombstone stays readable on a compacted topic
	// (Kafka's delete.retention.ms). Default 1 day.
	DeleteRetention time.Duration `json:"delete_retention,omitempty"`
	// MaxMessageBytes is the largest record batch a partition accepts, after
	// compression (Kafka's max.message.bytes). A single record can be no larger.
	// Default 1 MiB; at most MaxMessageBytesLimit.
	MaxMessageBytes int32 `json:"max_message_bytes"`
	// Durability is when a partition's appends reach the disk on a node that syncs
	// every append (--sync always): DurabilitySync (the default; "" reads as it)
	// syncs each before it is acknowledged, DurabilityAsync flushes lazily, so a
	// power failure can lose acknowledged records. One replica only; AlterConfig
	// changes it (ConfigDurability). See ParseDurability.
	Durability string `json:"durability,omitempty"`
}

// Topic defaults and limits.
const (
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultDeleteRetention = 24 * time.Hour
	DefaultMaxMessageBytes = 1 << 20
	// MaxMessageBytesLimit is the largest MaxMessageBytes a topic may set; the node's
	// NATS max payload is configured to fit it.
	MaxMessageBytesLimit = 8 << 20
)

// WithDefaults returns c with zero fields set to their defaults.
func (c TopicConfig) WithDefaults() TopicConfig {
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.Compact && c.DeleteRetention == 0 {
		c.DeleteRetention = DefaultDeleteRetention
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if d, err := ParseDurability(c.Durability); err == nil {
		c.Durability = d // in lower case; "" stays: sync
	}
	return c
}

// Validate checks a config after WithDefaults. Errors name the field and its range.
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > MaxPartitions:
		return Errorf(ErrInvalidPartitions, "partitions %d is out of range: use 1 to %d", c.Partitions, MaxPartitions)
	case c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5:
		return Errorf(ErrInvalidReplicationFactor, "replicas %d is not allowed: use 1, 3 or 5", c.Replicas)
	case c.Retention > 0 && c.Retention < time.Second:
		return Errorf(ErrInvalidConfig, "retention %v is too short: use at least 1s, or -1 to keep records forever", c.Retention)
	case c.RetentionBytes == 0 || c.RetentionBytes < -1:
		return Errorf(ErrInvalidConfig, "retention bytes %d is not allowed: use a positive size, or -1 for no cap", c.RetentionBytes)
	case c.MaxMessageBytes < 1024 || c.MaxMessageBytes > MaxMessageBytesLimit:
		return Errorf(ErrInvalidConfig, "max message bytes %d is out of range: use 1024 to %d", c.MaxMessageBytes, MaxMessageBytesLimit)
	case c.RetentionBytes > 0 && c.RetentionBytes < int64(c.MaxMessageBytes):
		return Errorf(ErrInvalidConfig, "retention bytes %d is below max message bytes %d: a partition could not hold one batch", c.RetentionBytes, c.MaxMessageBytes)
	case c.Compact && c.DeleteRetention < time.Second:
		return Errorf(ErrInvalidConfig, "delete retention %v is too short: use at least 1s", c.DeleteRetention)
	}
	if c.Durability != "" {
		if _, err := ParseDurability(c.Durability); err != nil {
			return Errorf(ErrInvalidConfig, "%v", err)
		}
	}
	if c.Async() && c.Replicas != 1 {
		return Errorf(ErrInvalidConfig, "durability async needs 1 replica, not %d: JetStream cannot flush a replicated stream lazily; use --replicas 1, or keep durability sync", c.Replicas)
	}
	return nil
}

// LogStartMetadata is the key, in a partition stream's metadata, of the partition's
// log start offset after a trim (DeleteRecords), in decimal. A trim removes the
// batches wholly below the new log start; the batch that holds it stays, and
// readers start at this offset within it.
const LogStartMetadata = "qxd.log_start"

// TopicState is where a topic is in its life.
type TopicState string

// Topic states. A topic is usable only when Ready; Creating and Deleting topics are
// half-done operations that a retried create or delete completes.
const (
	TopicCreating TopicState = "creating"
	TopicReady    TopicState = "ready"
	TopicDeleting TopicState = "deleting"
)

// TopicMeta is a topic's record in the topics KV bucket.
type TopicMeta struct {
	Name    string      `json:"name"`
	ID      string      `json:"id"`
	Config  TopicConfig `json:"config"`
	State   TopicState  `json:"state"`
	Created time.Time   `json:"created"`
	// Overrides are the settings of ConfigKeys given explicitly, at creation or by
	// AlterConfig, in ConfigKeys order; the others have their default. See
	// ConfigSource.
	Overrides []string `json:"overrides,omitempty"`
	// CreateToken is the token of the create request that made the topic
	// (CreateTopicRequest.Token), if it had one.
	CreateToken string `json:"create_token,omitempty"`
	// Revision is the KV revision the record was read at (not stored).
	Revision uint64 `json:"-"`
}

// NewTopicID returns a random 16-byte topic id in base64url, as Kafka shows topic ids.
func NewTopicID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
