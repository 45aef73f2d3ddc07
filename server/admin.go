package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// dedupeWindow is the duplicate window of partition streams; see streamConfig.
const dedupeWindow = time.Second

// jetStreamPeers is how many nodes can hold a replica.
func (a *Admin) jetStreamPeers() int { return a.place.clusterSize() }

func streamConfig(t semantics.TopicMeta, p int32) jetstream.StreamConfig {
	c := t.Config
	cfg := jetstream.StreamConfig{
		Name:        semantics.StreamName(t.Name, p),
		Description: fmt.Sprintf("qxd topic %s partition %d", t.Name, p),
		Subjects:    []string{semantics.StreamSubject(t.Name, p)},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxMsgs:     -1,
		MaxBytes:    c.RetentionBytes,
		MaxMsgSize:  c.MaxMessageBytes + 4096,
		AllowDirect: true,
		DenyDelete:  true,
		Metadata: map[string]string{
			"qxd.topic": t.Name, "qxd.topic_id": t.ID, "qxd.partition": strconv.Itoa(int(p)),
		},
	}
	if c.Retention > 0 && !c.Compact {
		cfg.MaxAge = c.Retention
	}
	// Writers tag every append with a message id only to chain appends (see
	// writer.go); JetStream's duplicate tracking of those ids is not needed, so its
	// window is kept short to keep its memory small.
	cfg.Duplicates = dedupeWindow
	if cfg.MaxAge > 0 && cfg.MaxAge < cfg.Duplicates {
		cfg.Duplicates = cfg.MaxAge
	}
	if c.Compact {
		cfg.MaxMsgsPerSubject = 1
		cfg.AllowMsgTTL = true
	}
	// A topic's durability is not the stream's persist mode, which JetStream
	// cannot change later: the partition's writer applies it to the store
	// (store_durability.go).
	return cfg
}

func (a *Admin) createTopic(ctx context.Context, name string, cfg semantics.TopicConfig, token string) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	given := cfg
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("topic %q: %w", name, err)
	}
	if peers := a.jetStreamPeers(); cfg.Replicas > peers {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidReplicationFactor,
			"topic %q: %d replicas cannot be placed: the cluster has %d node(s) with JetStream; use --replicas %d or add nodes",
			name, cfg.Replicas, peers, peers)
	}
	t, err := a.meta.getTopic(ctx, name)
	if errors.Is(err, semantics.ErrUnknownTopic) {
		t = semantics.TopicMeta{Name: name, ID: semantics.NewTopicID(), Config: cfg, State: semantics.TopicCreating, Created: time.Now().UTC(),
			Overrides: semantics.ConfigOverrides(given), CreateToken: token}
		rev, perr := a.meta.putTopic(ctx, t)
		switch {
		case errors.Is(perr, jetstream.ErrKeyExists) && token != "":
			// Another sending of this create (the SDK sends it again when an
			// answer is late) may have written the record first: the cases
			// below tell it from someone else's topic by the token.
			t, err = a.meta.getTopic(ctx, name)
		case errors.Is(perr, jetstream.ErrKeyExists):
			return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrTopicExists, "topic %q already exists", name)
		case perr != nil:
			return semantics.TopicMeta{}, fmt.Errorf("create topic %q: %w", name, perr)
		default:
			t.Revision = rev
		}
	}
	switch {
	case errors.Is(err, semantics.ErrUnknownTopic) && t.Revision != 0:
		// The record was written above.
	case err != nil:
		return semantics.TopicMeta{}, err
	case t.State == semantics.TopicReady && token != "" && t.CreateToken == token:
		return t, nil // this request's own topic: its first sending's answer was lost
	case t.State == semantics.TopicReady:
		return t, semantics.Errorf(semantics.ErrTopicExists, "topic %q already exists (%d partitions, id %s)", name, t.Config.Partitions, t.ID)
	case t.State == semantics.TopicDeleting:
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is being deleted: run 'qxd topic delete %s' again to finish, then create it", name, name)
	case t.Config != cfg:
		return t, semantics.Errorf(semantics.ErrTopicExists,
			"topic %q is half-created with a different configuration: create it again with the same settings to finish, or delete it", name)
	}
	// Creating: make every partition's stream, then mark the topic ready. A retry after
	// a failure lands here too and finishes the job.
	for p := int32(0); p < t.Config.Partitions; p++ {
		if err := a.createStream(ctx, streamConfig(t, p)); err != nil {
			return t, semantics.Errorf(semantics.ErrTopicNotReady,
				"topic %q: create partition %d: %v; the topic is half-created: retry the create to finish it", name, p, err)
		}
	}
	t.State = semantics.TopicReady
	rev, err := a.meta.putTopic(ctx, t)
	if errors.Is(err, jetstream.ErrKeyExists) {
		// The record changed since it was read: another sending of this create
		// (or a retry finishing it) may have marked this same topic ready.
		if now, gerr := a.meta.getTopic(ctx, name); gerr == nil && now.ID == t.ID && now.State == semantics.TopicReady {
			return now, nil
		}
	}
	if err != nil {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q: mark ready: %v; retry the create to finish it", name, err)
	}
	t.Revision = rev
	if moved, err := a.place.BalanceLeaders(ctx, []semantics.TopicMeta{t}); err != nil {
		a.log.Warn("partition leaders not balanced", "topic", name, "err", err)
	} else if moved > 0 {
		a.log.Debug("partition leaders balanced", "topic", name, "moved", moved)
	}
	a.follow.topicChanged(ctx, t)
	a.log.Info("topic created", "topic", name, "partitions", t.Config.Partitions)
	return t, nil
}

func (a *Admin) deleteTopic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return t, err
	}
	if t.State != semantics.TopicDeleting {
		t.State = semantics.TopicDeleting
		rev, err := a.meta.putTopic(ctx, t)
		if err != nil {
			return t, fmt.Errorf("delete topic %q: %w (retry)", name, err)
		}
		t.Revision = rev
	}
	a.follow.topicRemoved(ctx, name)
	for p := int32(0); p < t.Config.Partitions; p++ {
		err := a.js.DeleteStream(ctx, semantics.StreamName(name, p))
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return t, fmt.Errorf("delete topic %q: partition %d: %w (retry the delete to finish)", name, p, err)
		}
		_ = a.meta.parts.Purge(ctx, semantics.CheckpointKey(t.ID, p))
		_ = a.meta.parts.Purge(ctx, semantics.DamageKey(t.ID, p))
	}
	// Groups' committed offsets go with the topic, as in Kafka. Those left behind
	// (this fails, or a member commits meanwhile) name this topic's id, so the
	// offsets store ignores them once the topic is gone or created again.
	if _, err := a.offsets.DeleteTopicOffsets(ctx, name); err != nil {
		a.log.Warn("committed offsets of a deleted topic not removed; they are ignored", "topic", name, "err", err)
	}
	if err := a.meta.topics.Purge(ctx, semantics.TopicKey(name)); err != nil {
		return t, fmt.Errorf("delete topic %q: remove its record: %w (retry the delete to finish)", name, err)
	}
	a.log.Info("topic deleted", "topic", name)
	return t, nil
}

func (a *Admin) addPartitions(ctx context.Context, name string, total int32) (semantics.TopicMeta, error) {
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return t, err
	}
	if t.State != semantics.TopicReady {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", name, t.State)
	}
	if total <= t.Config.Partitions {
		return t, semantics.Errorf(semantics.ErrInvalidPartitions,
			"topic %q has %d partitions: the new count %d must be larger (partitions can only be added)", name, t.Config.Partitions, total)
	}
	if total > semantics.MaxPartitions {
		return t, semantics.Errorf(semantics.ErrInvalidPartitions, "topic %q: %d partitions is over the limit of %d", name, total, semantics.MaxPartitions)
	}
	nt := t
	nt.Config.Partitions = total
	for p := t.Config.Partitions; p < total; p++ {
		if _, err := a.js.CreateOrUpdateStream(ctx, streamConfig(nt, p)); err != nil {
			return t, fmt.Errorf("topic %q: create partition %d: %w (retry; nothing changed for producers yet)", name, p, err)
		}
	}
	rev, err := a.meta.putTopic(ctx, nt)
	if err != nil {
		return t, fmt.Errorf("topic %q: record the new partition count: %w (retry)", name, err)
	}
	nt.Revision = rev
	a.follow.topicChanged(ctx, nt)
	a.log.Info("partitions added", "topic", name, "partitions", total)
	return nt, nil
}

// ListTopics reads every topic record, those being created or deleted included.
func (a *Admin) ListTopics(ctx context.Context) ([]semantics.TopicMeta, error) {
	var topics []semantics.TopicMeta
	err := kvscan.Scan(ctx, a.meta.topics, jetstream.AllKeys, func() { topics = []semantics.TopicMeta{} },
		func(e jetstream.KeyValueEntry) error {
			t, err := decodeTopic(e)
			if err != nil {
				return err
			}
			topics = append(topics, t)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return topics, nil
}

// DescribeTopic reads a topic's record and each partition's leader, replicas,
// offsets and size. A partition whose stream cannot be read is described with its
// Problem, not as an error.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (TopicDescription, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return TopicDescription{}, err
	}
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return TopicDescription{}, err
	}
	resp := TopicDescription{Topic: t}
	for p := int32(0); p < t.Config.Partitions; p++ {
		r := partition.NewReader(a.nc, name, p, false)
		pi := semantics.PartitionInfo{Partition: p, Stream: r.Stream}
		o, err := r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
			ck, err := a.meta.getCheckpoint(ctx, t.ID, p)
			return ck.Next, err
		})
		if err != nil {
			pi.Problem = err.Error()
		} else {
			pi.Leader, pi.Replicas, pi.InSync = o.Leader, o.Replicas, o.InSync
			pi.LogStartOffset, pi.HighWatermark = o.LogStart, o.HighWatermark
			pi.Batches, pi.Bytes = o.Msgs, o.Bytes
			pi.Records = o.HighWatermark - o.LogStart
			var r stableReply
			pi.LastStableOffset, r = a.lastStable(ctx, o.Leader, name, p, o.HighWatermark, o.LogStart)
			pi.Durability, pi.DurabilityNote = r.Durability, r.DurabilityNote
			if t.Config.Compact {
				pi.Records = int64(o.Msgs)
			}
			if pi.Missing = o.Missing(t.Config.Compact); pi.Missing > 0 {
				pi.Damage = damageNote(pi.Missing, o.FirstSeq, o.LastSeq, o.Lost, o.Leader)
			}
			pi.Problem = underReplicatedNote(len(o.Replicas), t.Config.Replicas, o.Replicas)
		}
		if rec, _, err := a.meta.getDamage(ctx, t.ID, p); err != nil {
			pi.Damage = strings.TrimPrefix(pi.Damage+"; ", "; ") + fmt.Sprintf("its damage record cannot be read: %v", err)
		} else if note := damageRecordNote(rec.Damage); note != "" {
			pi.Damaged = rec.Damage
			pi.Damage = strings.TrimPrefix(pi.Damage+"; ", "; ") + note
		}
		resp.Partitions = append(resp.Partitions, pi)
	}
	return resp, nil
}

// damageNote says that missing batches are gone from the middle of a partition's
// log stored on leader, between stream sequences first and last.
func damageNote(missing, first, last uint64, lost []uint64, leader string) string {
	where := fmt.Sprintf("between stream sequences %d and %d", first, last)
	if len(lost) > 0 {
		where = fmt.Sprintf("(stream sequences %d to %d lost)", slices.Min(lost), slices.Max(lost))
	}
	node := leader
	if node == "" {
		node = "(unknown)"
	}
	return fmt.Sprintf("%d batches are missing %s from the log stored on node %s: its stored data is damaged; reads of those offsets fail; rebuild the replica from a healthy one or restore the partition",
		missing, where, node)
}

// RebalanceTopic spreads a replicated topic's partition replicas over the
// cluster's nodes, then its leaders. On an error it returns the moves made so far.
func (a *Admin) RebalanceTopic(ctx context.Context, name string) (Rebalanced, error) {
	t, err := a.meta.getTopic(ctx, name)
	if err == nil && t.State != semantics.TopicReady {
		err = semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", name, t.State)
	}
	if err != nil {
		return Rebalanced{}, err
	}
	moves, leaders, err := a.place.RebalanceTopic(ctx, t)
	if moves == nil {
		moves = []string{}
	}
	return Rebalanced{Moves: moves, LeadersMoved: leaders}, err
}

// createStream creates (or updates) a partition stream. Right after a cluster forms,
// or while a node rejoins, JetStream can refuse placement because it has not yet seen
// every peer online: that is retried for a while.
func (a *Admin) createStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := a.js.CreateOrUpdateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != 10005 /* no suitable peers for placement */ || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
