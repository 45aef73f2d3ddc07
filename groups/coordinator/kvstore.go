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

// SaveGroup writes a group by compare-and-set on its revision.
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
	rev, err := s.kv.Update(ctx, key, b, st.Revision)
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return rev, err
	}
	// The stored revision moved on. When what is stored is of this generation or
	// an older one, it is this coordinator's own save whose acknowledgement was
	// lost while the bucket changed leaders (or a coordinator's it took over
	// from): write over it at its revision. A newer generation is another
	// coordinator's: the conflict stands.
	e, gerr := kvscan.Get(ctx, s.kv, key)
	if gerr != nil {
		return 0, err
	}
	var stored GroupState
	if jerr := json.Unmarshal(e.Value(), &stored); jerr != nil || stored.Generation > st.Generation {
		return 0, err
	}
	return s.kv.Update(ctx, key, b, e.Revision())
}

// DeleteGroup removes a group.
func (s *KVStateStore) DeleteGroup(ctx context.Context, group string) error {
	return s.kv.Purge(ctx, semantics.GroupKey(group))
}
