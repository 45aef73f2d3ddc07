package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// coordBuckets are the buckets led together: the groups bucket, where the
// coordinators run, first.
var coordBuckets = []string{semantics.GroupsBucket, semantics.OffsetsBucket, semantics.TxnsBucket}

// bucketLeads returns the node leading each of coordBuckets' streams ("" while one
// has none or cannot be asked).
func bucketLeads(ctx context.Context, nc *nats.Conn) []string {
	js, _ := jetstream.New(nc)
	out := make([]string, len(coordBuckets))
	for i, b := range coordBuckets {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.Stream(sctx, semantics.KVStream(b))
		cancel()
		if err == nil && s.CachedInfo().Cluster != nil {
			out[i] = s.CachedInfo().Cluster.Leader
		}
	}
	return out
}

// waitReplicas waits until each of coordBuckets' streams has its three replicas
// (a new cluster raises its buckets' replicas once its nodes are up).
func waitReplicas(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, _ := jetstream.New(nc)
	for _, b := range coordBuckets {
		for began := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := js.Stream(sctx, semantics.KVStream(b))
			cancel()
			if err == nil && s.CachedInfo().Cluster != nil && len(s.CachedInfo().Cluster.Replicas) == 2 {
				break
			}
			if time.Since(began) > 30*time.Second {
				t.Fatalf("bucket %s: not on three nodes after 30 s", b)
			}
		}
	}
}

func together(leads []string) bool {
	for _, l := range leads {
		if l == "" || l != leads[0] {
			return false
		}
	}
	return true
}

// waitTogether waits up to d for the coordinators' buckets to be led from one
// node, and returns it.
func waitTogether(ctx context.Context, t *testing.T, nc *nats.Conn, d time.Duration, what string) string {
	t.Helper()
	began := time.Now()
	var leads []string
	for time.Since(began) < d {
		if leads = bucketLeads(ctx, nc); together(leads) {
			t.Logf("%s: buckets %v led by %s %v after", what, coordBuckets, leads[0], time.Since(began).Round(time.Millisecond))
			return leads[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: buckets %v led by %v %v after, not from one node", what, coordBuckets, leads, d)
	return ""
}

// The offsets and transactions buckets are led from the node that leads the
// groups bucket, where the coordinators run: moved away, or after the groups
// bucket moves, they are back with it within seconds, and while together nothing
// moves.
func TestCoordinatorBucketsLeadTogether(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 120*time.Second)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	nc := c.Conn()
	// A move asked for that a loaded machine does not answer in time is asked
	// for again after 2 s, then 4 s (followFirstWait, doubling): 6 s was missed
	// once in CI beside another run.
	const bound = 20 * time.Second
	waitReplicas(ctx, t, nc)

	g := waitTogether(ctx, t, nc, 15*time.Second, "after the start")
	other := func(not ...string) string {
		for _, n := range nodes {
			if !slices.Contains(not, n.Name()) {
				return n.Name()
			}
		}
		return ""
	}

	// The offsets and transactions buckets' leaderships stepped down, preferring
	// the two other nodes (once each: qxdtest.LeadStream would step them down
	// again as the follow takes them back).
	o := other(g)
	stepDown(t, nc, semantics.KVStream(semantics.OffsetsBucket), o)
	stepDown(t, nc, semantics.KVStream(semantics.TxnsBucket), other(g, o))
	if got := waitTogether(ctx, t, nc, bound, "after the offsets and transactions buckets moved away"); got != g {
		t.Fatalf("the buckets are led by %s together, want %s, which leads the groups bucket", got, g)
	}

	// The groups bucket's leadership moved: the others follow it.
	g2 := other(g)
	qxdtest.LeadStream(ctx, t, nc, semantics.KVStream(semantics.GroupsBucket), g2)
	if got := waitTogether(ctx, t, nc, bound, "after the groups bucket moved"); got != g2 {
		t.Fatalf("the buckets are led by %s together, want %s, which the groups bucket moved to", got, g2)
	}

	// Together, nothing moves.
	for began := time.Now(); time.Since(began) < 5*time.Second; time.Sleep(250 * time.Millisecond) {
		if leads := bucketLeads(ctx, nc); fmt.Sprint(leads) != fmt.Sprint([]string{g2, g2, g2}) {
			t.Fatalf("%v after the buckets were together on %s they are led by %v", time.Since(began).Round(time.Millisecond), g2, leads)
		}
	}
}

// stepDown steps stream's leader down once, preferring node.
func stepDown(t *testing.T, nc *nats.Conn, stream, node string) {
	t.Helper()
	req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, node)
	resp, err := nc.Request(semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, stream), req, 5*time.Second)
	if err != nil {
		t.Fatalf("step down %s: %v", stream, err)
	}
	var out struct {
		Success bool            `json:"success"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil || !out.Success {
		t.Fatalf("step down %s: %s", stream, resp.Data)
	}
}

// A node that stops while it leads the groups bucket and the buckets the
// coordinators write hands all of them to one node, with automatic leader
// placement off too (the node chooses the successor, not the follow loop).
func TestCoordinatorBucketsHandedOffTogether(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 120*time.Second)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].AutoLeaderRebalance = false
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	nc := qxdtest.Connect(t, nodes[1]).Conn()
	waitReplicas(ctx, t, nc)
	for _, b := range coordBuckets {
		qxdtest.LeadStream(ctx, t, nc, semantics.KVStream(b), nodes[0].Name())
	}
	if err := nodes[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	var leads []string
	for began := time.Now(); time.Since(began) < 10*time.Second; time.Sleep(100 * time.Millisecond) {
		leads = bucketLeads(ctx, nc)
		if !slices.Contains(leads, "") && !slices.Contains(leads, nodes[0].Name()) {
			break
		}
	}
	if !together(leads) {
		t.Fatalf("after %s stopped, buckets %v are led by %v, not from one node", nodes[0].Name(), coordBuckets, leads)
	}
	t.Logf("after %s stopped, buckets %v are led by %s", nodes[0].Name(), coordBuckets, leads[0])
}
