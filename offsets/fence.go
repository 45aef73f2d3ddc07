package offsets

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// Topics reads the current record of a topic by name. A Store given one (WithTopics)
// ties every commit to one incarnation of its topic, as Kafka keys state by topic
// id: a topic deleted and created again under the same name is a new topic, and no
// commit of the old one applies to it.
type Topics interface {
	// Topic returns the topic's record, or an error wrapping semantics.ErrUnknownTopic
	// when no topic has the name.
	Topic(ctx context.Context, name string) (semantics.TopicMeta, error)
}

// QuickTopics is Topics that can also read a topic's record quickly, from a copy
// that may be behind the current one (a replica's, answering while the bucket's
// leader is away). A Store WithTopics given one checks commits against the quick
// record, and a commit that record refuses against Topic's before refusing it:
// a commit waits for no leader while its topic's copy allows it. A copy behind
// can only let through a commit of an earlier incarnation (a topic just deleted
// or created again), which reads leave out (see WithTopics); overwriting a
// newer generation's commit as another incarnation's takes Topic's word.
// Fetch, List and Reset read with Topic.
type QuickTopics interface {
	Topics
	// TopicQuick is Topic, read from any copy of the record.
	TopicQuick(ctx context.Context, name string) (semantics.TopicMeta, error)
}

// WithTopics returns a Store on the same bucket that fences commits by topic id:
//
//   - Commit and Reset refuse partitions of topics that do not exist (or are being
//     deleted), partitions beyond a topic's count, and commits that name another
//     topic id than the current one (semantics.ErrUnknownTopic); they store the
//     current topic id with each commit.
//   - Fetch and List leave out, and remove, the commits of an earlier incarnation:
//     those of a topic that no longer exists, those stored with another topic id,
//     and those stored without one (written before qxd stored topic ids) whose time
//     is before the current topic was created.
//   - A commit of an earlier incarnation does not fence a newer commit by its
//     generation.
//
// A commit stored without a topic id at or after the current topic's creation is
// taken as the current topic's: it cannot be told apart, and the next commit stores
// the id.
func (s *Store) WithTopics(t Topics) *Store {
	c := *s
	c.topics = t
	return &c
}

// incarnation is the current record of one topic, or why there is none.
type incarnation struct {
	meta semantics.TopicMeta
	err  error // wraps semantics.ErrUnknownTopic when the topic does not exist
}

// gone reports whether the topic does not exist.
func (i incarnation) gone() bool { return errors.Is(i.err, semantics.ErrUnknownTopic) }

// current reads the current record of each topic of tps; nil without a Topics.
// A read that fails for another reason than a missing topic is an error wrapping
// semantics.ErrCoordinatorNotAvailable.
func (s *Store) current(ctx context.Context, tps []semantics.TopicPartition) (map[string]incarnation, error) {
	if s.topics == nil {
		return nil, nil
	}
	return s.currentBy(ctx, tps, s.topics.Topic)
}

// currentQuick is current with the topics' quick records when the Store's Topics
// has them (QuickTopics; quick is then true); nil without a Topics.
func (s *Store) currentQuick(ctx context.Context, tps []semantics.TopicPartition) (cur map[string]incarnation, quick bool, err error) {
	if q, ok := s.topics.(QuickTopics); ok {
		cur, err = s.currentBy(ctx, tps, q.TopicQuick)
		return cur, true, err
	}
	cur, err = s.current(ctx, tps)
	return cur, false, err
}

func (s *Store) currentBy(ctx context.Context, tps []semantics.TopicPartition, read func(context.Context, string) (semantics.TopicMeta, error)) (map[string]incarnation, error) {
	out := map[string]incarnation{}
	for _, tp := range tps {
		if _, ok := out[tp.Topic]; ok {
			continue
		}
		meta, err := read(ctx, tp.Topic)
		if err != nil && !errors.Is(err, semantics.ErrUnknownTopic) {
			// Retriable, as Kafka's clients retry COORDINATOR_NOT_AVAILABLE: the
			// topics bucket may be between leaders.
			return nil, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "read topic %q: %v; retry", tp.Topic, err)
		}
		out[tp.Topic] = incarnation{meta: meta, err: err}
	}
	return out, nil
}

// stale reports whether c was committed for another incarnation of its topic than
// cur.
func stale(c Committed, cur incarnation) bool {
	switch {
	case cur.gone():
		return true
	case c.TopicID != "":
		return c.TopicID != cur.meta.ID
	default: // stored before topic ids were: only its time tells
		return c.Time.Before(cur.meta.Created)
	}
}

// checkWritable checks that a commit to tp may be written to the current
// incarnation cur; id is the topic id the committer read from ("" when it does not
// say).
func checkWritable(tp semantics.TopicPartition, id string, cur incarnation) error {
	switch {
	case cur.gone():
		return cur.err
	case cur.meta.State == semantics.TopicDeleting:
		return semantics.Errorf(semantics.ErrUnknownTopic, "topic %q is being deleted: its offsets go with it", tp.Topic)
	case id != "" && id != cur.meta.ID:
		return semantics.Errorf(semantics.ErrUnknownTopic,
			"topic %q was deleted and created again (id %s, now %s): offsets of the old topic do not apply to the new one", tp.Topic, id, cur.meta.ID)
	case tp.Partition >= cur.meta.Config.Partitions:
		return semantics.Errorf(semantics.ErrUnknownTopic,
			"topic %q has partitions 0 to %d: partition %d does not exist", tp.Topic, cur.meta.Config.Partitions-1, tp.Partition)
	}
	return nil
}

// dropStale removes from got the commits of earlier incarnations, and purges them
// from the bucket unless they changed since they were read. A failed purge is left
// for the next read: the commit is left out all the same.
func (s *Store) dropStale(ctx context.Context, group string, got map[semantics.TopicPartition]Committed) error {
	if s.topics == nil || len(got) == 0 {
		return nil
	}
	cur, err := s.current(ctx, sortedKeys(got))
	if err != nil {
		return err
	}
	var keys []string
	var revs []uint64
	for tp, c := range got {
		if stale(c, cur[tp.Topic]) {
			keys = append(keys, semantics.OffsetKey(group, tp.Topic, tp.Partition))
			revs = append(revs, c.Revision)
			delete(got, tp)
		}
	}
	parallel(len(keys), func(i int) {
		opts := []jetstream.KVDeleteOpt{jetstream.LastRevision(revs[i])}
		if s.purgeTTL > 0 {
			opts = append(opts, jetstream.PurgeTTL(s.purgeTTL))
		}
		_ = s.kv.Purge(ctx, keys[i], opts...)
	})
	return nil
}

// DeleteTopicOffsets removes every group's commits of topic, as Kafka does when a topic is
// deleted, and returns how many it removed. Commits written while it runs may stay;
// a Store WithTopics leaves them out once the topic is gone or created again.
func (s *Store) DeleteTopicOffsets(ctx context.Context, topic string) (int, error) {
	if err := semantics.ValidateTopicName(topic); err != nil {
		return 0, fmt.Errorf("offsets: delete topic offsets: %w", err)
	}
	keys, err := s.keys(ctx, "*."+semantics.EncodeTopic(topic)+".*", 0)
	if err != nil {
		return 0, fmt.Errorf("offsets: delete offsets of topic %q: %w", topic, err)
	}
	slices.Sort(keys)
	if err := s.purge(ctx, keys); err != nil {
		return 0, fmt.Errorf("offsets: delete offsets of topic %q: %w", topic, err)
	}
	return len(keys), nil
}
