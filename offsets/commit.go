package offsets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

const (
	// casAttempts is how often a commit of one key is tried when concurrent writers
	// keep changing it between the read and the compare-and-set.
	casAttempts = 10
	// casBackoff is the largest pause before a retry; the pause is random below it.
	casBackoff = 5 * time.Millisecond
)

// WriteError reports a Commit or Reset that did not write every partition: Written
// were stored, Failed were not, with why. It unwraps to the failures, so
// errors.Is(err, semantics.ErrIllegalGeneration) reports a fenced commit.
type WriteError struct {
	Op      string // "commit" or "reset"
	Group   string
	Written []semantics.TopicPartition // sorted
	Failed  map[semantics.TopicPartition]error
}

func (e *WriteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "offsets: %s group %q: %d of %d partitions not written: ",
		e.Op, e.Group, len(e.Failed), len(e.Failed)+len(e.Written))
	for i, tp := range e.failed() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", tp, e.Failed[tp])
	}
	if len(e.Written) == 0 {
		b.WriteString("; none written")
		return b.String()
	}
	b.WriteString("; written: ")
	for i, tp := range e.Written {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tp.String())
	}
	return b.String()
}

// Unwrap returns the failures, in partition order.
func (e *WriteError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed))
	for _, tp := range e.failed() {
		errs = append(errs, e.Failed[tp])
	}
	return errs
}

func (e *WriteError) failed() []semantics.TopicPartition {
	tps := make([]semantics.TopicPartition, 0, len(e.Failed))
	for tp := range e.Failed {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTP)
	return tps
}

// Commit writes offsets for group by compare-and-set on each key. A key whose stored
// Generation is newer than gen is not overwritten: Commit returns an error wrapping
// semantics.ErrIllegalGeneration naming the partition and both generations, so a
// coordinator that fell behind cannot undo a newer generation's commit. A stored
// generation of -1 (an admin Reset) is older than any.
//
// gen NoGeneration (-1) is Kafka's commit for a group without active members (an
// assign-mode consumer, a tool): it is written over any generation's commit, like
// Reset, and the caller must have checked that the group has no members. A Store
// WithEpoch still fences it by epoch, as a member's commit: it is not written over
// a commit stored through a newer coordinator. Other negative generations,
// negative partitions, negative offsets other than Latest and Earliest (see
// CheckOffset) and metadata over MaxMetadataLen are refused with
// semantics.ErrInvalidRequest before anything is written.
//
// An offset of Latest or Earliest clears the partition's position: it is stored
// as it is, by the same fenced write as any commit, and the commit is then
// Logical, which Fetch and List return as they store it and the coordinator
// answers as no committed offset (see Committed.Logical).
//
// A Store WithTopics also checks each partition's topic (see WithTopics) and stores
// its topic id. A compare-and-set conflict with a concurrent writer is retried by
// re-reading the key. Partitions are written independently: if some fail, the error is a *WriteError
// saying which were written.
func (s *Store) Commit(ctx context.Context, group string, gen int32, member string, offsets map[semantics.TopicPartition]Commit) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return fmt.Errorf("offsets: commit: %w", err)
	}
	order := s.nextOrder()
	if gen < NoGeneration {
		return semantics.Errorf(semantics.ErrInvalidRequest,
			"offsets: commit group %q: generation %d is invalid: give the group's generation, or -1 for a group without members", group, gen)
	}
	for tp, c := range offsets {
		if err := validatePartition(tp); err != nil {
			return fmt.Errorf("offsets: commit group %q: %w", group, err)
		}
		if err := CheckOffset(c.Offset); err != nil {
			return fmt.Errorf("offsets: commit group %q partition %s: %w", group, tp, err)
		}
		if len(c.Metadata) > MaxMetadataLen {
			return semantics.Errorf(semantics.ErrInvalidRequest,
				"offsets: commit group %q partition %s: metadata is %d bytes long: the limit is %d", group, tp, len(c.Metadata), MaxMetadataLen)
		}
	}
	tps := sortedKeys(offsets)
	cur, quick, err := s.currentQuick(ctx, tps)
	if err != nil {
		return fmt.Errorf("offsets: commit group %q: %w", group, err)
	}
	confirmed := map[string]bool{} // topics whose record is the current one
	if cur != nil {
		// A quick record that refuses a partition may be behind the current
		// one (a topic just created again, partitions just added): only the
		// current record refuses.
		var refused []semantics.TopicPartition
		for tp, c := range offsets {
			if checkWritable(tp, c.TopicID, cur[tp.Topic]) != nil {
				refused = append(refused, tp)
			}
		}
		if len(refused) > 0 && s.topics != nil {
			fresh, err := s.current(ctx, refused)
			if err != nil {
				return fmt.Errorf("offsets: commit group %q: %w", group, err)
			}
			maps.Copy(cur, fresh)
			for t := range fresh {
				confirmed[t] = true
			}
		}
	}
	now := time.Now().UTC()
	return s.write(ctx, "commit", group, tps, func(ctx context.Context, tp semantics.TopicPartition) error {
		c := offsets[tp]
		v := Committed{Offset: c.Offset, Metadata: c.Metadata, Generation: gen, Member: member, Time: now, TopicID: c.TopicID,
			Epoch: s.epoch, Order: order}
		var isStale func(Committed) bool
		if cur != nil {
			inc := cur[tp.Topic]
			if err := checkWritable(tp, c.TopicID, inc); err != nil {
				return err
			}
			v.TopicID = inc.meta.ID
			isStale = func(old Committed) bool {
				if !stale(old, inc) {
					return false
				}
				if !quick || confirmed[tp.Topic] {
					return true
				}
				// Overwriting a newer generation's commit as another
				// incarnation's takes the current record's word: a quick one
				// behind would take the current incarnation's for an old one.
				fresh, err := s.current(ctx, []semantics.TopicPartition{tp})
				return err == nil && stale(old, fresh[tp.Topic])
			}
		}
		key := semantics.OffsetKey(group, tp.Topic, tp.Partition)
		if gen == NoGeneration && s.epoch == 0 {
			// A Store without an epoch is not a group coordinator run's: the
			// transaction coordinator storing a committed transaction's offsets
			// (fenced by the transaction's producer epoch and the member's
			// generation, not by the group coordinator's epoch), an
			// administrator's tool. No coordinator epoch orders such a write
			// against a run's commits, so it writes over any, as Reset does.
			return s.put(ctx, key, v)
		}
		return s.compareAndSet(ctx, key, tp, v, isStale)
	})
}

// Reset sets offsets as an administrator (Generation -1, Member ""), over any
// generation's commit; a Store WithTopics checks the topics as Commit does. A
// Store WithEpoch (a group coordinator's) stores its epoch with each offset, by
// compare-and-set, and refuses one over a commit stored through a newer
// coordinator with semantics.ErrNotCoordinator: a coordinator deposed without
// noticing yet may take for empty a group that has members again under its
// successor, and would otherwise set back what they committed since. A Store
// without an epoch (a transaction's offsets, a tool) writes unconditionally. Negative offsets are refused with semantics.ErrInvalidRequest before anything is
// written; if some partitions fail, the error is a *WriteError.
func (s *Store) Reset(ctx context.Context, group string, offsets map[semantics.TopicPartition]int64) error {
	order := s.nextOrder()
	if err := semantics.ValidateGroupID(group); err != nil {
		return fmt.Errorf("offsets: reset: %w", err)
	}
	for tp, off := range offsets {
		if err := validateWrite(tp, off); err != nil {
			return fmt.Errorf("offsets: reset group %q: %w", group, err)
		}
	}
	tps := sortedKeys(offsets)
	cur, err := s.current(ctx, tps)
	if err != nil {
		return fmt.Errorf("offsets: reset group %q: %w", group, err)
	}
	now := time.Now().UTC()
	return s.write(ctx, "reset", group, tps, func(ctx context.Context, tp semantics.TopicPartition) error {
		v := Committed{Offset: offsets[tp], Generation: NoGeneration, Time: now, Epoch: s.epoch, Order: order}
		if cur != nil {
			inc := cur[tp.Topic]
			if err := checkWritable(tp, "", inc); err != nil {
				return err
			}
			v.TopicID = inc.meta.ID
		}
		key := semantics.OffsetKey(group, tp.Topic, tp.Partition)
		if s.epoch == 0 {
			return s.put(ctx, key, v)
		}
		return s.compareAndSet(ctx, key, tp, v, nil)
	})
}

// write runs one of tps' writes each, in parallel, and gathers a *WriteError.
func (s *Store) write(ctx context.Context, op, group string, tps []semantics.TopicPartition, one func(context.Context, semantics.TopicPartition) error) error {
	errs := make([]error, len(tps))
	parallel(len(tps), func(i int) { errs[i] = one(ctx, tps[i]) })
	var werr *WriteError
	for i, tp := range tps {
		if errs[i] == nil {
			continue
		}
		if werr == nil {
			werr = &WriteError{Op: op, Group: group, Failed: map[semantics.TopicPartition]error{}}
		}
		werr.Failed[tp] = errs[i]
	}
	if werr == nil {
		return nil
	}
	for i, tp := range tps {
		if errs[i] == nil {
			werr.Written = append(werr.Written, tp)
		}
	}
	return werr
}

// compareAndSet stores v at key unless the stored commit has a newer generation,
// or was stored through a newer coordinator (a higher epoch, WithEpoch). One
// stored through the same coordinator by a later call (a higher Order) is kept,
// and compareAndSet returns nil: v's call came first, its write counts as
// overwritten (WithEpoch). A
// stored commit that isStale says is of an earlier incarnation of the topic is
// overwritten whatever its generation. A v of NoGeneration (a group without
// members) is written over any generation's commit, but not over a newer
// epoch's.
func (s *Store) compareAndSet(ctx context.Context, key string, tp semantics.TopicPartition, v Committed, isStale func(Committed) bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		old, err := s.get(ctx, key)
		if err != nil {
			return fmt.Errorf("read stored commit: %w", err)
		}
		if old == nil {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			if v.Epoch != 0 && old.Epoch > v.Epoch {
				return semantics.Errorf(semantics.ErrNotCoordinator,
					"commit to %s refused: the stored commit was made through a newer group coordinator (epoch %d; this one's is %d): find the coordinator again",
					tp, old.Epoch, v.Epoch)
			}
			if v.Order != 0 && old.Epoch == v.Epoch && old.Order > v.Order {
				return nil // a later call's commit is stored
			}
			if v.Generation != NoGeneration && old.Generation > v.Generation && (isStale == nil || !isStale(*old)) {
				return semantics.Errorf(semantics.ErrIllegalGeneration,
					"commit of generation %d to %s refused: the stored commit is from the newer generation %d (member %q): rejoin the group",
					v.Generation, tp, old.Generation, old.Member)
			}
			_, err = s.kv.Update(ctx, key, b, old.Revision)
		}
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("write: %w", err)
		}
		if attempt == casAttempts {
			return semantics.Errorf(semantics.ErrTimeout,
				"commit to %s: the stored commit kept changing under %d attempts by concurrent writers: retry", tp, casAttempts)
		}
		t := time.NewTimer(rand.N(casBackoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// put stores v at key unconditionally.
func (s *Store) put(ctx context.Context, key string, v Committed) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// isConflict reports whether err is a compare-and-set that lost to another writer.
// Create reports it as ErrKeyExists, Update as ErrKeyRevisionMismatch, and Create over
// a deleted key as the raw "wrong last sequence" API error (10071, or 10164 on
// replicated buckets).
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// CheckOffset checks an offset to commit: the next offset to read (0 or more),
// or Latest or Earliest, which clear the partition's position. Any other negative
// offset is an error wrapping semantics.ErrInvalidRequest. Kafka stores whatever
// number a client commits; qxd takes the two logical offsets clients commit
// (KafkaJS's resetOffsets, a seek to them with auto commit, Sarama's ResetOffset)
// and refuses the rest as the client's mistake rather than keep a number no
// client reads as a position.
func CheckOffset(offset int64) error {
	if offset < 0 && offset != Latest && offset != Earliest {
		return semantics.Errorf(semantics.ErrInvalidRequest,
			"offset %d is negative: commit the next offset to read (0 or more), or -1 (latest) or -2 (earliest) to clear the group's offset", offset)
	}
	return nil
}

// validateWrite checks one partition and offset of a Reset.
func validateWrite(tp semantics.TopicPartition, offset int64) error {
	if err := validatePartition(tp); err != nil {
		return err
	}
	if offset < 0 {
		return semantics.Errorf(semantics.ErrInvalidRequest,
			"partition %s: offset %d is negative: reset to the next offset to read, 0 or more", tp, offset)
	}
	return nil
}

func sortedKeys[V any](m map[semantics.TopicPartition]V) []semantics.TopicPartition {
	tps := make([]semantics.TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTP)
	return tps
}

func compareTP(a, b semantics.TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}
