package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// KVStateStore keeps group states in a JetStream KV bucket (qxd_groups), one key per
// group. Each state carries the epoch of the coordinator that saved it (Claim),
// so that a coordinator deposed without noticing yet can never write over a newer
// one's state.
type KVStateStore struct {
	nc    *nats.Conn // reads the bucket from its leader (LoadGroups)
	kv    jetstream.KeyValue
	epoch uint64 // this coordinator's (Claim); 0: none claimed
}

// NewKVStateStore wraps an opened bucket; nc reaches the bucket's leader. Its saves
// carry epoch 0 until a coordinator claims one (Claim).
func NewKVStateStore(nc *nats.Conn, kv jetstream.KeyValue) *KVStateStore {
	return &KVStateStore{nc: nc, kv: kv}
}

var _ StateStore = (*KVStateStore)(nil)

// ErrDeposed is returned, wrapped, by KVStateStore.SaveGroup when the stored group
// was saved by a coordinator of a newer epoch: this one's node lost the groups
// bucket's leadership and another coordinator took the group over. The save
// changed nothing; the coordinator must stop acting for the group.
var ErrDeposed = errors.New("a newer coordinator took the group over")

// Claim returns a store for one coordinator incarnation, with an epoch that the
// bucket itself orders: the revision of a put of semantics.CoordinatorEpochKey
// (its value names holder, the node). Revisions of one stream only grow,
// and the put needs the bucket's quorum, so a coordinator that claims later has a
// higher epoch than every coordinator before it. Claim before loading the groups
// (LoadGroups), so that every save of an older coordinator that the load missed
// has a lower epoch.
func (s *KVStateStore) Claim(ctx context.Context, holder string) (*KVStateStore, error) {
	b, err := json.Marshal(struct {
		Node string `json:"node"`
	}{holder})
	if err != nil {
		return nil, err
	}
	rev, err := s.kv.Put(ctx, semantics.CoordinatorEpochKey, b)
	if err != nil {
		return nil, fmt.Errorf("groups: claim a coordinator epoch: %w", err)
	}
	return &KVStateStore{nc: s.nc, kv: s.kv, epoch: rev}, nil
}

// WatchClaims watches semantics.CoordinatorEpochKey and calls deposed, once, with
// the newer epoch, when a claim newer than this store's epoch (Claim) is stored,
// or was before the watch began: another coordinator took every group over, and
// this one must stop answering for them (Coordinator.Close), also the requests it
// answers without saving (heartbeats, offset fetches, describes), which its saves'
// fence (ErrDeposed) does not reach. The watch is a consumer of the bucket's
// stream that delivers the key's last claim and each later one, apart from the
// requests: it costs none of them anything. It fails when the watch cannot be
// set up; stop ends it and waits for it. A node cut off from the bucket's leader
// learns of a claim only when its link comes back, as it learns of anything else.
//
// The watch's consumer is one replica: JetStream's meta leader places it on any
// replica of the bucket it counts online, and a paused or cut-off node counts
// so for seconds; a consumer placed there is never made and its request never
// answered. So claimWatchRace watches are asked for at once, each placed at
// random, and the first made is kept; when none is made within
// claimWatchAttempt they are dropped and asked for again (each time with twice
// as long), up to claimWatchAttempts in all.
func (s *KVStateStore) WatchClaims(ctx context.Context, deposed func(epoch uint64)) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.watchClaims(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("groups: watch coordinator claims: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil && e.Revision() > s.epoch { // nil: the last claim was delivered
					deposed(e.Revision())
					return
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// claimWatchAttempt is how long WatchClaims waits for its first watch to be
// made: a consumer is made in milliseconds on a healthy replica, and in well
// under a second on a loaded machine.
const claimWatchAttempt = time.Second

// claimWatchAttempts bounds the rounds of watches WatchClaims asks for: 1 + 2 +
// 4 s.
const claimWatchAttempts = 3

// claimWatchRace is how many watches WatchClaims asks for at once. With one of
// three replicas paused, one watch was placed there about one time in three
// (TestClaimsWatchMadePastAPausedReplica: 6 of 32 watches made on the second
// attempt, 4 on the third); two at once both are about one time in nine.
const claimWatchRace = 2

// watchClaims makes the watch of semantics.CoordinatorEpochKey, which lives
// until ctx ends, in attempts (see WatchClaims).
func (s *KVStateStore) watchClaims(ctx context.Context) (jetstream.KeyWatcher, error) {
	type made struct {
		w      jetstream.KeyWatcher
		cancel context.CancelFunc
		err    error
	}
	attempt := claimWatchAttempt
	for i := 1; ; i++ {
		mc := make(chan made, claimWatchRace)
		for range claimWatchRace {
			// A watcher lives as long as its context: nats.go unsubscribes
			// when it ends.
			wctx, wcancel := context.WithCancel(ctx)
			go func() {
				w, err := s.kv.Watch(wctx, semantics.CoordinatorEpochKey, jetstream.MetaOnly())
				mc <- made{w, wcancel, err}
			}()
		}
		// drop stops and ends the watches of this round not yet taken, once
		// made or failed: n of them.
		drop := func(n int) {
			for range n {
				m := <-mc
				if m.err == nil {
					_ = m.w.Stop()
				}
				m.cancel()
			}
		}
		t := time.NewTimer(attempt)
		var first error
		for pending := claimWatchRace; pending > 0; {
			select {
			case m := <-mc:
				pending--
				if m.err != nil {
					m.cancel()
					if first == nil {
						first = m.err
					}
					if pending == 0 {
						t.Stop()
						return nil, first
					}
					continue
				}
				t.Stop()
				go drop(pending)
				go func() { <-ctx.Done(); m.cancel() }()
				return m.w, nil
			case <-t.C:
				go drop(pending)
				pending = 0
			case <-ctx.Done():
				t.Stop()
				go drop(pending)
				return nil, ctx.Err()
			}
		}
		if i == claimWatchAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("no watch made in %d rounds (the last %v): %w", i, attempt, context.DeadlineExceeded)
		}
		attempt *= 2
	}
}

// Epoch is the coordinator epoch this store saves with (Claim); 0 if none.
func (s *KVStateStore) Epoch() uint64 { return s.epoch }

// LoadGroups reads every stored group as the bucket's leader holds it
// (kvscan.LeaderScan): a coordinator starts from it, and a replica behind the
// leader would give it an older generation and member list, from which it would
// accept members the newer generation fenced. With no leader it waits for one
// until ctx ends, then fails with an error that wraps kvscan.ErrNoLeader. A store
// with an epoch (Claim) fails with an error that wraps ErrDeposed when another
// coordinator claimed a newer epoch, or saved a group with one, since: this one
// must not start. It leaves out keys that are not a group's
// (semantics.CoordinatorEpochKey).
func (s *KVStateStore) LoadGroups(ctx context.Context) ([]GroupState, error) {
	var out []GroupState
	err := kvscan.LeaderScan(ctx, s.nc, s.kv, jetstream.AllKeys, func(e kvscan.Entry) error {
		if e.Key == semantics.CoordinatorEpochKey {
			if s.epoch != 0 && e.Revision > s.epoch {
				return fmt.Errorf("coordinator epoch %d claimed since this one's %d: %w", e.Revision, s.epoch, ErrDeposed)
			}
			return nil
		}
		if strings.Contains(e.Key, ".") {
			return nil // not a group's key (GroupKey has one token)
		}
		var st GroupState
		if err := json.Unmarshal(e.Value, &st); err != nil {
			return fmt.Errorf("group record %q is corrupt: %w", e.Key, err)
		}
		if s.epoch != 0 && st.Epoch > s.epoch {
			return fmt.Errorf("group %q: saved by the coordinator of epoch %d, this one is of epoch %d: %w",
				st.Group, st.Epoch, s.epoch, ErrDeposed)
		}
		st.Revision = e.Revision
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveRounds bounds how many times SaveGroup writes again over a stored entry,
// read from the leader, after its compare-and-set met a newer revision: another
// save can land between the read and the write.
const saveRounds = 3

// SaveGroup writes a group, stamped with the store's epoch, by compare-and-set on
// its revision (0: the group must not exist yet). When the stored revision moved
// on, or the group exists already, it reads what is stored from the bucket's
// leader: a state of a newer epoch is a newer coordinator's, and the save fails
// with an error that wraps ErrDeposed; a state of a newer generation fails it too
// (the revision's conflict). Otherwise (the stored state is of this epoch or an
// older one, of this generation or an older one) it writes again at the leader's
// revision, up to saveRounds times.
func (s *KVStateStore) SaveGroup(ctx context.Context, st GroupState) (uint64, error) {
	st.Epoch = s.epoch
	b, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	key := semantics.GroupKey(st.Group)
	for rev, round := st.Revision, 0; ; round++ {
		var saved uint64
		if rev == 0 {
			// A deleted group leaves a tombstone; Create handles that.
			saved, err = s.kv.Create(ctx, key, b)
		} else {
			saved, err = s.kv.Update(ctx, key, b, rev)
		}
		conflict := errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
		if !conflict || round == saveRounds {
			return saved, err
		}
		// The stored revision moved on. When what is stored is of this epoch
		// and generation or older ones, it is this coordinator's own save whose
		// acknowledgement was lost while the bucket changed leaders, or the
		// save of a coordinator this one took over from: write over it at its
		// revision. A newer epoch is a newer coordinator's (this one was
		// deposed and has not noticed yet), a newer generation another
		// coordinator's: the conflict stands. The stored entry is read from the
		// bucket's leader, which the compare-and-set is decided by: a replica
		// behind it would give a revision already gone, and the save would fail
		// on it.
		v, stored, gerr := kvscan.LeaderGet(ctx, s.nc, s.kv.Bucket(), key)
		if gerr != nil {
			return 0, fmt.Errorf("group %q: %w", st.Group, err)
		}
		var was GroupState
		if jerr := json.Unmarshal(v, &was); jerr != nil {
			return 0, fmt.Errorf("group %q: %w", st.Group, err)
		}
		if was.Epoch > s.epoch {
			return 0, fmt.Errorf("group %q: stored by the coordinator of epoch %d, this one is of epoch %d: %w",
				st.Group, was.Epoch, s.epoch, ErrDeposed)
		}
		if was.Generation > st.Generation {
			return 0, fmt.Errorf("group %q: stored at generation %d by another coordinator: %w", st.Group, was.Generation, err)
		}
		rev = stored
	}
}

// CheckClaim reads semantics.CoordinatorEpochKey from the bucket's leader and
// fails with an error wrapping ErrDeposed when a coordinator claimed an epoch
// newer than this store's since (Claim); a store that claimed none passes.
func (s *KVStateStore) CheckClaim(ctx context.Context) error {
	if s.epoch == 0 {
		return nil
	}
	_, rev, err := kvscan.LeaderGet(ctx, s.nc, s.kv.Bucket(), semantics.CoordinatorEpochKey)
	if err != nil {
		return fmt.Errorf("groups: read the coordinator claim: %w", err)
	}
	if rev > s.epoch {
		return fmt.Errorf("coordinator epoch %d claimed since this one's %d: %w", rev, s.epoch, ErrDeposed)
	}
	return nil
}

// DeleteGroup removes a group's state, the one this coordinator saved or loaded
// at revision rev (GroupState.Revision; 0: it stored none), unless a newer
// coordinator claimed the groups since this store's claim (CheckClaim). The
// purge is conditional on rev: a claim stored after that read, and a state saved
// through it since (a newer coordinator saves every group it loads), make it
// fail, deleting nothing, with an error wrapping ErrDeposed when the stored
// state is of a newer epoch, and ErrStateChanged otherwise; a state deleted
// since counts as deleted. With rev 0 nothing is purged: a state stored since
// is another coordinator's.
func (s *KVStateStore) DeleteGroup(ctx context.Context, group string, rev uint64) error {
	if err := s.CheckClaim(ctx); err != nil {
		return fmt.Errorf("group %q: delete: %w", group, err)
	}
	if rev == 0 {
		return nil
	}
	key := semantics.GroupKey(group)
	err := s.kv.Purge(ctx, key, jetstream.LastRevision(rev))
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	v, stored, gerr := kvscan.LeaderGet(ctx, s.nc, s.kv.Bucket(), key)
	if errors.Is(gerr, jetstream.ErrKeyNotFound) {
		return nil // deleted since
	}
	if gerr != nil {
		return fmt.Errorf("group %q: delete at revision %d: %w", group, rev, err)
	}
	var was GroupState
	if jerr := json.Unmarshal(v, &was); jerr == nil && was.Epoch > s.epoch {
		return fmt.Errorf("group %q: delete: stored by the coordinator of epoch %d, this one is of epoch %d: %w",
			group, was.Epoch, s.epoch, ErrDeposed)
	}
	return fmt.Errorf("group %q: delete: saved at revision %d since this coordinator's %d: %w", group, stored, rev, ErrStateChanged)
}

// ErrStateChanged is returned, wrapped, by KVStateStore.DeleteGroup when the
// group's state was saved again since the revision the delete was given, by a
// coordinator not newer than this one: the delete changed nothing and may be
// tried again.
var ErrStateChanged = errors.New("the group's state changed while it was being deleted")
