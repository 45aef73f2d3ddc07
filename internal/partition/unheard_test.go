package partition_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestUnheardFollower reads a three-replica partition's state from its leader
// while records are stored: no follower is listed as unheard, nor silent for
// half a second, while all answer,
// and a follower whose node stopped is, within a few seconds, while the leader
// goes on storing records. A consumer's read served by a follower its leader
// does not hear (one cut from the leader) delivers nothing more, and the read
// leaves it by this list.
func TestUnheardFollower(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "unheard"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	r := partition.NewReader(c.Conn(), topic, 0, false)
	produce := func() {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := p.ProduceSync(pctx, &qxd.Record{Topic: topic, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	var st partition.StreamState
	for i := range 40 {
		produce()
		var err error
		if st, err = r.StreamInfo(ctx); err != nil {
			t.Fatal(err)
		}
		if len(st.Unheard) > 0 {
			t.Fatalf("record %d: followers %v listed unheard while every node runs (leader %s, in sync %v)", i, st.Unheard, st.Leader, st.InSync)
		}
		// A read restarts when its follower has been silent for half a second
		// (and the read quiet for a second): no follower of a running cluster
		// storing records is.
		for f, d := range st.Silent {
			if d >= 500*time.Millisecond {
				t.Fatalf("record %d: follower %s silent for %v while every node runs", i, f, d)
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	follower := ""
	for _, n := range nodes {
		if n.Name() != st.Leader {
			follower = n.Name()
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if err := n.Close(cctx); err != nil {
				t.Logf("close %s: %v", n.Name(), err)
			}
			cancel()
			break
		}
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		produce()
		var err error
		st, err = r.StreamInfo(ctx)
		if err == nil && slices.Contains(st.Unheard, follower) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("node %s stopped: the leader's state does not list it unheard: %+v, %v", follower, st, err)
		}
	}
}
