package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// This file holds the corruption tests: a partition's stored block file (.blk) is
// damaged on one node, the node restarts, and the test reads the partition back.
// No reader may get a record that differs from the one acknowledged at its offset
// (nor a record from a batch whose CRC-32C fails); where acknowledged records
// cannot be read, the read must fail, not end early. TestCorruptionOneNode and
// TestCorruptionOneNodeTruncated are the short versions that run with every "go
// test"; the full set is in durability_chaos_test.go.

// blkDamage is a way to damage a block file.
type blkDamage string

const (
	flipBits    blkDamage = "bits flipped"
	truncateBlk blkDamage = "truncated"
)

// damageBlk damages the block files of partition p of topic in node n's data dir;
// the node must be stopped. It returns what it did.
func damageBlk(n *procNode, topic string, p int32, d blkDamage) (string, error) {
	dir := filepath.Join(n.data, "jetstream", "$G", "streams", semantics.StreamName(topic, p), "msgs")
	blks, err := filepath.Glob(filepath.Join(dir, "*.blk"))
	if err != nil || len(blks) == 0 {
		return "", fmt.Errorf("no block files in %s (%v)", dir, err)
	}
	sort.Strings(blks)
	path := blks[0]
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(b) < 1024 {
		return "", fmt.Errorf("%s holds only %d bytes", path, len(b))
	}
	switch d {
	case flipBits:
		// One bit in each of three places past the first third: inside record data.
		for _, at := range []int{len(b) / 3, len(b) / 2, 2 * len(b) / 3} {
			b[at] ^= 0x08
		}
		if err := os.WriteFile(path, b, 0o640); err != nil {
			return "", err
		}
		return fmt.Sprintf("flipped 3 bits of %s (%d bytes) on node %s", filepath.Base(path), len(b), n.name), nil
	case truncateBlk:
		size := int64(len(b) * 6 / 10)
		if err := os.Truncate(path, size); err != nil {
			return "", err
		}
		return fmt.Sprintf("truncated %s from %d to %d bytes on node %s", filepath.Base(path), len(b), size, n.name), nil
	}
	return "", fmt.Errorf("unknown damage %q", d)
}

// corruptOutcome is what reading a damaged partition back found.
type corruptOutcome struct {
	acked   int   // records acknowledged in the damaged partition
	read    int   // records read back that match what was acknowledged at their offset
	wrong   int   // records read back that differ from it: never allowed
	missing int   // acknowledged records neither read nor covered by a read error
	readErr error // the error that ended the read, if any
	// described is partition 0 as describe saw it after the restart, before the
	// read; describe the output of "qxd topic describe" then.
	described   qxd.PartitionInfo
	describe    string
	clusterInfo string // the output of "qxd cluster info" then
	// describeAfter and clusterAfter are the outputs of "qxd topic describe" and
	// "qxd cluster info" after the read: what the read found damaged shows there.
	describeAfter string
	clusterAfter  string
	// verify is the output of "qxd topic describe --verify" after the read,
	// verifyErr its error.
	verify    string
	verifyErr error
}

func (o corruptOutcome) String() string {
	s := fmt.Sprintf("%d acknowledged in the damaged partition, %d read back intact, %d read back wrong, %d missing without an error", o.acked, o.read, o.wrong, o.missing)
	if o.readErr != nil {
		s += "; the read failed: " + o.readErr.Error()
	}
	return s
}

// runCorruption produces acknowledged records to a topic on n nodes (1 or 3,
// replicas n), stops a node that holds partition 0 (its leader), damages its block
// file, restarts it and reads partition 0 back from the start.
func runCorruption(t *testing.T, bin string, n int, d blkDamage) corruptOutcome {
	t.Helper()
	return runCorruptionThen(t, bin, n, d, nil)
}

// corruptRead reads partition 0 of the damaged topic again after the first read;
// victim is the node whose block file was damaged, acked the acknowledged records
// by offset. runCorruptionThen calls it before it describes the topic again.
type corruptRead func(ctx context.Context, c *qxd.Client, urls string, victim string, acked map[int64]string)

// runCorruptionThen is runCorruption with more reads, by then, after the first.
func runCorruptionThen(t *testing.T, bin string, n int, d blkDamage, then corruptRead) corruptOutcome {
	t.Helper()
	began := time.Now()
	// The nodes must not rebuild the damaged copy on their own: the tests read
	// what the damage does, and repair it when they say so.
	t.Setenv("QXD_AUTO_REPAIR", "false")
	cl := startNodes(t, bin, n, "always", false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "damaged"
	c := connect(t, cl.urls())
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 2, Replicas: n}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	// Records of about 200 bytes in batches of 50: some tens of batches.
	p, err := c.NewProducer(qxd.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	acked := map[int64]string{} // offset in partition 0 → value
	for i := 0; i < 4000; i += 50 {
		var recs []*qxd.Record
		for j := range 50 {
			v := fmt.Sprintf("v-%06d-%0180d", i+j, i+j)
			recs = append(recs, &qxd.Record{Topic: topic, Partition: 0, Value: []byte(v)})
		}
		if err := p.ProduceSync(ctx, recs...); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range recs {
			if r.Partition == 0 {
				acked[r.Offset] = string(r.Value)
			}
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	victim := cl.nodes[0]
	if n > 1 {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		if err := waitInSync(sctx, c, n); err != nil {
			t.Logf("before the damage: %v", err)
		}
		scancel()
		leader, err := leaderOf(ctx, c, topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		if victim = cl.node(leader); victim == nil {
			t.Fatalf("partition 0's leader %q is not one of the test's nodes", leader)
		}
	}
	if err := victim.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	what, err := damageBlk(victim, topic, 0, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped node %s, which led partition 0, and %s", victim.name, what)
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	if err := cl.startAll(rctx, victim); err != nil {
		t.Fatalf("restart after the damage: %v", err)
	}
	if n > 1 {
		if err := waitInSync(rctx, c, n); err != nil {
			t.Logf("after the restart: %v", err)
		}
	}
	if n > 1 {
		// Make the damaged node lead, as it may after any failover: a reader then
		// reads its copy.
		lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
		if err := preferLeader(lctx, cl.urls(), semantics.StreamName(topic, 0), victim.name); err != nil {
			t.Logf("moving partition 0's leadership to %s: %v", victim.name, err)
		} else {
			t.Logf("node %s, with the damaged block file, leads partition 0", victim.name)
		}
		lcancel()
	}
	out := corruptOutcome{acked: len(acked)}
	if d, err := c.Admin().DescribeTopic(ctx, topic); err == nil {
		for _, pi := range d.Partitions {
			if pi.Partition == 0 {
				out.described = pi
				t.Logf("describe after the restart: partition 0 leader %s, in sync %v, offsets %d to %d, %d batches missing, problem %q, damage %q",
					pi.Leader, pi.InSync, pi.LogStartOffset, pi.HighWatermark, pi.Missing, pi.Problem, pi.Damage)
			}
		}
	}
	var desc bytes.Buffer
	if err := run(ctx, []string{"qxd", "--server", cl.urls(), "--log-level", "warn", "topic", "describe", topic}, strings.NewReader(""), &desc, io.Discard); err != nil {
		t.Logf("qxd topic describe %s: %v", topic, err)
	}
	out.describe = desc.String()
	desc.Reset()
	if err := run(ctx, []string{"qxd", "--server", cl.urls(), "--log-level", "warn", "cluster", "info"}, strings.NewReader(""), &desc, io.Discard); err != nil {
		t.Logf("qxd cluster info: %v", err)
	}
	out.clusterInfo = desc.String()
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	for len(seen) < len(acked) {
		recs, err := cons.Poll(pctx)
		for _, r := range recs {
			if want, ok := acked[r.Offset]; !ok || want != string(r.Value) || seen[r.Offset] {
				out.wrong++
				continue
			}
			seen[r.Offset] = true
			out.read++
		}
		if err != nil {
			out.readErr = err
			break
		}
	}
	if out.readErr == nil || pctx.Err() != nil {
		// Ended without an error that explains it: what was not read is missing.
		out.missing = len(acked) - out.read
	}
	if then != nil {
		then(ctx, c, cl.urls(), victim.name, acked)
	}
	desc.Reset()
	if err := run(ctx, []string{"qxd", "--server", cl.urls(), "--log-level", "warn", "topic", "describe", topic}, strings.NewReader(""), &desc, io.Discard); err != nil {
		t.Logf("qxd topic describe %s after the read: %v", topic, err)
	}
	out.describeAfter = desc.String()
	desc.Reset()
	if err := run(ctx, []string{"qxd", "--server", cl.urls(), "--log-level", "warn", "cluster", "info"}, strings.NewReader(""), &desc, io.Discard); err != nil {
		t.Logf("qxd cluster info after the read: %v", err)
	}
	out.clusterAfter = desc.String()
	t.Logf("qxd topic describe %s after the read:\n%s\nqxd cluster info after the read:\n%s", topic, out.describeAfter, out.clusterAfter)
	// Verified after the read, so that the read meets the partition as the restart
	// left it: a verify reads every message of the leader's copy.
	desc.Reset()
	out.verifyErr = run(ctx, []string{"qxd", "--server", cl.urls(), "--log-level", "warn", "topic", "describe", topic, "--verify"}, strings.NewReader(""), &desc, io.Discard)
	out.verify = desc.String()
	t.Logf("qxd topic describe %s --verify after the read (error: %v):\n%s", topic, out.verifyErr, out.verify)
	t.Logf("RESULT %d node(s), block file %s: %v (test took %v)", n, d, out, time.Since(began).Round(time.Millisecond))
	return out
}

// checkNeverWrong fails t if a record read back differs from what was acknowledged
// at its offset, or if acknowledged records went missing without an error.
func checkNeverWrong(t *testing.T, o corruptOutcome) {
	t.Helper()
	if o.wrong > 0 {
		t.Errorf("%d records read back differ from what was acknowledged at their offsets", o.wrong)
	}
	if o.missing > 0 {
		t.Errorf("%d acknowledged records are missing and no read error says so", o.missing)
	}
}

// TestCorruptionOneNode is the short corruption test: bits flipped in a
// partition's block file on a single node. Whatever is read back must be what was
// acknowledged; what cannot be read must fail the read (docs/architecture.md,
// invariant 7).
func TestCorruptionOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a qxd process; skipped with -short")
	}
	// A Kafka client reads the only copy too: it may stop at the damage, but never
	// go past records it did not hand out.
	var kread, kwrong int
	gap := int64(-1)
	var kerr error
	o := runCorruptionThen(t, buildQxd(t), 1, flipBits, func(ctx context.Context, c *qxd.Client, _ string, victim string, acked map[int64]string) {
		kread, kwrong, gap, kerr = kafkaRead(ctx, t, c, victim, acked, 10*time.Second)
	})
	t.Logf("Kafka read through node n1: %d records intact, %d wrong, first offset read past unread ones %d, ended with %v", kread, kwrong, gap, kerr)
	if kwrong > 0 || gap >= 0 {
		t.Errorf("the Kafka read of the damaged partition got %d wrong records and went past unread offsets at %d; want neither", kwrong, gap)
	}
	checkNeverWrong(t, o)
	if o.readErr == nil || !strings.Contains(o.readErr.Error(), "node n1") || !strings.Contains(o.readErr.Error(), "damaged/0") ||
		!regexp.MustCompile(`offsets \d+ to \d+`).MatchString(o.readErr.Error()) {
		t.Errorf("the read of the damaged partition ended with %v; want an error naming the partition, the offsets and the node", o.readErr)
	}
	checkReadDamageShown(t, o, "n1")
	checkVerifyFound(t, o)
}

// checkReadDamageShown fails t unless "qxd topic describe" and "qxd cluster info"
// after the read show partition 0 damaged on node, with the offsets the read
// found corrupt.
func checkReadDamageShown(t *testing.T, o corruptOutcome, node string) {
	t.Helper()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^0\s.*DAMAGED`),
		regexp.MustCompile(`NOTE: partition 0 is damaged: .*offsets \d+ to \d+ .*node ` + node),
	} {
		if !want.MatchString(o.describeAfter) {
			t.Errorf("qxd topic describe after the read does not match %s:\n%s", want, o.describeAfter)
		}
	}
	if !regexp.MustCompile(`damaged:\s+1\n`).MatchString(o.clusterAfter) ||
		!regexp.MustCompile(`partition damaged/0 is damaged: .*node `+node).MatchString(o.clusterAfter) {
		t.Errorf("qxd cluster info after the read does not show partition 0 damaged on node %s:\n%s", node, o.clusterAfter)
	}
}

// checkVerifyFound fails t unless "topic describe --verify" showed partition 0
// damaged on node n1, naming the offsets, left partition 1 intact, and failed.
func checkVerifyFound(t *testing.T, o corruptOutcome) {
	t.Helper()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^0\s.*DAMAGED: `),
		regexp.MustCompile(`verify: partition 0 on node n1: \d+ batches, \d+ records, \d+ bytes read back; DAMAGED`),
		regexp.MustCompile(`(unreadable|corrupt|offsets): .*offsets? (from |up to )?\d+.*node n1`),
		regexp.MustCompile(`verify: partition 1 on node n1: .*; intact`),
	} {
		if !want.MatchString(o.verify) {
			t.Errorf("qxd topic describe --verify after the damage does not match %s:\n%s", want, o.verify)
		}
	}
	if o.verifyErr == nil || !strings.Contains(o.verifyErr.Error(), "partitions [0] are damaged") {
		t.Errorf("qxd topic describe --verify after the damage ended with %v; want an error naming partition 0", o.verifyErr)
	}
}

// TestCorruptionOneNodeTruncated truncates a partition's block file on a single
// node: after the restart "topic describe" must show the partition damaged (the
// batches past the cut are gone from the middle of its log), and reads stay
// never wrong.
func TestCorruptionOneNodeTruncated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a qxd process; skipped with -short")
	}
	o := runCorruption(t, buildQxd(t), 1, truncateBlk)
	checkNeverWrong(t, o)
	if o.described.Missing == 0 || !strings.Contains(o.described.Damage, "node n1") {
		t.Errorf("describe after the restart: partition 0 has %d batches missing, damage %q; want some missing and a note naming node n1",
			o.described.Missing, o.described.Damage)
	}
	if !strings.Contains(o.describe, "DAMAGED") || !strings.Contains(o.describe, "NOTE: partition 0 is damaged") {
		t.Errorf("qxd topic describe after the restart does not show partition 0 damaged:\n%s", o.describe)
	}
	if !regexp.MustCompile(`damaged:\s+1\n`).MatchString(o.clusterInfo) || !strings.Contains(o.clusterInfo, "partition damaged/0 is damaged") {
		t.Errorf("qxd cluster info after the restart does not count partition 0 as damaged:\n%s", o.clusterInfo)
	}
	checkVerifyFound(t, o)
}

// preferLeader asks stream's leader to step down in favour of node, and waits
// until node leads it.
func preferLeader(ctx context.Context, urls, stream, node string) error {
	nc, err := nats.Connect(urls)
	if err != nil {
		return err
	}
	defer nc.Close()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": node}})
	var last string
	for {
		resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
		if err == nil {
			last = string(resp.Data)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
		info, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+stream, nil)
		if err == nil {
			var si struct {
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			}
			if json.Unmarshal(info.Data, &si) == nil && si.Cluster.Leader == node {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not lead %s: %s", node, stream, last)
		case <-time.After(time.Second):
		}
	}
}

// kafkaRead reads partition 0 of the damaged topic from the start through the
// Kafka listener of node for at most wait, and counts the records that match
// acked. gap is the first offset read whose predecessor was not (-1 when none):
// a read that went past records it did not hand out.
func kafkaRead(ctx context.Context, t *testing.T, c *qxd.Client, node string, acked map[int64]string, wait time.Duration) (read, wrong int, gap int64, err error) {
	gap = -1
	got := map[int64]bool{}
	defer func() {
		for o := range got {
			if o > 0 && !got[o-1] && (gap < 0 || o < gap) {
				gap = o
			}
		}
	}()
	info, err := c.Admin().ClusterInfo(ctx)
	if err != nil {
		return 0, 0, -1, err
	}
	var seed string
	for _, n := range info.Nodes {
		if n.Name == node {
			seed = n.Kafka
		}
	}
	if seed == "" {
		return 0, 0, -1, fmt.Errorf("node %s has no Kafka listener in %+v", node, info.Nodes)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"damaged": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return 0, 0, -1, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	logged := 0
	for len(got) < len(acked) {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			return read, wrong, gap, fmt.Errorf("%d of %d records after %v: %w", len(got), len(acked), wait, rctx.Err())
		}
		for _, fe := range fs.Errors() {
			if logged++; logged <= 3 {
				t.Logf("Kafka fetch error (the client retries): %v", fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want, ok := acked[r.Offset]; !ok || want != string(r.Value) || got[r.Offset] {
				wrong++
				return
			}
			got[r.Offset] = true
			read++
		})
	}
	return read, wrong, gap, nil
}
