package groups

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/qxd-io/qxd/semantics"
)

// DefaultAssignor is the assignor a consumer uses unless told otherwise: "range", as
// in Kafka's Java client.
const DefaultAssignor = "range"

// MemberSubscription is what a member told the group: who it is, what it reads, and
// what it owned in the previous generation (for sticky assignment).
type MemberSubscription struct {
	MemberID   string
	InstanceID string // static membership id; "" when dynamic
	Topics     []string
	Owned      []semantics.TopicPartition
	Generation int32 // generation in which Owned was assigned; -1 if unknown
}

// Assignor computes a group's assignment; the group leader runs it, as in Kafka's
// classic protocol.
//
// partitions maps each subscribed topic to its partition count; topics missing from
// it (or with no partitions) are not assignable and are skipped. The result maps every
// member id to its partitions (an empty, non-nil slice for idle members), each slice
// sorted by topic then partition. Every partition of a topic that at least one member
// subscribes to is assigned to exactly one member that subscribes to it. Assign is
// deterministic: the order of members, of their topics and of their owned partitions
// does not change the result. Member ids must be unique. CooperativeSticky is the
// exception to "every partition": it withholds partitions whose owner must revoke
// them first.
type Assignor interface {
	// Name is the protocol name members announce: "range", "roundrobin", "sticky" or
	// "cooperative-sticky".
	Name() string
	Assign(members []MemberSubscription, partitions map[string]int32) map[string][]semantics.TopicPartition
}

var assignorNames = []string{"range", "roundrobin", "sticky", "cooperative-sticky"}

// AssignorByName returns the assignor called name: "range", "roundrobin", "sticky"
// or "cooperative-sticky".
func AssignorByName(name string) (Assignor, error) {
	switch name {
	case "range":
		return Range(), nil
	case "roundrobin":
		return RoundRobin(), nil
	case "sticky":
		return Sticky(), nil
	case "cooperative-sticky":
		return CooperativeSticky(), nil
	}
	return nil, fmt.Errorf("groups: unknown partition assignor %q: use one of %s", name, strings.Join(assignorNames, ", "))
}

// Range returns Kafka's RangeAssignor. For each topic, the members subscribed to it
// are sorted (see memberOrder) and its partitions are split in contiguous ranges, the
// first (partitions % members) members getting one extra. With several topics the
// first members get the extras of every topic, so members can differ by more than
// one partition.
func Range() Assignor { return rangeAssignor{} }

// RoundRobin returns Kafka's RoundRobinAssignor: all topic-partitions sorted by topic
// then partition are dealt to the sorted members (see memberOrder) in turn, skipping
// members not subscribed to the partition's topic.
func RoundRobin() Assignor { return roundRobinAssignor{} }

type (
	rangeAssignor      struct{}
	roundRobinAssignor struct{}
)

func (rangeAssignor) Name() string { return "range" }

func (rangeAssignor) Assign(members []MemberSubscription, partitions map[string]int32) map[string][]semantics.TopicPartition {
	ms := sortMembers(members)
	topics, subs := subscribers(ms, partitions)
	out := emptyAssignment(ms)
	for i, topic := range topics {
		n, m := int(partitions[topic]), len(subs[i])
		p := 0
		for k, mi := range subs[i] {
			count := n / m
			if k < n%m {
				count++
			}
			id := ms[mi].MemberID
			for range count {
				out[id] = append(out[id], semantics.TopicPartition{Topic: topic, Partition: int32(p)})
				p++
			}
		}
	}
	return out // topics are sorted, so each member's slice is too
}

func (roundRobinAssignor) Name() string { return "roundrobin" }

func (roundRobinAssignor) Assign(members []MemberSubscription, partitions map[string]int32) map[string][]semantics.TopicPartition {
	ms := sortMembers(members)
	topics, subs := subscribers(ms, partitions)
	out := emptyAssignment(ms)
	// subscribed[i][m] reports whether member m subscribes to topics[i].
	subscribed := make([][]bool, len(topics))
	for i := range topics {
		subscribed[i] = make([]bool, len(ms))
		for _, m := range subs[i] {
			subscribed[i][m] = true
		}
	}
	next := 0 // the member the circular iterator points at
	for i, topic := range topics {
		for p := range partitions[topic] {
			for !subscribed[i][next] {
				next = (next + 1) % len(ms)
			}
			id := ms[next].MemberID
			out[id] = append(out[id], semantics.TopicPartition{Topic: topic, Partition: p})
			next = (next + 1) % len(ms)
		}
	}
	return out
}

// memberOrder is Kafka's member order (AbstractPartitionAssignor.MemberInfo, KIP-345):
// static members first, by instance id, then dynamic members by member id. Member id
// breaks the remaining ties so the order is total.
func memberOrder(a, b *MemberSubscription) int {
	if as, bs := a.InstanceID != "", b.InstanceID != ""; as != bs {
		if as {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.InstanceID, b.InstanceID), cmp.Compare(a.MemberID, b.MemberID))
}

// sortMembers returns a copy of members in memberOrder.
func sortMembers(members []MemberSubscription) []MemberSubscription {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b MemberSubscription) int { return memberOrder(&a, &b) })
	return ms
}

// subscribers returns the assignable topics some member subscribes to, sorted, and
// for each the indexes into ms of its subscribers, in ms's order. A topic is
// assignable when partitions gives it at least one partition.
func subscribers(ms []MemberSubscription, partitions map[string]int32) (topics []string, subs [][]int) {
	byTopic := make(map[string][]int)
	for i := range ms {
		for _, t := range ms[i].Topics {
			if partitions[t] <= 0 {
				continue
			}
			if s := byTopic[t]; len(s) > 0 && s[len(s)-1] == i {
				continue // topic listed twice by the same member
			}
			byTopic[t] = append(byTopic[t], i)
		}
	}
	topics = make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	subs = make([][]int, len(topics))
	for i, t := range topics {
		subs[i] = byTopic[t]
	}
	return topics, subs
}

// emptyAssignment maps every member id to an empty, non-nil slice.
func emptyAssignment(ms []MemberSubscription) map[string][]semantics.TopicPartition {
	out := make(map[string][]semantics.TopicPartition, len(ms))
	for i := range ms {
		out[ms[i].MemberID] = []semantics.TopicPartition{}
	}
	return out
}
