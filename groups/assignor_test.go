package groups_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

type assignment = map[string][]semantics.TopicPartition

// tps parses "t0/0 t0/1 t1/0" into partitions; "" is an empty, non-nil slice.
func tps(s string) []semantics.TopicPartition {
	out := []semantics.TopicPartition{}
	for _, f := range strings.Fields(s) {
		topic, p, _ := strings.Cut(f, "/")
		n, err := strconv.Atoi(p)
		if err != nil {
			panic(f)
		}
		out = append(out, semantics.TopicPartition{Topic: topic, Partition: int32(n)})
	}
	return out
}

func member(id string, topics ...string) groups.MemberSubscription {
	return groups.MemberSubscription{MemberID: id, Topics: topics, Generation: -1}
}

func static(id, instance string, topics ...string) groups.MemberSubscription {
	m := member(id, topics...)
	m.InstanceID = instance
	return m
}

// owning returns m claiming the partitions in owned (tps syntax) from generation gen.
func owning(m groups.MemberSubscription, gen int32, owned string) groups.MemberSubscription {
	m.Owned, m.Generation = tps(owned), gen
	return m
}

type assignCase struct {
	name       string
	members    []groups.MemberSubscription
	partitions map[string]int32
	want       map[string]string // member id → tps syntax
}

func runAssignCases(t *testing.T, a groups.Assignor, cases []assignCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := a.Assign(tc.members, tc.partitions)
			want := assignment{}
			for id, s := range tc.want {
				want[id] = tps(s)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s.Assign:\n got  %v\n want %v", a.Name(), got, want)
			}
			checkValid(t, tc.members, tc.partitions, got)
		})
	}
}

func TestAssignorByName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"range", "roundrobin", "sticky", "cooperative-sticky", groups.DefaultAssignor} {
		a, err := groups.AssignorByName(name)
		if err != nil {
			t.Fatalf("AssignorByName(%q): %v", name, err)
		}
		if a.Name() != name {
			t.Errorf("AssignorByName(%q).Name() = %q", name, a.Name())
		}
	}
	_, err := groups.AssignorByName("cooperative-range")
	if err == nil || !strings.Contains(err.Error(), `"cooperative-range"`) || !strings.Contains(err.Error(), "range, roundrobin, sticky, cooperative-sticky") {
		t.Errorf("AssignorByName(unknown) error = %v, want it to name the input and the valid names", err)
	}
}

func TestRange(t *testing.T) {
	t.Parallel()
	runAssignCases(t, groups.Range(), []assignCase{
		{
			name:       "kafka doc: two members, two topics of three",
			members:    []groups.MemberSubscription{member("C1", "t0", "t1"), member("C0", "t0", "t1")},
			partitions: map[string]int32{"t0": 3, "t1": 3},
			want:       map[string]string{"C0": "t0/0 t0/1 t1/0 t1/1", "C1": "t0/2 t1/2"},
		},
		{
			name:       "more members than partitions",
			members:    []groups.MemberSubscription{member("C0", "t0"), member("C1", "t0"), member("C2", "t0")},
			partitions: map[string]int32{"t0": 2},
			want:       map[string]string{"C0": "t0/0", "C1": "t0/1", "C2": ""},
		},
		{
			name:       "mixed subscriptions",
			members:    []groups.MemberSubscription{member("C0", "t0"), member("C1", "t0", "t1"), member("C2", "t1")},
			partitions: map[string]int32{"t0": 3, "t1": 2},
			want:       map[string]string{"C0": "t0/0 t0/1", "C1": "t0/2 t1/0", "C2": "t1/1"},
		},
		{
			name: "static members first, by instance id",
			members: []groups.MemberSubscription{
				member("a-dynamic", "t0"), static("m-1", "zeta", "t0"), static("m-2", "alpha", "t0"),
			},
			partitions: map[string]int32{"t0": 4},
			want:       map[string]string{"m-2": "t0/0 t0/1", "m-1": "t0/2", "a-dynamic": "t0/3"},
		},
		{
			name:       "unknown, empty and unsubscribed topics, duplicate subscription",
			members:    []groups.MemberSubscription{member("C0", "t0", "gone", "t0", "empty"), member("C1", "t0")},
			partitions: map[string]int32{"t0": 3, "empty": 0, "unread": 5},
			want:       map[string]string{"C0": "t0/0 t0/1", "C1": "t0/2"},
		},
		{
			name:       "no members",
			partitions: map[string]int32{"t0": 3},
			want:       map[string]string{},
		},
	})
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	runAssignCases(t, groups.RoundRobin(), []assignCase{
		{
			name:       "kafka doc: two members, two topics of three",
			members:    []groups.MemberSubscription{member("C1", "t1", "t0"), member("C0", "t0", "t1")},
			partitions: map[string]int32{"t0": 3, "t1": 3},
			want:       map[string]string{"C0": "t0/0 t0/2 t1/1", "C1": "t0/1 t1/0 t1/2"},
		},
		{
			name: "kafka doc: mixed subscriptions",
			members: []groups.MemberSubscription{
				member("C0", "t0"), member("C1", "t0", "t1"), member("C2", "t0", "t1", "t2"),
			},
			partitions: map[string]int32{"t0": 1, "t1": 2, "t2": 3},
			want:       map[string]string{"C0": "t0/0", "C1": "t1/0", "C2": "t1/1 t2/0 t2/1 t2/2"},
		},
		{
			name:       "more members than partitions",
			members:    []groups.MemberSubscription{member("C0", "t0", "t1"), member("C1", "t0", "t1"), member("C2", "t0", "t1")},
			partitions: map[string]int32{"t0": 1, "t1": 1},
			want:       map[string]string{"C0": "t0/0", "C1": "t1/0", "C2": ""},
		},
		{
			name: "static members first, by instance id",
			members: []groups.MemberSubscription{
				member("a-dynamic", "t0"), static("m-1", "zeta", "t0"), static("m-2", "alpha", "t0"),
			},
			partitions: map[string]int32{"t0": 4},
			want:       map[string]string{"m-2": "t0/0 t0/3", "m-1": "t0/1", "a-dynamic": "t0/2"},
		},
		{
			name:       "unknown topic skipped",
			members:    []groups.MemberSubscription{member("C0", "gone"), member("C1", "t0", "gone")},
			partitions: map[string]int32{"t0": 2},
			want:       map[string]string{"C0": "", "C1": "t0/0 t0/1"},
		},
	})
}

func TestSticky(t *testing.T) {
	t.Parallel()
	all4 := []string{"t0", "t1", "t2", "t3"}
	runAssignCases(t, groups.Sticky(), []assignCase{
		{
			name:       "kafka doc example 1: fresh",
			members:    []groups.MemberSubscription{member("C0", all4...), member("C1", all4...), member("C2", all4...)},
			partitions: map[string]int32{"t0": 2, "t1": 2, "t2": 2, "t3": 2},
			want:       map[string]string{"C0": "t0/0 t1/1 t3/0", "C1": "t0/1 t2/0 t3/1", "C2": "t1/0 t2/1"},
		},
		{
			name: "kafka doc example 1: C1 leaves",
			members: []groups.MemberSubscription{
				owning(member("C0", all4...), 1, "t0/0 t1/1 t3/0"), owning(member("C2", all4...), 1, "t1/0 t2/1"),
			},
			partitions: map[string]int32{"t0": 2, "t1": 2, "t2": 2, "t3": 2},
			want:       map[string]string{"C0": "t0/0 t1/1 t2/0 t3/0", "C2": "t0/1 t1/0 t2/1 t3/1"},
		},
		{
			name: "kafka doc example 2: fresh, mixed subscriptions",
			members: []groups.MemberSubscription{
				member("C0", "t0"), member("C1", "t0", "t1"), member("C2", "t0", "t1", "t2"),
			},
			partitions: map[string]int32{"t0": 1, "t1": 2, "t2": 3},
			want:       map[string]string{"C0": "t0/0", "C1": "t1/0 t1/1", "C2": "t2/0 t2/1 t2/2"},
		},
		{
			name: "kafka doc example 2: C0 leaves",
			members: []groups.MemberSubscription{
				owning(member("C1", "t0", "t1"), 1, "t1/0 t1/1"), owning(member("C2", "t0", "t1", "t2"), 1, "t2/0 t2/1 t2/2"),
			},
			partitions: map[string]int32{"t0": 1, "t1": 2, "t2": 3},
			want:       map[string]string{"C1": "t0/0 t1/0 t1/1", "C2": "t2/0 t2/1 t2/2"},
		},
		{
			name: "conflicting claims: newer generation wins",
			members: []groups.MemberSubscription{
				owning(member("A", "t0"), 1, "t0/0"), owning(member("B", "t0"), 2, "t0/0"),
			},
			partitions: map[string]int32{"t0": 2},
			want:       map[string]string{"A": "t0/1", "B": "t0/0"},
		},
		{
			name: "conflicting claims: unknown generation loses",
			members: []groups.MemberSubscription{
				owning(member("A", "t0"), -1, "t0/0"), owning(member("B", "t0"), 0, "t0/0"),
			},
			partitions: map[string]int32{"t0": 2},
			want:       map[string]string{"A": "t0/1", "B": "t0/0"},
		},
		{
			name: "conflicting claims: same generation, lower member id wins",
			members: []groups.MemberSubscription{
				owning(member("B", "t0"), 3, "t0/1"), owning(member("A", "t0"), 3, "t0/1"),
			},
			partitions: map[string]int32{"t0": 2},
			want:       map[string]string{"A": "t0/1", "B": "t0/0"},
		},
		{
			name: "invalid claims ignored",
			members: []groups.MemberSubscription{
				owning(member("A", "t0"), 1, "t0/7 gone/0 t1/0 t0/-1"), owning(member("B", "t0", "t1"), 1, "t0/0"),
			},
			partitions: map[string]int32{"t0": 2, "t1": 1},
			want:       map[string]string{"A": "t0/1", "B": "t0/0 t1/0"},
		},
		{
			name: "over-quota member gives up its highest partitions",
			members: []groups.MemberSubscription{
				owning(member("A", "t0"), 1, "t0/0 t0/1 t0/2 t0/3"), member("B", "t0"),
			},
			partitions: map[string]int32{"t0": 4},
			want:       map[string]string{"A": "t0/0 t0/1", "B": "t0/2 t0/3"},
		},
		{
			name:       "more members than partitions",
			members:    []groups.MemberSubscription{member("C0", "t0"), member("C1", "t0"), member("C2", "t0")},
			partitions: map[string]int32{"t0": 2},
			want:       map[string]string{"C0": "t0/0", "C1": "t0/1", "C2": ""},
		},
	})
}

// checkValid checks what every assignor promises: every member present with a sorted,
// non-nil slice, and every partition of a subscribed topic assigned exactly once, to a
// subscriber.
func checkValid(t *testing.T, members []groups.MemberSubscription, partitions map[string]int32, got assignment) {
	t.Helper()
	if got == nil {
		t.Fatal("nil assignment")
	}
	subscribed := map[string]map[string]bool{} // member → topics
	want := map[semantics.TopicPartition]bool{}
	for _, m := range members {
		subscribed[m.MemberID] = map[string]bool{}
		for _, topic := range m.Topics {
			subscribed[m.MemberID][topic] = true
			for p := range partitions[topic] {
				want[semantics.TopicPartition{Topic: topic, Partition: p}] = true
			}
		}
		if ps, ok := got[m.MemberID]; !ok || ps == nil {
			t.Errorf("member %s: no assignment (nil slice)", m.MemberID)
		}
	}
	if len(got) != len(members) {
		t.Errorf("assignment has %d members, want %d", len(got), len(members))
	}
	seen := map[semantics.TopicPartition]string{}
	for id, ps := range got {
		if !slices.IsSortedFunc(ps, comparePartitions) {
			t.Errorf("member %s: partitions not sorted: %v", id, ps)
		}
		for _, tp := range ps {
			if prev, dup := seen[tp]; dup {
				t.Errorf("%v assigned to both %s and %s", tp, prev, id)
			}
			seen[tp] = id
			if !want[tp] {
				t.Errorf("%v assigned to %s: not a partition of a subscribed topic", tp, id)
			}
			if !subscribed[id][tp.Topic] {
				t.Errorf("%v assigned to %s, which does not subscribe to %s", tp, id, tp.Topic)
			}
		}
	}
	for tp := range want {
		if _, ok := seen[tp]; !ok {
			t.Errorf("%v not assigned", tp)
		}
	}
}

func comparePartitions(a, b semantics.TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition - b.Partition)
}

// randomGroup returns a random group: a few topics (some gone, some empty), members
// with equal or random subscriptions (some static), and random, partly conflicting
// and partly invalid ownership claims.
func randomGroup(r *rand.Rand) (members []groups.MemberSubscription, partitions map[string]int32, equal bool) {
	partitions = map[string]int32{}
	topics := []string{"gone"}
	for i := range 1 + r.IntN(5) {
		name := fmt.Sprintf("t%d", i)
		topics = append(topics, name)
		partitions[name] = int32(r.IntN(9)) // zero sometimes
	}
	equal = r.IntN(2) == 0
	shared := randomSubset(r, topics)
	for i := range 1 + r.IntN(8) {
		m := groups.MemberSubscription{MemberID: fmt.Sprintf("m%02d", i), Topics: shared, Generation: int32(r.IntN(4)) - 1}
		if !equal {
			m.Topics = randomSubset(r, topics)
		}
		if r.IntN(3) == 0 {
			m.InstanceID = fmt.Sprintf("i%02d", r.IntN(100)) + m.MemberID
		}
		for range r.IntN(6) {
			topic := topics[r.IntN(len(topics))]
			m.Owned = append(m.Owned, semantics.TopicPartition{Topic: topic, Partition: int32(r.IntN(10))})
		}
		members = append(members, m)
	}
	return members, partitions, equal
}

func randomSubset(r *rand.Rand, topics []string) []string {
	var out []string
	for _, topic := range topics {
		if r.IntN(2) == 0 {
			out = append(out, topic)
		}
	}
	return out
}

// shuffled returns a copy of members in random order, each member's topics and owned
// partitions shuffled too.
func shuffled(r *rand.Rand, members []groups.MemberSubscription) []groups.MemberSubscription {
	out := slices.Clone(members)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	for i := range out {
		out[i].Topics, out[i].Owned = slices.Clone(out[i].Topics), slices.Clone(out[i].Owned)
		r.Shuffle(len(out[i].Topics), func(a, b int) { out[i].Topics[a], out[i].Topics[b] = out[i].Topics[b], out[i].Topics[a] })
		r.Shuffle(len(out[i].Owned), func(a, b int) { out[i].Owned[a], out[i].Owned[b] = out[i].Owned[b], out[i].Owned[a] })
	}
	return out
}

// spread returns the largest difference between the partition counts of two members
// whose subscriptions (to assignable topics) are equal.
func spread(members []groups.MemberSubscription, partitions map[string]int32, got assignment) int {
	lo, hi := map[string]int{}, map[string]int{}
	for _, m := range members {
		var ts []string
		for _, topic := range m.Topics {
			if partitions[topic] > 0 {
				ts = append(ts, topic)
			}
		}
		slices.Sort(ts)
		key := strings.Join(slices.Compact(ts), ",")
		n := len(got[m.MemberID])
		if l, ok := lo[key]; !ok || n < l {
			lo[key] = n
		}
		hi[key] = max(hi[key], n)
	}
	worst := 0
	for key := range lo {
		worst = max(worst, hi[key]-lo[key])
	}
	return worst
}

func TestAssignorProperties(t *testing.T) {
	t.Parallel()
	for _, a := range []groups.Assignor{groups.Range(), groups.RoundRobin(), groups.Sticky()} {
		t.Run(a.Name(), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, uint64(len(a.Name()))))
			for i := range 400 {
				members, partitions, equal := randomGroup(r)
				got := a.Assign(members, partitions)
				checkValid(t, members, partitions, got)
				if again := a.Assign(shuffled(r, members), partitions); !reflect.DeepEqual(got, again) {
					t.Errorf("case %d: members reordered: got %v, then %v", i, got, again)
				}
				switch {
				case a.Name() == "sticky":
					// Holds within any set of members with equal subscriptions.
					if d := spread(members, partitions, got); d > 1 {
						t.Errorf("case %d: members with equal subscriptions differ by %d: %v", i, d, got)
					}
					if u, v, ok := improvable(members, partitions, got); ok {
						t.Errorf("case %d: a chain of moves from %s to %s would balance better: %v", i, u, v, got)
					}
					// Assigning again from its own result moves nothing.
					next := slices.Clone(members)
					for j := range next {
						next[j].Owned, next[j].Generation = got[next[j].MemberID], 7
					}
					if again := a.Assign(next, partitions); !reflect.DeepEqual(got, again) {
						t.Errorf("case %d: reassigning moved partitions: %v, then %v", i, got, again)
					}
				case a.Name() == "roundrobin" && equal:
					if d := spread(members, partitions, got); d > 1 {
						t.Errorf("case %d: members differ by %d: %v", i, d, got)
					}
				}
				if t.Failed() {
					t.Fatalf("case %d: members %+v, partitions %v", i, members, partitions)
				}
			}
		})
	}
}

// improvable looks for members u and v, v holding at least two fewer partitions than
// u, and a chain of members from u to v, each holding a partition the next subscribes
// to: moving along it would balance better.
func improvable(members []groups.MemberSubscription, partitions map[string]int32, got assignment) (u, v string, ok bool) {
	subscribers := map[string][]string{}
	for _, m := range members {
		for _, topic := range slices.Compact(slices.Sorted(slices.Values(m.Topics))) {
			subscribers[topic] = append(subscribers[topic], m.MemberID)
		}
	}
	for _, m := range members {
		u := m.MemberID
		seen := map[string]bool{u: true}
		queue := []string{u}
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			for _, tp := range got[a] {
				for _, b := range subscribers[tp.Topic] {
					if seen[b] {
						continue
					}
					if len(got[b]) <= len(got[u])-2 {
						return u, b, true
					}
					seen[b] = true
					queue = append(queue, b)
				}
			}
		}
	}
	return "", "", false
}

// moved counts the partitions each member of before lost in after.
func moved(before, after assignment) map[string]int {
	lost := map[string]int{}
	for id, ps := range before {
		for _, tp := range ps {
			if !slices.Contains(after[id], tp) {
				lost[id]++
			}
		}
	}
	return lost
}

// withOwned returns members claiming their partitions in prev, from generation gen.
func withOwned(members []groups.MemberSubscription, prev assignment, gen int32) []groups.MemberSubscription {
	out := slices.Clone(members)
	for i := range out {
		out[i].Owned, out[i].Generation = prev[out[i].MemberID], gen
	}
	return out
}

func TestStickyRebalance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		members    int
		partitions map[string]int32
	}{
		{"three topics, five members", 5, map[string]int32{"a": 7, "b": 3, "c": 11}},
		{"one topic, even split", 4, map[string]int32{"a": 12}},
		{"more members than partitions", 6, map[string]int32{"a": 2, "b": 2}},
		{"large", 30, map[string]int32{"a": 100, "b": 37, "c": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sticky := groups.Sticky()
			topics := slices.Sorted(maps.Keys(tc.partitions))
			var members []groups.MemberSubscription
			for i := range tc.members {
				members = append(members, member(fmt.Sprintf("m%02d", i), topics...))
			}
			// A previous generation with some history: one member was the only one.
			first := slices.Clone(members)
			first[2] = owning(first[2], 0, "")
			for topic, n := range tc.partitions {
				for p := range n {
					first[2].Owned = append(first[2].Owned, semantics.TopicPartition{Topic: topic, Partition: p})
				}
			}
			prev := sticky.Assign(first, tc.partitions)

			for leaver := range members {
				t.Run(fmt.Sprintf("leave %d", leaver), func(t *testing.T) {
					rest := slices.Delete(withOwned(members, prev, 1), leaver, leaver+1)
					got := sticky.Assign(rest, tc.partitions)
					checkValid(t, rest, tc.partitions, got)
					if d := spread(rest, tc.partitions, got); d > 1 {
						t.Errorf("members differ by %d: %v", d, got)
					}
					for id, lost := range moved(prev, got) {
						if id != members[leaver].MemberID {
							t.Errorf("member %s lost %d partitions; only the leaver's should move", id, lost)
						}
					}
				})
			}

			for joiners := 1; joiners <= 3; joiners++ {
				t.Run(fmt.Sprintf("join %d", joiners), func(t *testing.T) {
					grown := withOwned(members, prev, 1)
					for j := range joiners {
						grown = append(grown, member(fmt.Sprintf("new%d", j), topics...))
					}
					got := sticky.Assign(grown, tc.partitions)
					checkValid(t, grown, tc.partitions, got)
					if d := spread(grown, tc.partitions, got); d > 1 {
						t.Errorf("members differ by %d: %v", d, got)
					}
					// The fewest moves: each member keeps up to the lower quota, and as
					// many as there are extra partitions keep one more.
					total := 0
					for _, ps := range tc.partitions {
						total += int(ps)
					}
					quota, extra := total/len(grown), total%len(grown)
					wantMoved := 0
					for _, ps := range prev {
						if len(ps) > quota {
							wantMoved += len(ps) - quota
							if extra > 0 {
								wantMoved--
								extra--
							}
						}
					}
					gotMoved := 0
					for id, lost := range moved(prev, got) {
						gotMoved += lost
						if lost > max(0, len(prev[id])-quota) {
							t.Errorf("member %s lost %d of %d partitions, quota %d", id, lost, len(prev[id]), quota)
						}
					}
					if gotMoved != wantMoved {
						t.Errorf("%d partitions moved, want %d", gotMoved, wantMoved)
					}
				})
			}
		})
	}
}

func TestStickyRandomLeave(t *testing.T) {
	t.Parallel()
	sticky := groups.Sticky()
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		members, partitions, equal := randomGroup(r)
		if !equal || len(members) < 2 {
			continue
		}
		prev := sticky.Assign(members, partitions)
		leaver := r.IntN(len(members))
		rest := slices.Delete(withOwned(members, prev, 2), leaver, leaver+1)
		got := sticky.Assign(rest, partitions)
		for id, lost := range moved(prev, got) {
			if id != members[leaver].MemberID {
				t.Fatalf("case %d: member %s lost %d partitions when %s left: %v, then %v",
					i, id, lost, members[leaver].MemberID, prev, got)
			}
		}
	}
}

func BenchmarkSticky(b *testing.B) {
	partitions := map[string]int32{}
	var topics []string
	for i := range 10 {
		topic := fmt.Sprintf("topic-%d", i)
		topics = append(topics, topic)
		partitions[topic] = 100
	}
	var members []groups.MemberSubscription
	for i := range 100 {
		members = append(members, member(fmt.Sprintf("member-%03d", i), topics...))
	}
	sticky := groups.Sticky()
	prev := sticky.Assign(members[:99], partitions)
	rejoin := withOwned(members, prev, 1)
	// Mixed subscriptions take the general path: every member reads topic-0, the odd
	// ones everything.
	mixed := slices.Clone(members)
	for i := range mixed {
		if i%2 == 0 {
			mixed[i].Topics = topics[:1]
		}
	}
	mixedPrev := sticky.Assign(mixed[:99], partitions)
	mixedRejoin := withOwned(mixed, mixedPrev, 1)

	for _, bc := range []struct {
		name    string
		members []groups.MemberSubscription
	}{
		{"fresh", members},
		{"join", rejoin},
		{"mixed fresh", mixed},
		{"mixed join", mixedRejoin},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sticky.Assign(bc.members, partitions)
			}
		})
	}
}
