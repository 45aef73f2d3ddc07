package groups

import (
	"slices"

	"github.com/qxd-io/qxd/semantics"
)

// CooperativeSticky returns Kafka's CooperativeStickyAssignor (KIP-429): Sticky's
// assignment, less every partition it would move from one member to another in
// this generation. Such a partition goes to nobody until the member that claims it
// has revoked it and rejoined; the next generation then gives it to its new owner.
// So a partition never has two owners at once, and members keep their other
// partitions through a rebalance.
//
// Unlike the other assignors, its result may leave partitions unassigned: a
// partition that any member other than its new owner claims (MemberSubscription.Owned)
// is withheld, whatever that member's generation.
//
// Members of a group using it rebalance incrementally, as Kafka's cooperative
// protocol does: they keep reading their partitions while they rejoin, revoke only
// the partitions missing from their new assignment, and rejoin at once after
// revoking any.
func CooperativeSticky() Assignor { return cooperativeStickyAssignor{} }

type cooperativeStickyAssignor struct{}

func (cooperativeStickyAssignor) Name() string { return "cooperative-sticky" }

// IsCooperative reports that members rebalance incrementally with this assignor.
func (cooperativeStickyAssignor) IsCooperative() bool { return true }

func (cooperativeStickyAssignor) Assign(members []MemberSubscription, partitions map[string]int32) map[string][]semantics.TopicPartition {
	out := Sticky().Assign(members, partitions)
	claims := map[semantics.TopicPartition][]string{} // partition → members that claim it
	for i := range members {
		for _, tp := range members[i].Owned {
			if ids := claims[tp]; !slices.Contains(ids, members[i].MemberID) {
				claims[tp] = append(ids, members[i].MemberID)
			}
		}
	}
	for id, tps := range out {
		out[id] = slices.DeleteFunc(tps, func(tp semantics.TopicPartition) bool {
			for _, owner := range claims[tp] {
				if owner != id {
					return true // its owner revokes it first
				}
			}
			return false
		})
	}
	return out
}

// IsCooperative reports whether the assignor called name makes a group rebalance
// incrementally (Kafka's COOPERATIVE rebalance protocol): "cooperative-sticky".
// A member rebalances incrementally only when every assignor it supports does, as
// in Kafka: otherwise the group may pick an assignor that moves a partition its
// owner still reads.
func IsCooperative(name string) bool {
	a, err := AssignorByName(name)
	if err != nil {
		return false
	}
	c, ok := a.(interface{ IsCooperative() bool })
	return ok && c.IsCooperative()
}
