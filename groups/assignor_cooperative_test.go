package groups_test

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

func TestCooperativeSticky(t *testing.T) {
	t.Parallel()
	a := groups.CooperativeSticky()
	if !groups.IsCooperative(a.Name()) || groups.IsCooperative("sticky") || groups.IsCooperative("nope") {
		t.Fatalf("IsCooperative: cooperative-sticky %v, sticky %v, unknown %v", groups.IsCooperative(a.Name()),
			groups.IsCooperative("sticky"), groups.IsCooperative("nope"))
	}
	cases := []struct {
		name    string
		members []groups.MemberSubscription
		want    map[string]string
	}{
		{"a third member joins: the moving partitions are withheld",
			[]groups.MemberSubscription{
				owning(member("a", "t"), 3, "t/0 t/1 t/2"),
				owning(member("b", "t"), 3, "t/3 t/4 t/5"),
				member("c", "t")},
			map[string]string{"a": "t/0 t/1", "b": "t/3 t/4", "c": ""}},
		{"after the owners revoked them, they move",
			[]groups.MemberSubscription{
				owning(member("a", "t"), 4, "t/0 t/1"),
				owning(member("b", "t"), 4, "t/3 t/4"),
				member("c", "t")},
			map[string]string{"a": "t/0 t/1", "b": "t/3 t/4", "c": "t/2 t/5"}},
		{"a member left: the survivor takes its partitions at once",
			[]groups.MemberSubscription{owning(member("a", "t"), 3, "t/0 t/1 t/2")},
			map[string]string{"a": "t/0 t/1 t/2 t/3 t/4 t/5"}},
		{"two claims on one partition: neither gets it this generation",
			[]groups.MemberSubscription{
				owning(member("a", "t"), 5, "t/0 t/1 t/2"),
				owning(member("b", "t"), 4, "t/2 t/3 t/4 t/5")},
			map[string]string{"a": "t/0 t/1", "b": "t/3 t/4 t/5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := a.Assign(tc.members, map[string]int32{"t": 6})
			want := assignment{}
			for id, s := range tc.want {
				want[id] = tps(s)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// TestCooperativeStickyConverges runs random groups through the cooperative
// protocol: no generation gives a member a partition another member claims, and
// the second generation, after the owners revoked what they lost, assigns what
// Sticky assigns.
func TestCooperativeStickyConverges(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 7))
	for i := range 400 {
		members, partitions, _ := randomGroup(r)
		first := groups.CooperativeSticky().Assign(members, partitions)
		claimed := map[semantics.TopicPartition]string{}
		for _, m := range members {
			for _, tp := range m.Owned {
				claimed[tp] = m.MemberID
			}
		}
		for id, got := range first {
			for _, tp := range got {
				if owner, ok := claimed[tp]; ok && owner != id {
					t.Fatalf("case %d: %s given %v, which %s claims: %+v", i, id, tp, owner, members)
				}
			}
		}
		// Each member revokes what it claimed and lost, and keeps what it got.
		next := slices.Clone(members)
		for j := range next {
			next[j].Owned, next[j].Generation = first[next[j].MemberID], 9
		}
		second := groups.CooperativeSticky().Assign(next, partitions)
		if want := groups.Sticky().Assign(next, partitions); !reflect.DeepEqual(second, want) {
			t.Fatalf("case %d: second generation %v, sticky %v", i, second, want)
		}
		checkValid(t, next, partitions, second)
	}
}
