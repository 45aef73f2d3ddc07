package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// raftTerms returns the term and observer mode of every RAFT group on ns: the meta
// group and qxd's streams.
func raftTerms(ns *natsserver.Server) map[string]natsserver.RaftzGroup {
	out := map[string]natsserver.RaftzGroup{}
	for _, acc := range []string{"", natsserver.DEFAULT_GLOBAL_ACCOUNT} {
		rz := ns.Raftz(&natsserver.RaftzOptions{AccountFilter: acc})
		if rz == nil {
			continue
		}
		for _, gs := range *rz {
			for name, g := range gs {
				out[name] = g
			}
		}
	}
	return out
}

// TestCutOffNodeHoldsRaftGroups leaves one node of three alone (the others stop)
// and checks that, once it counts itself cut off, none of its RAFT groups
// campaigns: their terms stay where they were while its leaders step down for
// their lost quorum and its followers' election timeouts (4–9 s) pass, so that at a heal none of them answers a leader with a higher term and
// makes it step down. Once the others are back its groups campaign again: every
// group has a leader and a partition takes a record.
func TestCutOffNodeHoldsRaftGroups(t *testing.T) {
	// Its own cluster, ports and log, nothing paused and no time bound but
	// the context's: it may wait out its 30 s beside other tests.
	t.Parallel()
	if testing.Short() {
		t.Skip("waits out election timeouts; skipped with -short")
	}
	cfgs := qxdtest.ClusterConfigs(t, 3)
	var logs logLines
	cfgs[0].Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.ConnectCluster(t, nodes)
	qxdtest.CreateTopic(t, c, "held", qxd.TopicConfig{Partitions: 3, Replicas: 3})

	ctx := qxdtest.Context(t, 3*time.Minute)
	for _, n := range nodes[1:] {
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const cutOff = "node is cut off from its cluster: fewer than a majority of the nodes answer; sending its clients to other nodes and not coordinating groups"
	for logs.find(t, cutOff) == nil {
		if ctx.Err() != nil {
			t.Fatal("the node left alone did not count itself cut off")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ns := nodes[0].NATSServer()
	before := raftTerms(ns)
	if len(before) < 4 {
		t.Fatalf("%d RAFT groups on the node, want the meta group and qxd's streams: %v", len(before), before)
	}
	// A leader that lost its quorum steps down within 20 s (RAFT's quorum
	// check), and a follower campaigns 4–9 s after it last heard its leader.
	time.Sleep(30 * time.Second)
	after := raftTerms(ns)
	for name, b := range before {
		a, ok := after[name]
		if !ok || name == "_meta_" { // the meta group is not held (isolation_raft.go)
			continue
		}
		t.Logf("group %s: %s at term %d, then %s at term %d (observer %v)", name, b.State, b.Term, a.State, a.Term, a.Observer)
		if a.Term != b.Term {
			t.Errorf("group %s campaigned while its node was cut off: term %d, then %d (state %s, observer %v)", name, b.Term, a.Term, a.State, a.Observer)
		}
	}

	// The others come back: the groups campaign again and the topic takes records.
	for i := 1; i < len(cfgs); i++ {
		cfgs[i].Logger = nil
		n, err := server.Start(ctx, cfgs[i])
		if err != nil {
			t.Fatalf("start %s again: %v", cfgs[i].Name, err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Close(cctx)
		})
	}
	p := qxdtest.NewProducer(t, qxdtest.Connect(t, nodes[0]))
	for {
		why := ""
		for name, g := range raftTerms(ns) {
			if g.Observer {
				why = fmt.Sprintf("group %s is still an observer", name)
			}
		}
		if why == "" {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := p.ProduceSync(pctx, &qxd.Record{Topic: "held", Value: []byte("back")})
			cancel()
			if err == nil {
				break
			}
			why = err.Error()
		}
		if ctx.Err() != nil {
			t.Fatalf("the cluster does not serve again after the other nodes came back: %s", why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
