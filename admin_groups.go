package qxd

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// GroupSummary is one group in ListGroups: its state and member count.
type GroupSummary struct {
	Group   string     `json:"group"`
	State   GroupState `json:"state"`
	Members int        `json:"members"`
}

// GroupMember is one member of a group: its ids, its partitions, and how long it
// stays in the group without a heartbeat (a static member that stopped stays that
// long).
type GroupMember struct {
	MemberID       string           `json:"member_id"`
	InstanceID     string           `json:"instance_id,omitempty"`
	ClientID       string           `json:"client_id,omitempty"`
	Partitions     []TopicPartition `json:"partitions"`
	SessionTimeout time.Duration    `json:"session_timeout"`
}

// groupMembers turns the coordinator's member descriptions into GroupMembers.
func groupMembers(ms []groups.MemberDescription) []GroupMember {
	out := make([]GroupMember, len(ms))
	for i, m := range ms {
		out[i] = GroupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID,
			Partitions: m.Partitions, SessionTimeout: m.SessionTimeout}
	}
	return out
}

// GroupPartition is one partition a group reads or has committed: its committed
// offset (-1 when none), the partition's log start and high watermark, the lag, and
// the member that owns it now ("" when none).
type GroupPartition struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Committed     int64  `json:"committed"`
	LogStart      int64  `json:"log_start_offset"`
	HighWatermark int64  `json:"high_watermark"`
	// LastStableOffset is the partition's last stable offset (the first offset
	// of its earliest open transaction, else the high watermark) when the group
	// was described read-committed (DescribeGroupIsolated), else -1.
	LastStableOffset int64 `json:"last_stable_offset"`
	// Lag is how many offsets the group has yet to read: from the committed
	// offset (or the log start) to the high watermark, or described
	// read-committed to the last stable offset, as Kafka counts a read_committed
	// consumer's lag.
	Lag    int64  `json:"lag"`
	Member string `json:"member,omitempty"`
	// Note says why the committed offset is outside the log (members start such a
	// partition at their reset policy), or why the log offsets are unknown.
	Note string `json:"note,omitempty"`
}

// Notes of GroupPartition.
const (
	NoteAheadOfLog     = "ahead of the log (records trimmed, or the topic was created again): members start at their reset policy"
	NoteBehindLogStart = "behind the log start (records expired or trimmed): members start at their reset policy"
)

// GroupDescription is a group's state, generation, members and, per partition, its
// committed offset and lag.
type GroupDescription struct {
	Group      string           `json:"group"`
	State      GroupState       `json:"state"`
	Generation int32            `json:"generation"`
	Protocol   string           `json:"protocol,omitempty"`
	Leader     string           `json:"leader,omitempty"`
	Members    []GroupMember    `json:"members"`
	Partitions []GroupPartition `json:"partitions"`
}

// ListGroups lists the groups with members or committed offsets.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	resp, err := a.c.groupRequestRetry(ctx, semantics.GroupList, groups.ListRequest{}, a.c.cfg.reqTimeout)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]GroupSummary, len(resp.Groups))
	for i, g := range resp.Groups {
		out[i] = GroupSummary{Group: g.Group, State: g.State, Members: g.Members}
	}
	return out, nil
}

// DescribeGroup describes a group: state, generation, members with their partitions,
// and per partition the committed offset, high watermark and lag to it (the lag of
// read-uncommitted members; see DescribeGroupIsolated).
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	return a.DescribeGroupIsolated(ctx, group, ReadUncommitted)
}

// DescribeGroupIsolated is DescribeGroup for a group whose members read at
// isolation level l: read-committed, it also reads each partition's last stable
// offset from the node leading it, and the lag counts to it, as Kafka counts a
// read_committed consumer's (the records of an open transaction are not readable
// yet). The group does not record its members' isolation: the caller says it.
func (a *Admin) DescribeGroupIsolated(ctx context.Context, group string, l IsolationLevel) (GroupDescription, error) {
	if err := semantics.ValidateGroupID(group); err != nil {
		return GroupDescription{}, err
	}
	resp, err := a.c.groupRequestRetry(ctx, semantics.GroupDescribe, groups.DescribeRequest{Group: group}, a.c.cfg.reqTimeout)
	if err != nil {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, err)
	}
	d := resp.Describe
	out := GroupDescription{Group: d.Group, State: d.State, Generation: d.Generation, Protocol: d.Protocol,
		Leader: d.Leader, Members: groupMembers(d.Members), Partitions: []GroupPartition{}}
	committed, err := a.c.fetchCommitted(ctx, group, nil)
	if err != nil {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, err)
	}
	rows := map[TopicPartition]*GroupPartition{}
	row := func(tp TopicPartition) *GroupPartition {
		r, ok := rows[tp]
		if !ok {
			r = &GroupPartition{Topic: tp.Topic, Partition: tp.Partition, Committed: -1, LastStableOffset: -1}
			rows[tp] = r
		}
		return r
	}
	for _, m := range d.Members {
		for _, tp := range m.Partitions {
			row(tp).Member = m.MemberID
		}
	}
	for tp, e := range committed {
		row(tp).Committed = e.Offset
	}
	for tp, r := range rows {
		o, err := a.partitionOffsets(ctx, tp)
		if err != nil {
			r.Note = "log offsets not read, lag unknown: " + err.Error()
			continue
		}
		r.LogStart, r.HighWatermark = o.LogStart, o.HighWatermark
		end := o.HighWatermark
		if l == ReadCommitted {
			sctx, cancel := context.WithTimeout(ctx, stableAttempt)
			lso, _, err := a.c.lastStable(sctx, tp, o.HighWatermark)
			cancel()
			if err != nil {
				r.Note = "last stable offset not read, read-committed lag unknown: " + err.Error()
				continue
			}
			end = min(lso, o.HighWatermark)
			r.LastStableOffset = end
		}
		r.Lag = offsets.Lag(o.LogStart, end, r.Committed)
		switch {
		case r.Committed > o.HighWatermark:
			r.Note = NoteAheadOfLog
		case r.Committed >= 0 && r.Committed < o.LogStart:
			r.Note = NoteBehindLogStart
		}
	}
	for _, r := range rows {
		out.Partitions = append(out.Partitions, *r)
	}
	slices.SortFunc(out.Partitions, func(x, y GroupPartition) int {
		if x.Topic != y.Topic {
			return strings.Compare(x.Topic, y.Topic)
		}
		return int(x.Partition - y.Partition)
	})
	return out, nil
}

// partitionOffsets reads a partition's log start and high watermark.
func (a *Admin) partitionOffsets(ctx context.Context, tp TopicPartition) (partition.Offsets, error) {
	// Offsets are read from the partition: without consume rights, no lag.
	if err := a.c.authorizeTopic(ctx, semantics.OpConsume, tp.Topic); err != nil {
		return partition.Offsets{}, err
	}
	meta, err := a.c.topic(ctx, tp.Topic)
	if err != nil {
		return partition.Offsets{}, err
	}
	return newPartSource(a.c, meta, tp.Partition, true).readOffsets(ctx, a.c)
}

// SeekGroup sets a group's committed offsets for topic (all partitions, or the given
// ones) to a position: start, end, an offset, or a time. It works only while the
// group has no active members (semantics.ErrNonEmptyGroup otherwise), as Kafka's
// kafka-consumer-groups --reset-offsets. It returns the offsets it set.
func (a *Admin) SeekGroup(ctx context.Context, group, topic string, partitions []int32, to Offset) (map[TopicPartition]int64, error) {
	changes, err := a.SeekGroupOffsets(ctx, group, GroupSeek{Topics: []string{topic}, Partitions: partitions, To: to})
	if err != nil {
		return nil, err
	}
	set := make(map[TopicPartition]int64, len(changes))
	for _, c := range changes {
		set[TopicPartition{Topic: c.Topic, Partition: c.Partition}] = c.New
	}
	return set, nil
}

// GroupSeek says which of a group's committed offsets SeekGroupOffsets sets, and to
// what, as kafka-consumer-groups --reset-offsets and rpk group seek.
type GroupSeek struct {
	// Topics whose offsets to set, every partition of each (Kafka's --topic).
	Topics []string
	// AllTopics sets the offsets of every topic the group has committed offsets on,
	// instead of Topics (Kafka's --all-topics).
	AllTopics bool
	// Partitions limits the seek to these partitions of the one topic in Topics
	// (nil: all).
	Partitions []int32
	// To is the new position of each partition: AtStart, AtEnd, At(offset) (an
	// offset outside the stored range is an error naming the range) or AtTime (the
	// first record at or after the time; the high watermark when there is none).
	// It is ignored when Shift is set.
	To Offset
	// Shift moves each committed offset by ShiftBy instead (negative: back), clamped
	// to the partition's log start and high watermark (Kafka's --shift-by). A
	// partition without a committed offset is an error.
	Shift   bool
	ShiftBy int64
	// DryRun computes the new offsets and changes nothing (Kafka's --dry-run).
	DryRun bool
}

// GroupOffsetChange is one partition's committed offset before and after a seek.
type GroupOffsetChange struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old"` // -1 when the partition had no committed offset
	New       int64  `json:"new"`
}

// SeekGroupOffsets sets a group's committed offsets as s says and returns each
// partition's old and new offset, sorted by topic and partition; with s.DryRun it
// only computes them. It works only while the group has no active members
// (semantics.ErrNonEmptyGroup otherwise; a stopped static member stays a member
// until its session timeout), as Kafka's kafka-consumer-groups --reset-offsets.
// Every bad input is reported before anything changes.
func (a *Admin) SeekGroupOffsets(ctx context.Context, group string, s GroupSeek) ([]GroupOffsetChange, error) {
	if err := semantics.ValidateGroupID(group); err != nil {
		return nil, err
	}
	// Seeking reads the topics' partitions and sets the group's offsets.
	if err := a.c.authorizeTopic(ctx, semantics.OpGroup, group); err != nil {
		return nil, err
	}
	committed, err := a.c.fetchCommitted(ctx, group, nil)
	if err != nil {
		return nil, fmt.Errorf("seek group %q: read its committed offsets: %w", group, err)
	}
	topics, err := seekTopics(group, s, committed)
	if err != nil {
		return nil, err
	}
	starts := startResolver{c: a.c, reset: ResetNone, group: group}
	var changes []GroupOffsetChange
	var noCommit []TopicPartition
	wire := groups.ResetRequest{Group: group}
	for _, topic := range topics {
		if err := a.c.authorizeTopic(ctx, semantics.OpConsume, topic); err != nil {
			return nil, err
		}
		meta, err := a.c.topic(ctx, topic)
		if err != nil {
			return nil, err
		}
		partitions := s.Partitions
		if len(partitions) == 0 {
			for p := int32(0); p < meta.Config.Partitions; p++ {
				partitions = append(partitions, p)
			}
		}
		for _, p := range partitions {
			if p < 0 || p >= meta.Config.Partitions {
				return nil, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has partitions 0 to %d: partition %d does not exist", topic, meta.Config.Partitions-1, p)
			}
			tp := TopicPartition{Topic: topic, Partition: p}
			old := int64(-1)
			if e, ok := committed[tp]; ok {
				old = e.Offset
			}
			pc := newPartSource(a.c, meta, p, false)
			var off int64
			switch {
			case s.Shift && old < 0:
				noCommit = append(noCommit, tp)
				continue
			case s.Shift:
				o, err := pc.readOffsets(ctx, a.c)
				if err != nil {
					return nil, fmt.Errorf("seek group %q: read the offsets of %s: %w", group, tp, err)
				}
				off = min(max(shifted(old, s.ShiftBy), o.LogStart), o.HighWatermark)
			default:
				if off, _, err = starts.resolve(ctx, pc, s.To); err != nil {
					return nil, fmt.Errorf("seek group %q: %w", group, err)
				}
			}
			changes = append(changes, GroupOffsetChange{Topic: topic, Partition: p, Old: old, New: off})
			wire.Offsets = append(wire.Offsets, semantics.OffsetEntry{Topic: topic, Partition: p, Offset: off, TopicID: meta.ID})
		}
	}
	if len(noCommit) > 0 {
		return nil, semantics.Errorf(semantics.ErrInvalidRequest,
			"seek group %q: shift by %d: %s %s no committed offset to shift: set %s with --to first (e.g. start)",
			group, s.ShiftBy, formatTPs(noCommit), hasHave(len(noCommit)), itThem(len(noCommit)))
	}
	if !s.DryRun {
		if _, err := a.c.groupRequestRetry(ctx, semantics.GroupReset, wire, a.c.cfg.reqTimeout); err != nil {
			return nil, err // the coordinator's text names the group
		}
	}
	return changes, nil
}

// seekTopics checks which topics s names and returns them sorted.
func seekTopics(group string, s GroupSeek, committed map[TopicPartition]semantics.OffsetEntry) ([]string, error) {
	switch {
	case s.AllTopics && len(s.Topics) > 0:
		return nil, semantics.Errorf(semantics.ErrInvalidRequest, "seek group %q: give topics or all topics, not both", group)
	case s.AllTopics && len(s.Partitions) > 0:
		return nil, semantics.Errorf(semantics.ErrInvalidRequest, "seek group %q: partitions apply to one topic, not to all topics: name the topic", group)
	case !s.AllTopics && len(s.Topics) == 0:
		return nil, semantics.Errorf(semantics.ErrInvalidRequest, "seek group %q: no topic: name the topics whose offsets to set, or all topics", group)
	case len(s.Topics) > 1 && len(s.Partitions) > 0:
		return nil, semantics.Errorf(semantics.ErrInvalidRequest, "seek group %q: partitions apply to one topic, and %d are named: seek each topic on its own", group, len(s.Topics))
	}
	var topics []string
	if s.AllTopics {
		for tp := range committed {
			topics = append(topics, tp.Topic)
		}
		if len(topics) == 0 {
			return nil, semantics.Errorf(semantics.ErrInvalidRequest,
				"seek group %q over all its topics: the group has no committed offsets: name the topics instead", group)
		}
	} else {
		topics = slices.Clone(s.Topics)
		for _, t := range topics {
			if err := semantics.ValidateTopicName(t); err != nil {
				return nil, fmt.Errorf("seek group %q: %w", group, err)
			}
		}
	}
	slices.Sort(topics)
	return slices.Compact(topics), nil
}

// shifted is off+n, saturating instead of overflowing.
func shifted(off, n int64) int64 {
	if n > 0 && off > math.MaxInt64-n {
		return math.MaxInt64
	}
	return max(off+n, 0)
}

func formatTPs(tps []TopicPartition) string {
	parts := make([]string, len(tps))
	for i, tp := range tps {
		parts[i] = tp.String()
	}
	return strings.Join(parts, ", ")
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func itThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// DeleteGroup deletes a group without active members and its committed offsets.
func (a *Admin) DeleteGroup(ctx context.Context, group string) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return err
	}
	if _, err := a.c.groupRequestRetry(ctx, semantics.GroupDelete, groups.DeleteRequest{Group: group}, a.c.cfg.reqTimeout); err != nil {
		return err // the coordinator's text names the group
	}
	return nil
}
