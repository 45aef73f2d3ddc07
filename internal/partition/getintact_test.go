package partition_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestGetIntactFromTheDamagedNode damages one batch in one node's copy of an R3
// partition (bits flipped in its block file while the node is down) and asks
// GetIntact for that batch through connections to that very node, over TCP and
// in process, as the node's own services and a client attached to it do, first
// while the node follows, then while it leads: each call must return the batch
// as it was acknowledged, read from a healthy replica.
func TestGetIntactFromTheDamagedNode(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	ctx := qxdtest.Context(t, 3*time.Minute)
	const topic = "intact"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p, err := c.NewProducer(qxd.BatchCompression(qxd.CompressionNone))
	if err != nil {
		t.Fatal(err)
	}
	// Twenty calls of ten records; the tenth holds the marker.
	const batches, damaged = 20, 10
	marker := []byte("MARKER-" + string(bytes.Repeat([]byte("m"), 200)))
	for b := 1; b <= batches; b++ {
		var recs []*qxd.Record
		for i := range 10 {
			v := fmt.Appendf(nil, "batch %02d record %d %0150d", b, i, b*10+i)
			if b == damaged && i == 5 {
				v = marker
			}
			recs = append(recs, &qxd.Record{Topic: topic, Value: v})
		}
		if err := p.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r := partition.NewReader(c.Conn(), topic, 0, false)
	waitInSync(ctx, t, r, 3)
	st, err := r.StreamInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A loaded machine may cut a ProduceSync's records into more than one batch:
	// find the one holding the marker, and keep the leader's copy of it.
	var seq uint64
	var want []byte
	for q := st.FirstSeq; q <= st.LastSeq && seq == 0; q++ {
		m, err := r.Get(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(m.Data, marker) {
			seq, want = q, m.Data
		}
	}
	if seq == 0 {
		t.Fatalf("no stored batch of sequences %d to %d holds the marker", st.FirstSeq, st.LastSeq)
	}

	// The victim is a follower, so that the partition keeps its leader while the
	// victim is down, and not the node c is connected to.
	vi := 1 + slices.IndexFunc(cfgs[1:], func(cfg server.Config) bool { return cfg.Name != st.Leader })
	victim := nodes[vi]
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = victim.Close(cctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	flipInBlk(t, cfgs[vi].DataDir, semantics.StreamName(topic, 0), marker)
	victim = qxdtest.StartNodeWith(t, cfgs[vi])
	waitInSync(ctx, t, r, 3)

	tcp, err := nats.Connect(victim.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tcp.Close)
	inProc, err := nats.Connect("", nats.InProcessServer(victim))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inProc.Close)
	for _, role := range []string{"follower", "leader"} {
		if role == "leader" {
			// A Kafka fetch reads the leader's copy, through the leader's node.
			leadOn(ctx, t, c.Conn(), r, cfgs[vi].Name)
		}
		checkThrough(ctx, t, role, cfgs[vi].Name, topic, seq, want, tcp, inProc)
	}
}

// checkThrough checks GetIntact of sequence seq, whose copy on node victim
// (playing role) is damaged, through a TCP and an in-process connection to that
// node: each call returns want, the batch as acknowledged.
func checkThrough(ctx context.Context, t *testing.T, role, victim, topic string, seq uint64, want []byte, tcp, inProc *nats.Conn) {
	t.Helper()
	for _, conn := range []struct {
		how string
		nc  *nats.Conn
	}{{"tcp", tcp}, {"in process", inProc}} {
		rd := partition.NewReader(conn.nc, topic, 0, true)
		name := fmt.Sprintf("%s %s, %s", role, victim, conn.how)
		// The damage took, and the victim answers direct gets: its copy of the batch
		// is served damaged or not at all, which direct gets through it see.
		if !seesDamage(ctx, t, rd, seq) {
			t.Fatalf("%s: no direct get through node %s returned a damaged copy of sequence %d: the damage did not take", name, victim, seq)
		}
		// Direct gets through the victim are not all answered by the victim's own
		// replica: nats-server spreads a client's request over the queue group's
		// local subscriber and each other server holding one.
		const tries = 300
		if bad := damagedAnswers(ctx, rd, seq, tries); bad > tries*2/3 {
			t.Fatalf("%s: %d of %d direct gets through node %s returned its damaged copy, want about a third", name, bad, tries, victim)
		} else {
			t.Logf("%s: %d of %d direct gets through node %s returned its damaged copy", name, bad, tries, victim)
		}
		for call := range 10 {
			m, err := rd.GetIntact(ctx, seq, 3)
			if err != nil {
				t.Fatalf("%s: GetIntact(%d) through node %s, call %d: %v", name, seq, victim, call+1, err)
			}
			if !bytes.Equal(m.Data, want) {
				recs, err := semantics.DecodeRecords(nil, m.Data, topic, 0)
				t.Fatalf("%s: GetIntact(%d) through node %s returned %d records (%v), not the batch acknowledged", name, seq, victim, len(recs), err)
			}
		}
	}
}

// leadOn moves the partition's leadership to node, through nc, and waits until
// node leads it.
func leadOn(ctx context.Context, t *testing.T, nc *nats.Conn, r *partition.Reader, node string) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": node}})
	var last string
	for range 30 {
		st, err := r.StreamInfo(ctx)
		if err == nil && st.Leader == node {
			return
		}
		last = fmt.Sprintf("leader %q (%v)", st.Leader, err)
		if _, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+r.Stream, req); err != nil {
			last += fmt.Sprintf(", step down: %v", err)
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("node %s does not lead %s: %s", node, r.Stream, last)
}

// seesDamage reports whether a direct get of seq through rd returns a copy that
// fails the batch checks or no copy within 30 seconds: a follower answers direct
// gets some seconds after it has caught up.
func seesDamage(ctx context.Context, t *testing.T, rd *partition.Reader, seq uint64) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for ; ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		if damagedAnswers(ctx, rd, seq, 1) > 0 {
			return true
		}
	}
	return false
}

// damagedAnswers counts the direct gets of seq through rd, of n, that return a
// copy failing the batch checks or no copy.
func damagedAnswers(ctx context.Context, rd *partition.Reader, seq uint64, n int) int {
	bad := 0
	for range n {
		m, err := rd.GetFor(ctx, seq, semantics.StreamSubject(rd.Topic, rd.P))
		if err != nil || m.Seq != seq {
			bad++
		} else if _, err := semantics.ParseBatchHeader(m.Data); err != nil {
			bad++
		}
	}
	return bad
}

// flipInBlk flips one bit inside marker in the block files of stream under the
// node data dir dir; the node must be down.
func flipInBlk(t *testing.T, dir, stream string, marker []byte) {
	t.Helper()
	blks, err := filepath.Glob(filepath.Join(dir, "jetstream", "$G", "streams", stream, "msgs", "*.blk"))
	if err != nil || len(blks) == 0 {
		t.Fatalf("no block files of %s in %s (%v)", stream, dir, err)
	}
	for _, path := range blks {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(b, marker)
		if at < 0 {
			continue
		}
		b[at+len(marker)/2] ^= 0x08
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no block file of %s holds the marker", stream)
}

// waitInSync waits until the partition's leader counts n replicas in sync.
func waitInSync(ctx context.Context, t *testing.T, r *partition.Reader, n int) {
	t.Helper()
	var last string
	for ctx.Err() == nil {
		st, err := r.StreamInfo(ctx)
		if err == nil && st.Leader != "" && len(st.InSync) == n {
			return
		}
		b, _ := json.Marshal(st)
		last = fmt.Sprintf("%s (%v)", b, err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the partition's replicas are not all in sync: %s", last)
}
