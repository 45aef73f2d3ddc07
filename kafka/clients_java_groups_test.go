//go:build kafkaclients

package kafka_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// javaEvent is a rebalance callback a member of Check.java saw: assigned,
// revoked or lost, with the partitions and the generation it came in.
type javaEvent struct {
	Who        string  `json:"who"`
	Event      string  `json:"event"`
	Partitions []int32 `json:"partitions"`
	Generation int32   `json:"generation"`
}

// produceKeyed writes n keyed records to topic through the listener and returns
// where each landed, by value.
func produceKeyed(t *testing.T, addr, topic string, n int) map[string]rec {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i%13), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := map[string]rec{}
	for _, r := range rs {
		out[string(r.Value)] = rec{string(r.Key), string(r.Value), r.Partition, r.Offset}
	}
	return out
}

// checkReadOnce fails the test unless consumed holds every produced record once,
// where it was produced.
func checkReadOnce(t *testing.T, produced map[string]rec, consumed []javaRec) bool {
	t.Helper()
	times := map[string]int{}
	readers := map[string][]string{}
	for _, r := range consumed {
		times[r.Value]++
		readers[r.Value] = append(readers[r.Value], r.Who)
		if w, ok := produced[r.Value]; !ok || r.rec() != w {
			t.Errorf("read %v, produced %v", r.rec(), w)
		}
	}
	for v, w := range produced {
		if times[v] != 1 {
			t.Errorf("%v read %d times (by %v), want once", w, times[v], readers[v])
		}
	}
	return !t.Failed()
}

// Two Java members with the CooperativeStickyAssignor: a takes every partition;
// when b joins, a is revoked only the partitions that move to b and keeps the
// others throughout (an eager assignor revokes them all first); when a leaves, b is
// given a's partitions on top of its own and is never revoked one. Committing after
// every poll, the two read every record once.
func TestClientJavaCooperativeSticky(t *testing.T) {
	n, c := startNode(t)
	const topic, group, partitions, total = "java-coop", "java-coop-group", 4, 240
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
	produced := produceKeyed(t, n.KafkaAddr(), topic, total)
	var res struct {
		Consumed      []javaRec        `json:"consumed"`
		Events        []javaEvent      `json:"events"`
		BOwns         []int32          `json:"bOwns"`
		CommitRetries int              `json:"commitRetries"`
		Commits       []map[string]any `json:"commits"`
	}
	runJava(t, &res, "cooperative", n.KafkaAddr(), topic, group, fmt.Sprint(total))
	t.Logf("callbacks: %+v; commits refused during a rebalance: %d", res.Events, res.CommitRetries)
	if !checkReadOnce(t, produced, res.Consumed) {
		t.Logf("commits: %v", res.Commits)
	}

	owned := map[string]map[int32]bool{"a": {}, "b": {}}
	var aRevoked, bAdded int
	for _, e := range res.Events {
		own := owned[e.Who]
		switch e.Event {
		case "assigned":
			for _, p := range e.Partitions {
				if own[p] {
					t.Errorf("%s was assigned partition %d it owned already: %+v", e.Who, p, e)
				}
				own[p] = true
			}
			if e.Who == "b" && len(e.Partitions) > 0 {
				bAdded++
			}
		case "revoked", "lost":
			if e.Who == "b" || e.Event == "lost" {
				t.Errorf("%+v: want b never revoked and nothing lost", e)
				continue
			}
			if len(e.Partitions) == 0 {
				continue
			}
			aRevoked++
			for _, p := range e.Partitions {
				delete(own, p)
			}
			if len(own) == 0 {
				t.Errorf("%+v: a was revoked every partition it owned, as by an eager assignor", e)
			}
		}
	}
	if aRevoked == 0 {
		t.Errorf("a was never revoked a partition when b joined")
	}
	if bAdded < 2 {
		t.Errorf("b was given partitions %d times, want at its join and again when a left", bAdded)
	}
	if !slices.Equal(res.BOwns, []int32{0, 1, 2, 3}) {
		t.Errorf("b owns %v at the end, want every partition", res.BOwns)
	}
	ends := map[int32]int64{}
	for _, r := range produced {
		ends[r.partition] = max(ends[r.partition], r.offset+1)
	}
	waitCommitted(t, c, group, topic, ends)
}

// Two static Java members (group.instance.id): a is closed (a static member sends
// no LeaveGroup) and a new consumer with a's instance id starts within
// session.timeout.ms: it is given a's partitions back in the same generation, and
// b sees no rebalance (no callback, its generation unchanged). Committing after
// every poll, the members read every record once.
func TestClientJavaStaticMembers(t *testing.T) {
	n, c := startNode(t)
	const topic, group, partitions, total = "java-static", "java-static-group", 4, 240
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
	produced := produceKeyed(t, n.KafkaAddr(), topic, total)
	var res struct {
		Consumed       []javaRec   `json:"consumed"`
		Events         []javaEvent `json:"events"`
		AOwned         []int32     `json:"aOwned"`
		A2Owned        []int32     `json:"a2Owned"`
		BGeneration    int32       `json:"bGeneration"`
		BGenerationEnd int32       `json:"bGenerationEnd"`
		A2Generation   int32       `json:"a2Generation"`
		RejoinMillis   int64       `json:"rejoinMillis"`
	}
	runJava(t, &res, "static", n.KafkaAddr(), topic, group, fmt.Sprint(total))
	t.Logf("callbacks: %+v; a2 assigned %d ms after a closed", res.Events, res.RejoinMillis)
	checkReadOnce(t, produced, res.Consumed)
	if len(res.AOwned) == 0 || !slices.Equal(res.AOwned, res.A2Owned) {
		t.Errorf("a owned %v, its successor with the same instance id was given %v, want the same", res.AOwned, res.A2Owned)
	}
	if res.BGenerationEnd != res.BGeneration || res.A2Generation != res.BGeneration {
		t.Errorf("generations: b %d before a's restart and %d at the end, a2 %d: want one generation", res.BGeneration, res.BGenerationEnd, res.A2Generation)
	}
	for _, e := range res.Events {
		if e.Who == "b" && e.Generation > res.BGeneration {
			t.Errorf("b saw %+v after a's restart: want no rebalance", e)
		}
	}
	ends := map[int32]int64{}
	for _, r := range produced {
		ends[r.partition] = max(ends[r.partition], r.offset+1)
	}
	waitCommitted(t, c, group, topic, ends)
}
