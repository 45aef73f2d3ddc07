package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// metadata is qxd's own state in JetStream KV buckets: topic records and partition
// checkpoints.
type metadata struct {
	topics jetstream.KeyValue
	parts  jetstream.KeyValue
	nc     *nats.Conn // for reads from a bucket's leader (kvscan.GetFresh)
}

func openMetadata(ctx context.Context, js jetstream.JetStream, replicas int) (*metadata, error) {
	open := func(bucket, desc string) (jetstream.KeyValue, error) {
		return openBucket(ctx, js, jetstream.KeyValueConfig{
			Bucket: bucket, Description: desc, History: 1,
			Storage: jetstream.FileStorage, Replicas: replicas,
		})
	}
	topics, err := open(semantics.TopicsBucket, "qxd topic records")
	if err != nil {
		return nil, err
	}
	parts, err := open(semantics.PartitionsBucket, "qxd partition checkpoints")
	if err != nil {
		return nil, err
	}
	return &metadata{topics: topics, parts: parts, nc: js.Conn()}, nil
}

// getTopic returns the topic record, or an ErrUnknownTopic error naming it.
func (m *metadata) getTopic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	e, err := kvscan.Get(ctx, m.topics, semantics.TopicKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q does not exist: list topics with 'qxd topic list'", name)
	}
	if err != nil {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrUnavailable, "read topic %q: %v; retry", name, err)
	}
	return decodeTopic(e)
}

func decodeTopic(e jetstream.KeyValueEntry) (semantics.TopicMeta, error) {
	var t semantics.TopicMeta
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return t, fmt.Errorf("topic record %q is corrupt: %w", e.Key(), err)
	}
	t.Revision = e.Revision()
	return t, nil
}

// putTopic writes t with compare-and-set on t.Revision (0: create).
func (m *metadata) putTopic(ctx context.Context, t semantics.TopicMeta) (uint64, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return 0, err
	}
	if t.Revision == 0 {
		return m.topics.Create(ctx, semantics.TopicKey(t.Name), b)
	}
	return m.topics.Update(ctx, semantics.TopicKey(t.Name), b, t.Revision)
}

func (m *metadata) getCheckpoint(ctx context.Context, topicID string, p int32) (semantics.Checkpoint, error) {
	var c semantics.Checkpoint
	e, err := kvscan.Get(ctx, m.parts, semantics.CheckpointKey(topicID, p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return c, fmt.Errorf("checkpoint %s is corrupt: %w", e.Key(), err)
	}
	return c, nil
}

func (m *metadata) putCheckpoint(ctx context.Context, topicID string, p int32, c semantics.Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = m.parts.Put(ctx, semantics.CheckpointKey(topicID, p), b)
	return err
}

// openBucket opens a KV bucket, creating it with cfg when missing. An existing bucket
// is used as it is: nodes of a cluster starting with different views of its size
// must not change its replica count.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open metadata bucket %s: %w", cfg.Bucket, err)
	}
	// A read proves the bucket's stream has a leader (in a cluster it may not yet).
	if _, err := kvscan.Get(ctx, kv, "qxd-probe"); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read metadata bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
