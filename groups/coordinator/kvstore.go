package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// KVStateStore keeps group states in a JetStream KV bucket (qxd_groups), one key per
// group.
type KVStateStore struct{ kv jetstream.KeyValue }

// NewKVStateStore wraps an opened bucket.
func NewKVStateStore(kv jetstream.KeyValue) *KVStateStore { return &KVStateStore{kv: kv} }

var _ StateStore = (*KVStateStore)(nil)

// LoadGroups reads every stored group.
func (s *KVStateStore) LoadGroups(ctx context.Context) ([]GroupState, error) {
	var out []GroupState
	err := kvscan.Scan(ctx, s.kv, jetstream.AllKeys, func() { out = out[:0] }, func(e jetstream.KeyValueEntry) error {
		var st GroupState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return fmt.Errorf("group record %q is corrupt: %w", e.Key(), err)
		}
		st.Revision = e.Revision()
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
	return s.kv.Update(ctx, semantics.GroupKey(st.Group), b, st.Revision)
}

// DeleteGroup removes a group.
func (s *KVStateStore) DeleteGroup(ctx context.Context, group string) error {
	return s.kv.Purge(ctx, semantics.GroupKey(group))
}
