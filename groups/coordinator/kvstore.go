package coordinator

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

// KVStateStore keeps group states in a JetStream KV bucket (qxd_groups), one key per
// group.
type KVStateStore struct {
	nc *nats.Conn // reads the bucket from its leader (LoadGroups)
	kv jetstream.KeyValue
}

// NewKVStateStore wraps an opened bucket; nc reaches the bucket's leader.
func NewKVStateStore(nc *nats.Conn, kv jetstream.KeyValue) *KVStateStore {
	return &KVStateStore{nc: nc, kv: kv}
}

var _ StateStore = (*KVStateStore)(nil)

// LoadGroups reads every stored group as the bucket's leader holds it
// (kvscan.LeaderScan): a coordinator starts from it, and a replica behind the
// leader would give it an older generation and member list, from which it would
// accept members the newer generation fenced. With no leader it waits for one
// until ctx ends, then fails with an error that wraps kvscan.ErrNoLeader.
func (s *KVStateStore) LoadGroups(ctx context.Context) ([]GroupState, error) {
	var out []GroupState
	err := kvscan.LeaderScan(ctx, s.nc, s.kv, jetstream.AllKeys, func(e kvscan.Entry) error {
		var st GroupState
		if err := json.Unmarshal(e.Value, &st); err != nil {
			return fmt.Errorf("group record %q is corrupt: %w", e.Key, err)
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

// saveRounds bounds how many times SaveGroup writes again over a stored entry of
// the group's own generation, read from the leader, after its compare-and-set
// met a newer revision: another save can land between the read and the write.
const saveRounds = 3

// SaveGroup writes a group by compare-and-set on its revision; when the stored
// revision moved on but what is stored is of the group's generation or an older
// one, it writes again at the leader's revision, up to saveRounds times.
func (s *KVStateStore) SaveGroup(ctx context.Context, st GroupState) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	if st.Revision == 0 {
		rev, err := s.kv.Create(ctx, semantics.GroupKey(st.Group), b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			// A deleted group leaves a tombstone; Create handles that, so this is a
			// real conflict with another coordinator.
			return 0, fmt.Errorf("group %q was written by another coordinator", st.Group)
		}
		return rev, err
	}
	key := semantics.GroupKey(st.Group)
	for rev, round := st.Revision, 0; ; round++ {
		saved, err := s.kv.Update(ctx, key, b, rev)
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) || round == saveRounds {
			return saved, err
		}
		// The stored revision moved on. When what is stored is of this
		// generation or an older one, it is this coordinator's own save whose
		// acknowledgement was lost while the bucket changed leaders (or a
		// coordinator's it took over from): write over it at its revision. A
		// newer generation is another coordinator's: the conflict stands. The
		// stored entry is read from the bucket's leader, which the
		// compare-and-set is decided by: a replica behind it would give a
		// revision already gone, and the save would fail on it.
		v, stored, gerr := kvscan.LeaderGet(ctx, s.nc, s.kv.Bucket(), key)
		if gerr != nil {
			return 0, err
		}
		var was GroupState
		if jerr := json.Unmarshal(v, &was); jerr != nil || was.Generation > st.Generation {
			return 0, err
		}
		rev = stored
	}
}

// DeleteGroup removes a group.
func (s *KVStateStore) DeleteGroup(ctx context.Context, group string) error {
	return s.kv.Purge(ctx, semantics.GroupKey(group))
}
