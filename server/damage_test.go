package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestReportDamageRecordsAndShows reports a damaged batch the way a reader does
// (over the admin API and in process): describe and cluster info show it naming
// the offsets and the node, a second report of it adds nothing, bad reports are
// refused and change nothing, and a verify that reads the node's whole copy
// intact removes it.
func TestReportDamageRecordsAndShows(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 60*time.Second)
	a := n.Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "dmg", Config: semantics.TopicConfig{Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, n.Writers(), "dmg", 1, buildBatch(t, semantics.NoProducer, "a", "b"))
	d, err := a.DescribeTopic(ctx, "dmg")
	if err != nil {
		t.Fatal(err)
	}
	node := d.Partitions[1].Leader
	good := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: 1, ToSeq: 1, FromOffset: 0, ToOffset: 1, Node: node,
		Detail: "the batch at stream sequence 1 fails its checks"}

	for _, tc := range []struct {
		name string
		req  semantics.ReportDamageRequest
		want *semantics.Error
	}{
		{"unknown topic", semantics.ReportDamageRequest{Name: "nope", Partition: 0, Damage: good}, semantics.ErrUnknownTopic},
		{"unknown partition", semantics.ReportDamageRequest{Name: "dmg", Partition: 2, Damage: good}, semantics.ErrUnknownTopic},
		{"bad kind", semantics.ReportDamageRequest{Name: "dmg", Partition: 1, Damage: func() semantics.BatchDamage {
			d := good
			d.Kind = "offsets"
			return d
		}()}, semantics.ErrInvalidRequest},
		{"no node", semantics.ReportDamageRequest{Name: "dmg", Partition: 1, Damage: func() semantics.BatchDamage {
			d := good
			d.Node = ""
			return d
		}()}, semantics.ErrInvalidRequest},
	} {
		if err := a.ReportDamage(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: report gave %v, want %v", tc.name, err, tc.want)
		}
	}
	if d, err := a.DescribeTopic(ctx, "dmg"); err != nil || d.Partitions[0].Damage != "" || d.Partitions[1].Damage != "" {
		t.Fatalf("describe after bad reports: %+v, %v; want no damage", d.Partitions, err)
	}

	// A reader's report, over the admin API, twice.
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body, _ := json.Marshal(semantics.ReportDamageRequest{Name: "dmg", Partition: 1, Damage: good, Recovered: true})
	for range 2 {
		m, err := nc.RequestWithContext(ctx, semantics.TopicAPISubject(semantics.APITopicReportDamage, "dmg"), body)
		if err != nil {
			t.Fatal(err)
		}
		var resp semantics.ReportDamageResponse
		if err := json.Unmarshal(m.Data, &resp); err != nil || resp.Failure() != nil {
			t.Fatalf("report: %s (%v)", m.Data, err)
		}
	}
	d, err = a.DescribeTopic(ctx, "dmg")
	if err != nil {
		t.Fatal(err)
	}
	p1 := d.Partitions[1]
	if len(p1.Damaged) != 1 || !strings.Contains(p1.Damage, "offsets 0 to 1 damaged on node "+node) || d.Partitions[0].Damage != "" {
		t.Fatalf("describe after the report: partition 1 damaged %+v, note %q; partition 0 note %q; want one entry naming offsets 0 to 1 and node %s",
			p1.Damaged, p1.Damage, d.Partitions[0].Damage, node)
	}
	info, err := a.ClusterInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Damaged) != 1 || info.Damaged[0].Partition != 1 || !strings.Contains(info.Damaged[0].Note, "node "+node) {
		t.Fatalf("cluster info after the report: damaged %+v; want partition dmg/1 naming node %s", info.Damaged, node)
	}

	// The stored copy is intact: a verify of all of it clears the record.
	v, err := a.VerifyPartition(ctx, semantics.VerifyPartitionRequest{Name: "dmg", Partition: 1, NextOffset: -1})
	if err != nil || len(v.Damage) > 0 || v.NextSeq != 0 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	if d, err := a.DescribeTopic(ctx, "dmg"); err != nil || d.Partitions[1].Damage != "" || len(d.Partitions[1].Damaged) != 0 {
		t.Fatalf("describe after an intact verify: %+v, %v; want no damage", d.Partitions[1], err)
	}
	if info, err := a.ClusterInfo(ctx); err != nil || len(info.Damaged) != 0 {
		t.Fatalf("cluster info after an intact verify: %+v, %v; want nothing damaged", info.Damaged, err)
	}
}

// TestVerifyInPagesClearsDamage verifies a partition too big for one verify
// request (each request's context leaves it a few milliseconds, so it answers
// with where to go on): once the pages together have read the node's whole copy
// intact, the damage record a reader left is gone, as after a verify in one
// request.
func TestVerifyInPagesClearsDamage(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 120*time.Second)
	a := n.Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "paged", Config: semantics.TopicConfig{Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	const batches = 400
	for i := range batches {
		appendWhenLed(ctx, t, n.Writers(), "paged", 0, buildBatch(t, semantics.NoProducer, fmt.Sprintf("r%d", i)))
	}
	d, err := a.DescribeTopic(ctx, "paged")
	if err != nil {
		t.Fatal(err)
	}
	node := d.Partitions[0].Leader
	for _, seq := range []uint64{3, batches - 2} { // one entry early, one late in the log
		dm := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: seq, ToSeq: seq, FromOffset: int64(seq - 1), ToOffset: int64(seq - 1),
			Node: node, Detail: "the batch fails its checks"}
		if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: "paged", Partition: 0, Damage: dm, Recovered: true}); err != nil {
			t.Fatal(err)
		}
	}

	req := semantics.VerifyPartitionRequest{Name: "paged", Partition: 0, NextOffset: -1}
	pages, batchesRead := 0, uint64(0)
	for {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		v, err := a.VerifyPartition(pctx, req)
		cancel()
		if err != nil { // the short context ran out inside a read: ask again
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			continue
		}
		pages++
		batchesRead += v.Batches
		if len(v.Damage) > 0 {
			t.Fatalf("page %d found damage in an intact copy: %+v", pages, v.Damage)
		}
		if v.NextSeq == 0 {
			break
		}
		req.FromSeq, req.NextOffset = v.NextSeq, v.NextOffset
	}
	if pages < 2 || batchesRead != batches {
		t.Fatalf("the verify read %d batches in %d pages; want all %d in more than one", batchesRead, pages, batches)
	}
	t.Logf("verified %d batches in %d pages", batchesRead, pages)
	if d, err := a.DescribeTopic(ctx, "paged"); err != nil || d.Partitions[0].Damage != "" || len(d.Partitions[0].Damaged) != 0 {
		t.Fatalf("describe after a verify that read the whole copy intact in %d pages: damaged %+v (%v); want no damage", pages, d.Partitions[0].Damaged, err)
	}
}

// TestDamageRecordShownRightAfter records damage through each node of a
// three-node cluster and describes the partition through the same node at once:
// the describe shows what was just recorded, whichever replica of the partitions
// bucket is behind for a moment (the automatic repair test's verify once found
// damage that a describe 4 ms later did not show).
func TestDamageRecordShownRightAfter(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	if _, _, err := nodes[0].Admin().CreateTopic(ctx, semantics.CreateTopicRequest{Name: "fresh", Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	const rounds = 15 // per node; the record holds up to 64 entries
	missed := 0
	for i, n := range nodes {
		a := n.Admin()
		for r := range rounds {
			seq := uint64(1 + i*rounds + r)
			dm := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: seq, ToSeq: seq, FromOffset: int64(seq), ToOffset: int64(seq),
				Node: "n1", Detail: fmt.Sprintf("the batch at stream sequence %d fails its checks", seq)}
			if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: "fresh", Partition: 0, Damage: dm}); err != nil {
				t.Fatal(err)
			}
			d, err := a.DescribeTopic(ctx, "fresh")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(d.Partitions[0].Damaged, func(x semantics.BatchDamage) bool { return x.FromSeq == seq }) {
				missed++
				t.Errorf("describe through node %s right after it recorded damage at stream sequence %d: %d entries, that one missing",
					n.Name(), seq, len(d.Partitions[0].Damaged))
			}
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d describes missed the damage recorded just before", missed, rounds*len(nodes))
	}
}
