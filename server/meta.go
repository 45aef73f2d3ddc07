package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// leaderReadWait bounds a read's wait for a metadata bucket's leader
// (kvscan.GetFresh); past it, with the bucket between leaders, a replica's copy
// is read.
const leaderReadWait = time.Second

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

// getTopic returns the topic record as the topics bucket's leader holds it, or an
// ErrUnknownTopic error naming it. A replica's copy (a direct get) can be behind
// the leader's: a topic just created read as unknown or still being created, one
// just altered with its old configuration, and a create, delete, alter or
// partition add that read it refused a valid request or failed its
// compare-and-set. When the leader does not answer within leaderReadWait (the
// bucket between leaders), a replica's copy is read.
func (m *metadata) getTopic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	v, rev, err := kvscan.GetFresh(ctx, m.nc, m.topics, semantics.TopicKey(name), leaderReadWait)
	return topicRead(name, v, rev, err)
}

// getTopicLeader returns the topic record as the topics bucket's leader holds
// it, or ctx's error when the leader does not answer (no replica's copy).
func (m *metadata) getTopicLeader(ctx context.Context, name string) (semantics.TopicMeta, error) {
	v, rev, err := kvscan.LeaderGet(ctx, m.nc, m.topics.Bucket(), semantics.TopicKey(name))
	return topicRead(name, v, rev, err)
}

// getTopicQuick returns the topic record as any replica of the topics bucket
// holds it (a direct get), for reads made on every request (a Kafka fetch on a
// node that leads none of the topic's partitions): a ready record is returned as
// it is; an answer that would refuse the request (unknown, not ready, an error)
// is asked of the leader again (getTopic), so a replica behind never refuses a
// topic just created. A partition past a ready record's count is the caller's
// to confirm with getTopic.
func (m *metadata) getTopicQuick(ctx context.Context, name string) (semantics.TopicMeta, error) {
	e, err := kvscan.Get(ctx, m.topics, semantics.TopicKey(name))
	if err == nil {
		if t, derr := topicRead(name, e.Value(), e.Revision(), nil); derr == nil && t.State == semantics.TopicReady {
			return t, nil
		}
	}
	return m.getTopic(ctx, name)
}

// topicRead decodes what a read of topic name's record gave.
func topicRead(name string, v []byte, rev uint64, err error) (semantics.TopicMeta, error) {
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q does not exist: list topics with 'qxd topic list'", name)
	}
	if err != nil {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrUnavailable, "read topic %q: %v; retry", name, err)
	}
	var t semantics.TopicMeta
	if err := json.Unmarshal(v, &t); err != nil {
		return t, fmt.Errorf("topic record %q is corrupt: %w", semantics.TopicKey(name), err)
	}
	t.Revision = rev
	return t, nil
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

// getCheckpoint returns partition p's checkpoint as the partitions bucket's
// leader holds it (empty when none). A replica's copy can be an older
// checkpoint: a writer loading from it, with every batch aged out, would hand
// out offsets already given, and a read of the offsets would put the high
// watermark behind the last offset (a consumer there sent to its reset policy).
// When the leader does not answer within leaderReadWait, a replica's copy is
// read.
func (m *metadata) getCheckpoint(ctx context.Context, topicID string, p int32) (semantics.Checkpoint, error) {
	c, _, err := m.readCheckpoint(ctx, topicID, p)
	return c, err
}

// readCheckpoint is getCheckpoint, and says whether the partitions bucket's
// leader answered (false: a replica's copy, which may be an older checkpoint,
// was read because the leader did not answer within leaderReadWait).
func (m *metadata) readCheckpoint(ctx context.Context, topicID string, p int32) (semantics.Checkpoint, bool, error) {
	var c semantics.Checkpoint
	key := semantics.CheckpointKey(topicID, p)
	v, _, leader, err := kvscan.GetFreshFrom(ctx, m.nc, m.parts, key, leaderReadWait)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c, leader, nil
	}
	if err != nil {
		return c, leader, err
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, leader, fmt.Errorf("checkpoint %s is corrupt: %w", key, err)
	}
	return c, leader, nil
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
