package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestTopicDescribeVerify: "topic describe --verify" reads back every stored batch
// of a healthy topic, a trimmed partition included, and finds it intact; it
// changes nothing, and a partition that does not exist is a clear error.
// TestCorruptionOneNode and TestCorruptionOneNodeTruncated check that it finds
// damage.
func TestTopicDescribeVerify(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "log", "-p", "2")
	// Three batches of three records in partition 0 (offsets 0-2, 3-5, 6-8), one
	// in partition 1; then partition 0 is trimmed into its second batch.
	for _, in := range []string{"a\nb\nc\n", "d\ne\nf\n", "g\nh\ni\n"} {
		c.must(in, "topic", "produce", "log", "-p", "0")
	}
	c.must("x\n", "topic", "produce", "log", "-p", "1")
	c.must("", "topic", "trim", "log", "-p", "0", "-o", "4")
	before := c.must("", "topic", "describe", "log")

	out := c.must("", "topic", "describe", "log", "--verify")
	if !strings.HasPrefix(out, before) {
		t.Errorf("describe --verify does not begin with what describe prints:\n%s\nwant a prefix:\n%s", out, before)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`verify: partition 0 on node \S+: 2 batches, 6 records, \d+ bytes read back; intact\n`),
		regexp.MustCompile(`verify: partition 1 on node \S+: 1 batches, 1 records, \d+ bytes read back; intact\n`),
	} {
		if !want.MatchString(out) {
			t.Errorf("describe --verify does not match %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DAMAGED") || strings.Contains(out, "PROBLEM") {
		t.Errorf("describe --verify finds a healthy topic damaged:\n%s", out)
	}
	if after := c.must("", "topic", "describe", "log"); after != before {
		t.Errorf("describe --verify changed what describe shows:\n%s\nwas:\n%s", after, before)
	}

	var js struct {
		Partitions []struct {
			Partition int32 `json:"partition"`
			Verify    *struct {
				Batches uint64            `json:"batches"`
				Records int64             `json:"records"`
				Damage  []json.RawMessage `json:"damage"`
			} `json:"verify"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(c.must("", "topic", "describe", "log", "--verify", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Partitions) != 2 || js.Partitions[0].Verify == nil || js.Partitions[0].Verify.Batches != 2 ||
		js.Partitions[0].Verify.Records != 6 || len(js.Partitions[0].Verify.Damage) != 0 {
		t.Errorf("describe --verify --json: %+v", js)
	}

	cl := connect(t, c.node.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Admin().VerifyPartition(ctx, "log", 2); err == nil || !strings.Contains(err.Error(), `partition 2 of topic "log" does not exist: the topic has partitions 0 to 1`) {
		t.Errorf("verify of partition 2 of a topic with 2: %v", err)
	}
	if _, err := cl.Admin().VerifyPartition(ctx, "nope", 0); err == nil || !strings.Contains(err.Error(), `"nope" does not exist`) {
		t.Errorf("verify of a topic that does not exist: %v", err)
	}
}

// TestTopicDescribeVerifyBadBatches stores, behind the partition writer's back, a
// batch whose offsets repeat the previous one's and a batch with a flipped bit:
// "topic describe --verify" reports both, naming stream sequences, offsets and
// node, and exits with an error.
func TestTopicDescribeVerifyBadBatches(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "log", "-p", "2")
	c.must("a\nb\nc\n", "topic", "produce", "log", "-p", "1")
	js := connectJetStream(t, c.node.ClientURL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, semantics.StreamName("log", 1))
	if err != nil {
		t.Fatal(err)
	}
	var batch []byte
	for seq := uint64(1); batch == nil; seq++ {
		m, err := stream.GetMsg(ctx, seq) // the writer may store a checkpoint first
		if err != nil {
			t.Fatalf("read the stored batch: %v", err)
		}
		if _, err := semantics.ParseBatchHeader(m.Data); err == nil {
			batch = m.Data
		}
	}
	flipped := append([]byte{}, batch...)
	flipped[len(flipped)-1] ^= 0x08
	for _, b := range [][]byte{batch, flipped} {
		if _, err := js.Publish(ctx, semantics.BatchSubject("log", 1), b); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.run("", "topic", "describe", "log", "--verify")
	node := c.node.Name()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^1\s.*DAMAGED: 1 corrupt, 1 offsets\n`),
		regexp.MustCompile(`verify: partition 1 on node ` + node + `: 2 batches, 6 records, \d+ bytes read back; DAMAGED \(2 findings\)\n`),
		regexp.MustCompile(`  offsets: the batch at stream sequence \d+ on node ` + node + ` starts at offset 0, which an earlier batch already holds \(up to 2\)\n`),
		regexp.MustCompile(`  corrupt: the batch stored at stream sequence \d+ on node ` + node + ` fails its checks: .*crc mismatch`),
		regexp.MustCompile(`verify: partition 0 on node ` + node + `: 0 batches, 0 records, 0 bytes read back; intact\n`),
	} {
		if !want.MatchString(out) {
			t.Errorf("describe --verify does not match %s:\n%s", want, out)
		}
	}
	if err == nil || !strings.Contains(err.Error(), `topic "log": partitions [1] are damaged`) {
		t.Errorf("describe --verify of a damaged topic ended with %v; want an error naming partition 1", err)
	}
}

// TestTopicDescribeVerifyReplicas: "topic describe --verify-replicas" on three
// nodes reads back each replica's copy of each partition and names the node of
// each; a healthy topic is intact on all of them.
func TestTopicDescribeVerifyReplicas(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c := newCLI(t, nodes[0])
	c.must("", "topic", "create", "rep", "-p", "2", "-r", "3")
	c.must("a\nb\nc\n", "topic", "produce", "rep", "-p", "0")
	c.must("d\n", "topic", "produce", "rep", "-p", "1")
	deadline := time.Now().Add(30 * time.Second)
	for !regexp.MustCompile(`(?m)^1 +n\d +\S+ +n\d,n\d,n\d `).MatchString(c.must("", "topic", "describe", "rep")) { // all in sync
		if time.Now().After(deadline) {
			t.Fatal("replicas not in sync within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := c.must("", "topic", "describe", "rep", "--verify-replicas")
	for _, node := range []string{"n1", "n2", "n3"} {
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`verify: partition 0 on node ` + node + `: 1 batches, 3 records, \d+ bytes read back; intact\n`),
			regexp.MustCompile(`verify: partition 1 on node ` + node + `: 1 batches, 1 records, \d+ bytes read back; intact\n`),
		} {
			if !want.MatchString(out) {
				t.Errorf("describe --verify-replicas does not match %s:\n%s", want, out)
			}
		}
	}
	if strings.Contains(out, "DAMAGED") {
		t.Errorf("describe --verify-replicas finds a healthy topic damaged:\n%s", out)
	}
}

// TestTopicRepairRefuses: "topic repair" with nothing recorded damaged says so and
// changes nothing; bad flags and a single-replica partition are clear errors.
// TestCorruptionRepairThreeNodes (chaos tag) repairs real damage.
func TestTopicRepairRefuses(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "one", "-p", "2")
	c.must("a\nb\n", "topic", "produce", "one", "-p", "0")
	before := c.must("", "topic", "describe", "one")
	if out := c.must("", "topic", "repair", "one"); !strings.Contains(out, "topic one: no partition has damage recorded: nothing to repair") {
		t.Errorf("repair of a healthy topic printed %q; want that nothing is damaged", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "repair", "one", "--node", "n1"}, "--node needs a node name and --partition P"},
		{[]string{"topic", "repair", "one", "--partition", "-3"}, "--partition -3 is not a partition"},
		{[]string{"topic", "repair", "one", "--partition", "0"}, "has one replica: there is no other copy to rebuild it from"},
		{[]string{"topic", "repair", "nope", "--partition", "0"}, "nope"},
	} {
		out, err := c.run("", tc.args...)
		if err == nil || !strings.Contains(out+err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("qxd %s: printed %q, error %v; want a one-line error saying %q", strings.Join(tc.args, " "), out, err, tc.want)
		}
	}
	if after := c.must("", "topic", "describe", "one"); after != before {
		t.Errorf("refused repairs changed what describe shows:\n%s\nwas:\n%s", after, before)
	}
}
