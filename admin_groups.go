package qxd

import (
	"context"
	"fmt"
	"slices"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// GroupSummary is one group in ListGroups: its state and member count.
type GroupSummary = groups.GroupSummary

// GroupMember is one member of a group and its partitions.
type GroupMember = groups.MemberDescription

// GroupPartition is one partition a group reads or has committed: its committed
// offset (-1 when none), the partition's log start and high watermark, the lag, and
// the member that owns it now ("" when none).
type GroupPartition struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Committed     int64  `json:"committed"`
	LogStart      int64  `json:"log_start_offset"`
	HighWatermark int64  `json:"high_watermark"`
	Lag           int64  `json:"lag"`
	Member        string `json:"member,omitempty"`
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
	State      groups.State     `json:"state"`
	Generation int32            `json:"generation"`
	Protocol   string           `json:"protocol,omitempty"`
	Leader     string           `json:"leader,omitempty"`
	Members    []GroupMember    `json:"members"`
	Partitions []GroupPartition `json:"partitions"`
}

// ListGroups lists the groups with members or committed offsets.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	resp, err := a.c.groupRequestRetry(ctx, semantics.GroupList, struct{}{}, a.c.cfg.reqTimeout)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	if resp.Groups == nil {
		return []GroupSummary{}, nil
	}
	return resp.Groups, nil
}

// DescribeGroup describes a group: state, generation, members with their partitions,
// and per partition the committed offset, high watermark and lag.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	if err := semantics.ValidateGroupID(group); err != nil {
		return GroupDescription{}, err
	}
	resp, err := a.c.groupRequestRetry(ctx, semantics.GroupDescribe, groupWire{Group: group}, a.c.cfg.reqTimeout)
	if err != nil {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, err)
	}
	d := resp.Describe
	out := GroupDescription{Group: d.Group, State: d.State, Generation: d.Generation, Protocol: d.Protocol,
		Leader: d.Leader, Members: d.Members, Partitions: []GroupPartition{}}
	committed, err := a.c.fetchCommitted(ctx, group, nil)
	if err != nil {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, err)
	}
	rows := map[TopicPartition]*GroupPartition{}
	row := func(tp TopicPartition) *GroupPartition {
		r, ok := rows[tp]
		if !ok {
			r = &GroupPartition{Topic: tp.Topic, Partition: tp.Partition, Committed: -1}
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
		r.Lag = offsets.Lag(o.LogStart, o.HighWatermark, r.Committed)
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
			return cmpStrings(x.Topic, y.Topic)
		}
		return int(x.Partition - y.Partition)
	})
	return out, nil
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
	r := partition.NewReader(a.c.nc, tp.Topic, tp.Partition, true)
	return r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) { return a.c.checkpointNext(ctx, meta, tp.Partition) })
}

// SeekGroup sets a group's committed offsets for topic (all partitions, or the given
// ones) to a position: start, end, an offset, or a time. It works only while the
// group has no active members (semantics.ErrNonEmptyGroup otherwise), as Kafka's
// kafka-consumer-groups --reset-offsets. It returns the offsets it set.
func (a *Admin) SeekGroup(ctx context.Context, group, topic string, partitions []int32, to Offset) (map[TopicPartition]int64, error) {
	if err := semantics.ValidateGroupID(group); err != nil {
		return nil, err
	}
	// Seeking reads the topic's partitions and sets the group's offsets.
	if err := a.c.authorizeTopic(ctx, semantics.OpGroup, group); err != nil {
		return nil, err
	}
	if err := a.c.authorizeTopic(ctx, semantics.OpConsume, topic); err != nil {
		return nil, err
	}
	meta, err := a.c.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	if len(partitions) == 0 {
		for p := int32(0); p < meta.Config.Partitions; p++ {
			partitions = append(partitions, p)
		}
	}
	cons := a.c.NewConsumer(WithResetPolicy(ResetNone))
	defer cons.Close()
	set := map[TopicPartition]int64{}
	wire := groupWire{Group: group}
	for _, p := range partitions {
		if p < 0 || p >= meta.Config.Partitions {
			return nil, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has partitions 0 to %d: partition %d does not exist", topic, meta.Config.Partitions-1, p)
		}
		pc := &partConsumer{tp: TopicPartition{Topic: topic, Partition: p}, meta: meta,
			reader: partition.NewReader(a.c.nc, topic, p, false)}
		off, _, err := cons.resolve(ctx, pc, to)
		if err != nil {
			return nil, fmt.Errorf("seek group %q: %w", group, err)
		}
		set[pc.tp] = off
		wire.Offsets = append(wire.Offsets, semantics.OffsetEntry{Topic: topic, Partition: p, Offset: off})
	}
	if _, err := a.c.groupRequestRetry(ctx, semantics.GroupReset, wire, a.c.cfg.reqTimeout); err != nil {
		return nil, err // the coordinator's text names the group
	}
	return set, nil
}

// DeleteGroup deletes a group without active members and its committed offsets.
func (a *Admin) DeleteGroup(ctx context.Context, group string) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return err
	}
	if _, err := a.c.groupRequestRetry(ctx, semantics.GroupDelete, groupWire{Group: group}, a.c.cfg.reqTimeout); err != nil {
		return err // the coordinator's text names the group
	}
	return nil
}
