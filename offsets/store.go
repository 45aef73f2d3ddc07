// Package offsets stores and loads consumer groups' committed offsets in a JetStream KV bucket.
package offsets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// Commit is one partition's committed position: Offset is the next offset the group
// will read (Kafka's semantics), Metadata a free string.
type Commit struct {
	Offset   int64
	Metadata string
	// TopicID is the id of the topic the committer read (optional): a Store
	// WithTopics refuses the commit when the topic now has another id.
	TopicID string
}

// Committed is a stored commit with who made it.
type Committed struct {
	Offset     int64     `json:"offset"`
	Metadata   string    `json:"metadata,omitempty"`
	Generation int32     `json:"generation"` // group generation of the commit; -1 for an admin reset
	Member     string    `json:"member,omitempty"`
	Time       time.Time `json:"time"`
	// TopicID is the id of the topic incarnation the offset belongs to; empty for
	// commits stored before qxd stored topic ids, or by a Store without Topics.
	TopicID string `json:"topic_id,omitempty"`
	// Epoch is the epoch of the group coordinator that stored the commit
	// (WithEpoch), also of a reset through one; 0 for one stored without (a
	// transaction's offsets, a tool's reset, a commit from before coordinators
	// had epochs).
	Epoch uint64 `json:"epoch,omitempty"`
	// Order is the place of the Commit or Reset call that stored it among the
	// calls through one coordinator's Store (WithEpoch), counted from 1; 0 for
	// one stored without an epoch.
	Order    uint64 `json:"order,omitempty"`
	Revision uint64 `json:"-"` // KV revision it was read at
}

// Logical reports whether the commit names no position: a Kafka client committed
// Latest or Earliest, which Kafka stores and hands back, and which its clients
// read as "no committed offset" (Java, franz-go, KafkaJS's consumer) or, for
// Earliest, as "from the log start" (librdkafka, KafkaJS's fetchOffsets with
// resolveOffsets). The coordinator answers such a partition as one never
// committed, but to the Kafka door, which hands the offset back.
func (c Committed) Logical() bool { return c.Offset < 0 }

// Latest and Earliest are the logical offsets a Kafka client may commit (Kafka's
// ListOffsets timestamps for the log end and start): committed, they clear the
// partition's position (Commit).
const (
	Latest   int64 = -1
	Earliest int64 = -2
)

// MaxMetadataLen is the longest commit metadata string accepted, Kafka's default
// offset.metadata.max.bytes.
const MaxMetadataLen = 4096

// NoGeneration is the generation of a commit made outside group membership: an admin
// Reset, or a Commit for a group without active members (Kafka's generation -1).
const NoGeneration int32 = -1

const (
	// markerTTL is how long the purge marker of a deleted commit stays in the bucket.
	// It expires so that deleted groups leave nothing behind.
	markerTTL = 10 * time.Minute
	// maxInFlight bounds the KV requests one call has outstanding at once.
	maxInFlight = 16
)

// Store is the committed-offset store on the qxd_offsets bucket. Safe for concurrent use.
type Store struct {
	// js, when set (Open), reads commits from the bucket's leader.
	js jetstream.JetStream
	kv jetstream.KeyValue
	// purgeTTL is the TTL given to purge markers; 0 when the bucket was not opened by
	// Open and may not allow per-message TTLs.
	purgeTTL time.Duration
	// topics, when set, fences commits by topic incarnation (WithTopics).
	topics Topics
	// epoch, when not 0, fences commits by coordinator epoch (WithEpoch).
	epoch uint64
	// calls counts the Commit and Reset calls through a Store WithEpoch (and
	// the copies made from it), which order its writes (Committed.Order).
	calls *atomic.Uint64
}

// WithEpoch returns a Store whose commits carry the group coordinator's epoch
// (the groups bucket orders them: a coordinator that took over has a higher one)
// and never write over a commit stored with a higher epoch: a coordinator that
// lost its role but has not noticed yet (its node paused or cut off, a commit
// request queued to it) would otherwise store a member's older commit over the
// newer one its successor stored, and the partition's committed offset would go
// back. Such a commit fails with semantics.ErrNotCoordinator, which sends the
// member to look for the coordinator again. A Store without an epoch (0) writes
// as before: over any epoch.
//
// The calls through the returned Store are ordered too: each Commit and Reset
// takes the next number when it is called, stores it (Committed.Order), and
// never writes over a commit of the same epoch stored by a call made after it.
// A call whose reads and writes wait (the bucket's leader out of reach: a cut
// between the coordinator's node and the leader's) can go on for seconds after
// its caller gave up and committed again, and would otherwise store the older
// offset over the newer one once the leader answers: the committed offset
// would go back. Such a call returns without writing, as if its write had
// been stored and then overwritten by the later call's.
func (s *Store) WithEpoch(epoch uint64) *Store {
	c := *s
	c.epoch = epoch
	c.calls = new(atomic.Uint64)
	return &c
}

// nextOrder numbers a Commit or Reset call (WithEpoch); 0 for a Store without
// an epoch.
func (s *Store) nextOrder() uint64 {
	if s.epoch == 0 || s.calls == nil {
		return 0
	}
	return s.calls.Add(1)
}

// Open opens the offsets bucket (semantics.OffsetsBucket), creating it when missing:
// history 1, file storage, replicas copies (1 to 5), per-message TTLs allowed so that
// purge markers of deleted commits expire. An existing bucket is used as it is: nodes
// of a cluster that start with different views of its size must not change its
// replica count. Open is the only place that should create the bucket.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	if replicas < 1 || replicas > 5 {
		return nil, semantics.Errorf(semantics.ErrInvalidReplicationFactor,
			"offsets: open bucket %s: %d replicas: use 1 to 5 (3 for a cluster)", semantics.OffsetsBucket, replicas)
	}
	if kv, err := js.KeyValue(ctx, semantics.OffsetsBucket); err == nil {
		return &Store{kv: kv, js: js, purgeTTL: markerTTL}, nil
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("offsets: open bucket %s: %w", semantics.OffsetsBucket, err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         semantics.OffsetsBucket,
		Description:    "qxd committed offsets of consumer groups",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
		LimitMarkerTTL: markerTTL,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, semantics.OffsetsBucket) // created meanwhile by another node
	}
	if err != nil {
		return nil, fmt.Errorf("offsets: open bucket %s: %w", semantics.OffsetsBucket, err)
	}
	return &Store{kv: kv, js: js, purgeTTL: markerTTL}, nil
}

// New wraps an opened offsets bucket, for clients that only read it. Deletes through
// such a Store leave purge markers without an expiry.
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Fetch returns the commits of the given partitions; partitions without a commit are
// absent (with WithTopics, so are commits of an earlier incarnation of a topic).
// Logical commits (Latest, Earliest) are returned as stored: see Committed.Logical.
func (s *Store) Fetch(ctx context.Context, group string, tps []semantics.TopicPartition) (map[semantics.TopicPartition]Committed, error) {
	if err := semantics.ValidateGroupID(group); err != nil {
		return nil, fmt.Errorf("offsets: fetch: %w", err)
	}
	for _, tp := range tps {
		if err := validatePartition(tp); err != nil {
			return nil, fmt.Errorf("offsets: fetch group %q: %w", group, err)
		}
	}
	found := make([]*Committed, len(tps))
	errs := make([]error, len(tps))
	parallel(len(tps), func(i int) {
		found[i], errs[i] = s.get(ctx, semantics.OffsetKey(group, tps[i].Topic, tps[i].Partition))
	})
	out := make(map[semantics.TopicPartition]Committed, len(tps))
	for i, tp := range tps {
		if errs[i] != nil {
			return nil, fmt.Errorf("offsets: fetch group %q partition %s: %w", group, tp, errs[i])
		}
		if found[i] != nil {
			out[tp] = *found[i]
		}
	}
	if err := s.dropStale(ctx, group, out); err != nil {
		return nil, fmt.Errorf("offsets: fetch group %q: %w", group, err)
	}
	return out, nil
}

// List returns every commit of group; a group without commits gives an empty map.
// With WithTopics, commits of an earlier incarnation of a topic are left out.
// Logical commits are returned as stored, as Fetch does. Each commit carries the
// revision it was read at, which DeleteCommits purges it on.
func (s *Store) List(ctx context.Context, group string) (map[semantics.TopicPartition]Committed, error) {
	if err := semantics.ValidateGroupID(group); err != nil {
		return nil, fmt.Errorf("offsets: list: %w", err)
	}
	out, err := s.listAll(ctx, group)
	if err == nil {
		err = s.dropStale(ctx, group, out)
	}
	if err != nil {
		return nil, fmt.Errorf("offsets: list group %q: %w", group, err)
	}
	return out, nil
}

// listAll reads every commit of group, also those of earlier incarnations of
// their topics: from the bucket's leader when the Store was made by Open
// (listFromLeader), with a scan otherwise.
func (s *Store) listAll(ctx context.Context, group string) (map[semantics.TopicPartition]Committed, error) {
	if s.js != nil {
		return s.listFromLeader(ctx, group)
	}
	out := map[semantics.TopicPartition]Committed{}
	err := s.scan(ctx, semantics.GroupOffsetsFilter(group), false, func() { clear(out) }, func(e jetstream.KeyValueEntry) error {
		g, topic, p, err := semantics.ParseOffsetKey(e.Key())
		if err != nil {
			return err
		}
		if g != group {
			return fmt.Errorf("key %q is not of group %q", e.Key(), group)
		}
		c, err := decode(e)
		if err != nil {
			return err
		}
		out[semantics.TopicPartition{Topic: topic, Partition: p}] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listFromLeader reads group's commits from the bucket's leader, as Fetch does:
// the keys from the stream's info (its subjects under the group's filter), each
// value with a message get. A scan's watcher reads one replica's copy, any
// replica's: one cut apart from the leader (a cut between two nodes while the
// third reaches both) holds what it held at the cut for as long as the cut
// lasts, and one catching up after it can miss keys.
func (s *Store) listFromLeader(ctx context.Context, group string) (map[semantics.TopicPartition]Committed, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	prefix := semantics.KVKeySubject(semantics.OffsetsBucket, "")
	info, err := s.keysFromLeader(ctx, prefix+semantics.GroupOffsetsFilter(group))
	if err != nil {
		return nil, fmt.Errorf("read the bucket's keys from its leader: %w", err)
	}
	var keys []string
	for subj := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subj, prefix))
	}
	slices.Sort(keys)
	found := make([]*Committed, len(keys))
	errs := make([]error, len(keys))
	parallel(len(keys), func(i int) {
		found[i], errs[i] = s.getFromLeader(ctx, keys[i])
	})
	out := map[semantics.TopicPartition]Committed{}
	for i, key := range keys {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if found[i] == nil {
			continue // deleted
		}
		g, topic, p, err := semantics.ParseOffsetKey(key)
		if err != nil {
			return nil, err
		}
		if g != group {
			return nil, fmt.Errorf("key %q is not of group %q", key, group)
		}
		out[semantics.TopicPartition{Topic: topic, Partition: p}] = *found[i]
	}
	return out, nil
}

// leaderAttempt bounds one read of the bucket's stream info from its leader: a
// request sent to a leader that went silent (its node paused or cut off) gets
// no answer, and the leader elected next answers only the requests sent after
// its election.
const leaderAttempt = time.Second

// keysFromLeader reads the bucket's stream info with the subjects under filter
// from its leader, in attempts of leaderAttempt while they fail for a reason
// that passes (kvscan.Transient), until ctx ends. Without the attempts, a
// coordinator's first join of a new group (its initial generation reads the
// group's commits) waited for a paused leader for the whole join.
func (s *Store) keysFromLeader(ctx context.Context, filter string) (*jetstream.StreamInfo, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, leaderAttempt)
		st, err := s.js.Stream(actx, semantics.KVStream(semantics.OffsetsBucket))
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = st.Info(actx, jetstream.WithSubjectFilter(filter))
		}
		cancel()
		if err == nil || ctx.Err() != nil || !kvscan.Transient(err) {
			return info, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Groups lists the group ids that have commits, sorted.
func (s *Store) Groups(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := s.scan(ctx, jetstream.AllKeys, true, func() { clear(seen) }, func(e jetstream.KeyValueEntry) error {
		token, _, _ := strings.Cut(e.Key(), ".")
		g, err := semantics.DecodeGroupID(token)
		if err != nil {
			return fmt.Errorf("key %q: %w", e.Key(), err)
		}
		seen[g] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("offsets: list groups: %w", err)
	}
	groups := make([]string, 0, len(seen))
	for g := range seen {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	return groups, nil
}

// Delete removes every commit of group, each only at the revision it was read
// at (DeleteCommits). A group without commits gives an error wrapping
// semantics.ErrGroupIDNotFound.
func (s *Store) Delete(ctx context.Context, group string) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return fmt.Errorf("offsets: delete: %w", err)
	}
	listed, err := s.listAll(ctx, group)
	if err != nil {
		return fmt.Errorf("offsets: delete group %q: %w", group, err)
	}
	if len(listed) == 0 {
		return semantics.Errorf(semantics.ErrGroupIDNotFound,
			"offsets: delete group %q: the group has no committed offsets: list groups to see the ids", group)
	}
	return s.DeleteCommits(ctx, group, listed)
}

// DeleteCommits purges group's commits listed, as read by List or Fetch: each
// only at the revision it was read at, so that a commit stored since, through a
// newer group coordinator or not, is kept. A Store WithEpoch purges nothing when
// a listed commit was stored through a newer coordinator, and fails with
// semantics.ErrNotCoordinator; a purge that meets a commit stored since fails
// with semantics.ErrNotCoordinator when that commit's epoch is newer than the
// Store's, semantics.ErrTimeout (retriable: list and delete again) otherwise.
// A commit deleted since counts as deleted. Other keys are purged all the
// same; the error names those that were not.
func (s *Store) DeleteCommits(ctx context.Context, group string, listed map[semantics.TopicPartition]Committed) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return fmt.Errorf("offsets: delete: %w", err)
	}
	tps := sortedKeys(listed)
	for _, tp := range tps {
		c := listed[tp]
		if c.Revision == 0 {
			return semantics.Errorf(semantics.ErrInvalidRequest,
				"offsets: delete group %q partition %s: the commit carries no revision: delete commits as List or Fetch read them", group, tp)
		}
		if s.epoch != 0 && c.Epoch > s.epoch {
			return semantics.Errorf(semantics.ErrNotCoordinator,
				"offsets: delete group %q partition %s: the commit was made through a newer group coordinator (epoch %d; this one's is %d): find the coordinator again",
				group, tp, c.Epoch, s.epoch)
		}
	}
	errs := make([]error, len(tps))
	parallel(len(tps), func(i int) {
		errs[i] = s.purgeAt(ctx, group, tps[i], listed[tps[i]].Revision)
	})
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	// NOT_COORDINATOR first: it is the code the error answers with (errors.As).
	slices.SortStableFunc(failed, func(a, b error) int {
		na, nb := errors.Is(a, semantics.ErrNotCoordinator), errors.Is(b, semantics.ErrNotCoordinator)
		switch {
		case na && !nb:
			return -1
		case nb && !na:
			return 1
		}
		return 0
	})
	if len(failed) > 0 {
		return fmt.Errorf("offsets: delete group %q: %d of %d commits not deleted: %w", group, len(failed), len(tps), errors.Join(failed...))
	}
	return nil
}

// purgeAt purges tp's commit of group at revision rev, and says why not when
// another write came since (DeleteCommits).
func (s *Store) purgeAt(ctx context.Context, group string, tp semantics.TopicPartition, rev uint64) error {
	key := semantics.OffsetKey(group, tp.Topic, tp.Partition)
	opts := []jetstream.KVDeleteOpt{jetstream.LastRevision(rev)}
	if s.purgeTTL > 0 {
		opts = append(opts, jetstream.PurgeTTL(s.purgeTTL))
	}
	err := s.kv.Purge(ctx, key, opts...)
	if err == nil {
		return nil
	}
	if !isConflict(err) {
		return fmt.Errorf("purge %s: %w", tp, err)
	}
	now, gerr := s.get(ctx, key)
	switch {
	case gerr != nil:
		return fmt.Errorf("purge %s at revision %d: %w", tp, rev, err)
	case now == nil:
		return nil // deleted since
	case s.epoch != 0 && now.Epoch > s.epoch:
		return semantics.Errorf(semantics.ErrNotCoordinator,
			"purge %s refused: a commit was stored since through a newer group coordinator (epoch %d; this one's is %d): find the coordinator again",
			tp, now.Epoch, s.epoch)
	default:
		return semantics.Errorf(semantics.ErrTimeout,
			"purge %s refused: a commit was stored since it was read (revision %d, now %d): list and delete again", tp, rev, now.Revision)
	}
}

// DeleteTopic removes group's commits of one topic, as Kafka's OffsetDelete. A topic
// without commits in the group is no error; a group without any commits gives an
// error wrapping semantics.ErrGroupIDNotFound.
func (s *Store) DeleteTopic(ctx context.Context, group, topic string) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return fmt.Errorf("offsets: delete topic: %w", err)
	}
	if err := semantics.ValidateTopicName(topic); err != nil {
		return fmt.Errorf("offsets: delete topic of group %q: %w", group, err)
	}
	filter := semantics.EncodeGroupID(group) + "." + semantics.EncodeTopic(topic) + ".*"
	keys, err := s.keys(ctx, filter, 0)
	if err != nil {
		return fmt.Errorf("offsets: delete topic %q of group %q: %w", topic, group, err)
	}
	if len(keys) == 0 {
		rest, err := s.keys(ctx, semantics.GroupOffsetsFilter(group), 1)
		if err != nil {
			return fmt.Errorf("offsets: delete topic %q of group %q: %w", topic, group, err)
		}
		if len(rest) == 0 {
			return semantics.Errorf(semantics.ErrGroupIDNotFound,
				"offsets: delete topic %q of group %q: the group has no committed offsets: list groups to see the ids", topic, group)
		}
		return nil
	}
	if err := s.purge(ctx, keys); err != nil {
		return fmt.Errorf("offsets: delete topic %q of group %q: %w", topic, group, err)
	}
	return nil
}

// get reads one commit; nil without error when the key has none. A Store made by
// Open reads from the bucket's leader: a direct get may be answered by a replica
// that is behind (one back from a network cut answers while it catches up), and a
// stale commit sends a member back over records its group committed, and makes a
// compare-and-set fail on an old revision. A Store made by New reads with a
// direct get (kvscan.Get), sent again past a replica that does not answer.
func (s *Store) get(ctx context.Context, key string) (*Committed, error) {
	if s.js != nil {
		return s.getFromLeader(ctx, key)
	}
	e, err := kvscan.Get(ctx, s.kv, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := decode(e)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// getFromLeader reads key's last entry with the JetStream API's message get, which
// the bucket's stream leader answers (kvscan.LeaderGet).
func (s *Store) getFromLeader(ctx context.Context, key string) (*Committed, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	v, rev, err := kvscan.LeaderGet(ctx, s.js.Conn(), semantics.OffsetsBucket, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c Committed
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, fmt.Errorf("stored commit %q is corrupt (reset or delete it): %w", key, err)
	}
	c.Revision = rev
	return &c, nil
}

func decode(e jetstream.KeyValueEntry) (Committed, error) {
	var c Committed
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return c, fmt.Errorf("stored commit %q is corrupt (reset or delete it): %w", e.Key(), err)
	}
	c.Revision = e.Revision()
	return c, nil
}

// purge removes keys and their history, leaving markers that expire when the bucket
// allows it.
func (s *Store) purge(ctx context.Context, keys []string) error {
	var opts []jetstream.KVDeleteOpt
	if s.purgeTTL > 0 {
		opts = append(opts, jetstream.PurgeTTL(s.purgeTTL))
	}
	errs := make([]error, len(keys))
	parallel(len(keys), func(i int) {
		if err := s.kv.Purge(ctx, keys[i], opts...); err != nil {
			errs[i] = fmt.Errorf("purge key %q: %w", keys[i], err)
		}
	})
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d commits not deleted: %w", len(failed), len(keys), errors.Join(failed...))
	}
	return nil
}

// validatePartition checks a partition named in a request.
func validatePartition(tp semantics.TopicPartition) error {
	if err := semantics.ValidateTopicName(tp.Topic); err != nil {
		return err
	}
	if tp.Partition < 0 {
		return semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %d of topic %q is negative: partitions are numbered from 0", tp.Partition, tp.Topic)
	}
	return nil
}
