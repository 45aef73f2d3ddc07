package groups

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/qxd-io/qxd/semantics"
)

// Sticky returns an assignor with the goals of Kafka's StickyAssignor:
//
//  1. Balanced: two members with equal subscriptions hold numbers of partitions that
//     differ by at most one, and otherwise the assignment is as balanced as the
//     subscriptions allow (no chain of moves between subscribers can bring a member
//     with n partitions and one with n-2 or fewer closer).
//  2. Sticky: given 1, as many partitions as possible stay with the member that owned
//     them in the previous generation.
//
// Ownership claims (MemberSubscription.Owned) on partitions that no longer exist or
// that the member no longer subscribes to are ignored. When two members claim the same
// partition, the one with the higher Generation keeps the claim; on a tie, the lower
// member id.
//
// When all members subscribe to the same topics, each member keeps up to its quota of
// its claims (the quota is partitions/members, plus one for as many members as the
// remainder), and the remaining partitions go one by one to the member with the
// fewest; no balanced assignment keeps more. Otherwise every valid claim is kept,
// unassigned partitions go to the subscriber with the fewest (partitions with the
// fewest subscribers first), and partitions then move along the shortest chains of
// subscribers from the fullest members to members with at least two fewer, until no
// such chain is left, preferring partitions that did not stay from a claim. That is
// balanced exactly, and sticky by heuristic, as Kafka's general case is.
func Sticky() Assignor { return stickyAssignor{} }

type stickyAssignor struct{}

func (stickyAssignor) Name() string { return "sticky" }

func (stickyAssignor) Assign(members []MemberSubscription, partitions map[string]int32) map[string][]semantics.TopicPartition {
	s := newStickyState(sortMembers(members), partitions)
	if len(s.parts) > 0 {
		if s.equalSubscriptions() {
			s.assignEqual()
		} else {
			s.assignGeneral()
		}
	}
	return s.result()
}

// stickyState is one sticky assignment in progress. Members are indexes into ms;
// partitions are indexes into parts, which is sorted by topic then partition.
type stickyState struct {
	ms       []MemberSubscription
	parts    []semantics.TopicPartition
	topicOf  []int   // partition → index into subs
	subs     [][]int // topic → subscribing members, in member order
	memberTs [][]int // member → subscribed topics, ascending
	claimant []int   // partition → member whose claim won, or -1
	claims   [][]int // member → partitions it won, ascending
	owner    []int   // partition → member holding it, or -1
	held     [][]int // member → partitions it holds, in no particular order
	pos      []int   // partition → its index in held[owner]
}

func newStickyState(ms []MemberSubscription, partitions map[string]int32) *stickyState {
	topics, subs := subscribers(ms, partitions)
	s := &stickyState{
		ms:       ms,
		subs:     subs,
		memberTs: make([][]int, len(ms)),
		claims:   make([][]int, len(ms)),
		held:     make([][]int, len(ms)),
	}
	base := make(map[string]int, len(topics)) // topic → index of its partition 0
	for ti, t := range topics {
		base[t] = len(s.parts)
		for p := range partitions[t] {
			s.parts = append(s.parts, semantics.TopicPartition{Topic: t, Partition: p})
			s.topicOf = append(s.topicOf, ti)
		}
		for _, m := range subs[ti] {
			s.memberTs[m] = append(s.memberTs[m], ti)
		}
	}
	n := len(s.parts)
	s.claimant, s.owner, s.pos = make([]int, n), make([]int, n), make([]int, n)
	for i := range n {
		s.claimant[i], s.owner[i] = -1, -1
	}

	for m := range ms {
		for _, tp := range ms[m].Owned {
			b, ok := base[tp.Topic]
			if !ok || tp.Partition < 0 || tp.Partition >= partitions[tp.Topic] {
				continue // the partition no longer exists, or nobody reads its topic
			}
			if _, sub := slices.BinarySearch(s.memberTs[m], s.topicOf[b]); !sub {
				continue
			}
			p := b + int(tp.Partition)
			if c := s.claimant[p]; c < 0 || claimBeats(&ms[m], &ms[c]) {
				s.claimant[p] = m
			}
		}
	}
	for p, m := range s.claimant {
		if m >= 0 {
			s.claims[m] = append(s.claims[m], p)
		}
	}
	return s
}

// claimBeats reports whether a's claim on a partition beats b's: a newer generation
// wins, then the lower member id.
func claimBeats(a, b *MemberSubscription) bool {
	if a.Generation != b.Generation {
		return a.Generation > b.Generation
	}
	return a.MemberID < b.MemberID
}

func (s *stickyState) equalSubscriptions() bool {
	for m := 1; m < len(s.ms); m++ {
		if !slices.Equal(s.memberTs[m], s.memberTs[0]) {
			return false
		}
	}
	return true
}

// give assigns unowned partition p to member m.
func (s *stickyState) give(p, m int) {
	s.owner[p], s.pos[p] = m, len(s.held[m])
	s.held[m] = append(s.held[m], p)
}

// move reassigns partition p from its owner to member m.
func (s *stickyState) move(p, m int) {
	from := s.held[s.owner[p]]
	last := from[len(from)-1]
	from[s.pos[p]], s.pos[last] = last, s.pos[p]
	s.held[s.owner[p]] = from[:len(from)-1]
	s.give(p, m)
}

// assignEqual assigns when every member subscribes to every topic, so any member can
// take any partition and balance is a matter of quotas.
func (s *stickyState) assignEqual() {
	// Each member keeps up to minQuota of its claims; the first members (in member
	// order) with more keep one more, as many as there are extra partitions. Which
	// members they are does not change how many partitions stay.
	minQuota, extra := len(s.parts)/len(s.ms), len(s.parts)%len(s.ms)
	order := make([]int, len(s.ms))
	for m := range order {
		order[m] = m
		keep := min(len(s.claims[m]), minQuota)
		if len(s.claims[m]) > minQuota && extra > 0 {
			keep++
			extra--
		}
		for _, p := range s.claims[m][:keep] {
			s.give(p, m)
		}
	}
	// Water-filling: every member now holds at most its quota, so giving each remaining
	// partition to the member with the fewest ends with counts of minQuota or
	// minQuota+1, the latter exactly len(parts)%len(ms) times.
	h := &loadHeap{s: s, ms: order}
	heap.Init(h)
	for p, o := range s.owner {
		if o < 0 {
			s.give(p, h.ms[0])
			heap.Fix(h, 0)
		}
	}
}

// loadHeap orders members by partitions held, then member order.
type loadHeap struct {
	s  *stickyState
	ms []int
}

func (h *loadHeap) Len() int { return len(h.ms) }
func (h *loadHeap) Less(i, j int) bool {
	a, b := h.ms[i], h.ms[j]
	return cmp.Or(cmp.Compare(len(h.s.held[a]), len(h.s.held[b])), cmp.Compare(a, b)) < 0
}
func (h *loadHeap) Swap(i, j int) { h.ms[i], h.ms[j] = h.ms[j], h.ms[i] }
func (h *loadHeap) Push(any)      { panic("groups: loadHeap.Push") }
func (h *loadHeap) Pop() any      { panic("groups: loadHeap.Pop") }

// assignGeneral assigns when subscriptions differ.
func (s *stickyState) assignGeneral() {
	for m, ps := range s.claims {
		for _, p := range ps {
			s.give(p, m)
		}
	}
	// Each unclaimed partition goes to its subscriber holding the fewest, partitions
	// with the fewest subscribers first, while those still have room.
	var free []int
	for p, o := range s.owner {
		if o < 0 {
			free = append(free, p)
		}
	}
	slices.SortStableFunc(free, func(a, b int) int {
		return cmp.Compare(len(s.subs[s.topicOf[a]]), len(s.subs[s.topicOf[b]]))
	})
	for _, p := range free {
		best := -1
		for _, m := range s.subs[s.topicOf[p]] {
			if best < 0 || len(s.held[m]) < len(s.held[best]) {
				best = m
			}
		}
		s.give(p, best)
	}
	s.balance()
}

// balance moves partitions along chains of subscribers, each chain taking one
// partition from a member with n and giving one to a member with n-2 or fewer, until
// no chain is left. Each chain lowers the sum of squared member loads, and with no
// chain left that sum is minimal (a convex-cost flow optimum), which is the most
// balanced assignment the subscriptions allow.
func (s *stickyState) balance() {
	n := len(s.ms)
	order := make([]int, n)
	for m := range order {
		order[m] = m
	}
	cs := &chainSearch{
		seen:  make([]int, n),
		dead:  make([]int, n),
		via:   make([]int, n),
		queue: make([]int, 0, n),
	}
	for round := 1; ; round++ {
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(s.held[b]), len(s.held[a])) })
		low := len(s.held[order[n-1]])
		moved := false
		for _, u := range order {
			if len(s.held[u]) < low+2 {
				break
			}
			if cs.dead[u] == round {
				continue
			}
			if s.shiftChain(u, round, cs) {
				moved = true
				break
			}
		}
		if !moved {
			return
		}
	}
}

// chainSearch is balance's scratch space. seen and dead hold the stamp of the search
// or round that last marked a member; via[m] is the partition a search moves to m.
type chainSearch struct {
	stamp int
	seen  []int
	dead  []int
	via   []int
	queue []int
}

// shiftChain searches breadth first for the shortest chain from member u to a member
// holding at most len(held[u])-2 partitions, each link a partition the next member
// subscribes to, and applies it. It reports whether it found one. When it finds none,
// it marks every member it reached dead for this round: they hold no fewer than
// len(held[u])-1 partitions and reach only members that do, so no later (no fuller)
// starting member finds a chain through them.
func (s *stickyState) shiftChain(u, round int, b *chainSearch) bool {
	b.stamp++
	target := len(s.held[u]) - 2
	b.queue = append(b.queue[:0], u)
	b.seen[u] = b.stamp
	for i := 0; i < len(b.queue); i++ {
		a := b.queue[i]
		// Prefer moving a partition its holder did not own before, then a claimed one.
		for _, claimed := range [2]bool{false, true} {
			for _, p := range s.held[a] {
				if (s.claimant[p] == a) != claimed {
					continue
				}
				for _, m := range s.subs[s.topicOf[p]] {
					if b.seen[m] == b.stamp || b.dead[m] == round {
						continue
					}
					b.seen[m], b.via[m] = b.stamp, p
					if len(s.held[m]) <= target {
						for m != u {
							p := b.via[m]
							next := s.owner[p]
							s.move(p, m)
							m = next
						}
						return true
					}
					b.queue = append(b.queue, m)
				}
			}
		}
	}
	for _, m := range b.queue {
		b.dead[m] = round
	}
	return false
}

// result returns the assignment, each member's partitions sorted.
func (s *stickyState) result() map[string][]semantics.TopicPartition {
	out := make(map[string][]semantics.TopicPartition, len(s.ms))
	for m := range s.ms {
		held := slices.Clone(s.held[m])
		slices.Sort(held)
		tps := make([]semantics.TopicPartition, len(held))
		for i, p := range held {
			tps[i] = s.parts[p]
		}
		out[s.ms[m].MemberID] = tps
	}
	return out
}
