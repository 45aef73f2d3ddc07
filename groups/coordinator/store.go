package coordinator

import (
	"context"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// GroupState is a group as the coordinator stores it, so that another node can take
// the group over: who is in it, in which generation, with what assignment.
type GroupState struct {
	Group        string        `json:"group"`
	State        groups.State  `json:"state"`
	Generation   int32         `json:"generation"`
	ProtocolType string        `json:"protocol_type,omitempty"`
	Protocol     string        `json:"protocol,omitempty"`
	Leader       string        `json:"leader,omitempty"`
	Members      []MemberState `json:"members,omitempty"`
	// Epoch is the epoch of the coordinator that saved the state
	// (KVStateStore.Claim); 0 for a state saved by a store that claimed none, or
	// by a build before epochs.
	Epoch uint64 `json:"epoch,omitempty"`
	// Revision is the store revision the state was read or written at (not stored).
	Revision uint64 `json:"-"`
}

// MemberState is one member as stored.
type MemberState struct {
	MemberID         string            `json:"member_id"`
	InstanceID       string            `json:"instance_id,omitempty"`
	ClientID         string            `json:"client_id,omitempty"`
	ClientHost       string            `json:"client_host,omitempty"`
	JoinKey          string            `json:"join_key,omitempty"` // the first join's JoinKey
	SessionTimeout   time.Duration     `json:"session_timeout"`
	RebalanceTimeout time.Duration     `json:"rebalance_timeout"`
	Protocols        []groups.Protocol `json:"protocols"`
	Assignment       []byte            `json:"assignment,omitempty"`
}

// StateStore persists group states. SaveGroup is a compare-and-set on Revision (0:
// the group must not exist yet) and returns the new revision. CheckClaim fails
// with an error wrapping ErrDeposed when a newer coordinator claimed the groups
// since this store's own claim; DeleteGroup fails so too, deleting nothing, and
// purges the state only at the revision given (0: none), the one the
// coordinator saved or loaded last.
type StateStore interface {
	LoadGroups(ctx context.Context) ([]GroupState, error)
	SaveGroup(ctx context.Context, g GroupState) (uint64, error)
	DeleteGroup(ctx context.Context, group string, rev uint64) error
	CheckClaim(ctx context.Context) error
}

// OffsetStore holds committed offsets; *offsets.Store implements it.
type OffsetStore interface {
	Commit(ctx context.Context, group string, gen int32, member string, o map[semantics.TopicPartition]offsets.Commit) error
	Fetch(ctx context.Context, group string, tps []semantics.TopicPartition) (map[semantics.TopicPartition]offsets.Committed, error)
	List(ctx context.Context, group string) (map[semantics.TopicPartition]offsets.Committed, error)
	Groups(ctx context.Context) ([]string, error)
	Reset(ctx context.Context, group string, o map[semantics.TopicPartition]int64) error
	// DeleteCommits purges the commits given, each only at the revision it was
	// read at (List).
	DeleteCommits(ctx context.Context, group string, listed map[semantics.TopicPartition]offsets.Committed) error
}

var _ OffsetStore = (*offsets.Store)(nil)
