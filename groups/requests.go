package groups

import (
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// The coordinator's requests and responses mirror Kafka's JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups and
// DeleteGroups. They are declared once, here: the SDK sends them as JSON on
// semantics.Group* subjects, qxd's NATS service decodes them into these same types,
// and a Kafka-protocol front door fills them from Kafka's messages.

// JoinRequest is Kafka's JoinGroup.
type JoinRequest struct {
	Group string `json:"group"`
	// MemberID is empty for a member joining for the first time; the coordinator
	// gives it one.
	MemberID string `json:"member_id,omitempty"`
	// JoinKey, chosen by the client at random, names a first join (no MemberID)
	// so that the same request sent again — its answer was lost with the
	// connection, and the client moved to another node — joins as the member the
	// first one made instead of adding another, which the group would wait for
	// until its session timeout. Empty: every first join adds a member (Kafka's
	// JoinGroup, whose MEMBER_ID_REQUIRED round trip serves the same end).
	JoinKey string `json:"join_key,omitempty"`
	// InstanceID makes the member static (Kafka's group.instance.id).
	InstanceID       string        `json:"instance_id,omitempty"`
	ClientID         string        `json:"client_id,omitempty"`
	ClientHost       string        `json:"client_host,omitempty"` // the member's address, as Kafka shows it ("/127.0.0.1")
	SessionTimeout   time.Duration `json:"session_timeout"`
	RebalanceTimeout time.Duration `json:"rebalance_timeout"`
	ProtocolType     string        `json:"protocol_type"`
	Protocols        []Protocol    `json:"protocols"`
	// Unleased marks a member that is not fenced at delivery and whose leader,
	// told to skip an assignment, checks the members' subscriptions itself (KIP-814):
	// a Kafka client, for which the Kafka front door sets it. Such a static member
	// coming back under a new member id takes its predecessor's place at once,
	// with no wait for a delivery lease it never held, and keeps its assignment in
	// a stable group unless the assignor the group would select changes, as
	// Kafka's coordinator decides: a Kafka client's metadata carries the
	// partitions and generation it owned, which a restarted process no longer has.
	Unleased bool `json:"unleased,omitempty"`
}

// JoinedMember is one member as the leader sees it in a JoinResponse.
type JoinedMember struct {
	MemberID   string `json:"member_id"`
	InstanceID string `json:"instance_id,omitempty"`
	Metadata   []byte `json:"metadata"`
}

// JoinResponse is Kafka's JoinGroup response.
type JoinResponse struct {
	Generation int32  `json:"generation"`
	Protocol   string `json:"protocol"`
	Leader     string `json:"leader"`
	MemberID   string `json:"member_id"`
	// Members is set for the leader only: every member and its metadata for Protocol.
	Members []JoinedMember `json:"members,omitempty"`
	// SkipAssignment is set when a static member rejoined a stable group: its
	// assignment is unchanged and the leader must not recompute it.
	SkipAssignment bool `json:"skip_assignment,omitempty"`
}

// SyncRequest is Kafka's SyncGroup. The leader sends every member's assignment.
type SyncRequest struct {
	Group       string            `json:"group"`
	MemberID    string            `json:"member_id"`
	InstanceID  string            `json:"instance_id,omitempty"`
	Generation  int32             `json:"generation"`
	Assignments map[string][]byte `json:"assignments,omitempty"`
}

// SyncResponse is Kafka's SyncGroup response: the member's assignment.
type SyncResponse struct {
	Assignment []byte `json:"assignment"`
}

// HeartbeatRequest is Kafka's Heartbeat.
type HeartbeatRequest struct {
	Group      string `json:"group"`
	MemberID   string `json:"member_id"`
	InstanceID string `json:"instance_id,omitempty"`
	Generation int32  `json:"generation"`
}

// LeaveRequest is Kafka's LeaveGroup for one member. A static member that only
// stops (and will be back within its session timeout) sets KeepMembership: it gives
// up its partitions now without leaving, so a restart gets them back at once.
type LeaveRequest struct {
	Group          string `json:"group"`
	MemberID       string `json:"member_id"`
	InstanceID     string `json:"instance_id,omitempty"`
	KeepMembership bool   `json:"keep_membership,omitempty"`
}

// CommitRequest is Kafka's OffsetCommit. Generation -1 with no member commits for a
// group without active members (an assign-mode consumer, or a tool). Each entry
// carries the next offset to read, its metadata and, when known, the id of the
// topic it was read from (a commit for another incarnation of the topic is refused).
type CommitRequest struct {
	Group      string                  `json:"group"`
	MemberID   string                  `json:"member_id,omitempty"`
	InstanceID string                  `json:"instance_id,omitempty"`
	Generation int32                   `json:"generation"`
	Offsets    []semantics.OffsetEntry `json:"offsets"`
}

// FetchRequest is Kafka's OffsetFetch; no partitions means all of the group's.
// RequireStable is Kafka's require_stable: while a transaction not yet completed
// holds the offset of a partition asked for, the answer is
// semantics.ErrUnstableOffsetCommit (retriable) instead of the offset stored
// before it.
//
// A partition whose commit is a logical offset (-1 latest or -2 earliest, which a
// Kafka client may commit to clear its group's position) is answered as one
// without a commit, unless Logical is set: then it is answered with that offset,
// as Kafka hands back what it stored. Only the Kafka door sets Logical; it does
// not cross the NATS door, whose clients read committed offsets as positions.
type FetchRequest struct {
	Group         string                     `json:"group"`
	Partitions    []semantics.TopicPartition `json:"partitions,omitempty"`
	RequireStable bool                       `json:"require_stable,omitempty"`
	Logical       bool                       `json:"-"`
}

// DescribeRequest is Kafka's DescribeGroups for one group.
type DescribeRequest struct {
	Group string `json:"group"`
}

// ListRequest is Kafka's ListGroups.
type ListRequest struct{}

// DeleteRequest is Kafka's DeleteGroups for one group: it deletes a group without
// members and its committed offsets.
type DeleteRequest struct {
	Group string `json:"group"`
}

// ResetRequest sets a group's committed offsets while it has no members, as
// kafka-consumer-groups --reset-offsets does; only each entry's topic, partition and
// offset are used.
type ResetRequest struct {
	Group   string                  `json:"group"`
	Offsets []semantics.OffsetEntry `json:"offsets,omitempty"`
}

// MemberDescription is one member in DescribeGroup.
type MemberDescription struct {
	MemberID   string                     `json:"member_id"`
	InstanceID string                     `json:"instance_id,omitempty"`
	ClientID   string                     `json:"client_id,omitempty"`
	ClientHost string                     `json:"client_host,omitempty"`
	Partitions []semantics.TopicPartition `json:"partitions"`
	// SessionTimeout is how long the member stays in the group without a
	// heartbeat; a static member that stopped stays that long.
	SessionTimeout time.Duration `json:"session_timeout"`
}

// GroupDescription is Kafka's DescribeGroups for one group.
type GroupDescription struct {
	Group        string              `json:"group"`
	State        State               `json:"state"`
	Generation   int32               `json:"generation"`
	ProtocolType string              `json:"protocol_type,omitempty"`
	Protocol     string              `json:"protocol,omitempty"`
	Leader       string              `json:"leader,omitempty"`
	Members      []MemberDescription `json:"members"`
}

// GroupSummary is one group in ListGroups.
type GroupSummary struct {
	Group   string `json:"group"`
	State   State  `json:"state"`
	Members int    `json:"members"`
}

// Response is the coordinator's answer to any of these requests on the wire: Error
// when it failed, else the field of the request's kind (none for Heartbeat, Leave,
// Commit, Delete and Reset).
type Response struct {
	Error    *semantics.APIError     `json:"error,omitempty"`
	Join     *JoinResponse           `json:"join,omitempty"`
	Sync     *SyncResponse           `json:"sync,omitempty"`
	Offsets  []semantics.OffsetEntry `json:"offsets,omitempty"`
	Describe *GroupDescription       `json:"describe,omitempty"`
	Groups   []GroupSummary          `json:"groups,omitempty"`
}
