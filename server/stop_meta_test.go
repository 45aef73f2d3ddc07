package server_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// TestGracefulStopHandsMetaLeadershipOff stops, on purpose, the node that leads
// JetStream's meta group: it must step down from it before lame-duck mode, where
// nats-server's own step-down (transferRaftLeaders) makes the node wait a whole
// second before it shuts its JetStream down and sends its clients away.
func TestGracefulStopHandsMetaLeadershipOff(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfgs[i].NATSDebug = true
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 60*time.Second)
	var leader *server.Node
	for leader == nil {
		for _, n := range nodes {
			if n.LeadsMeta() {
				leader = n
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no node leads the meta group")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := leader.Close(ctx); err != nil {
		t.Fatalf("stop %s: %v", leader.Name(), err)
	}
	t.Logf("%s stopped in %v", leader.Name(), time.Since(start).Round(time.Millisecond))
	inLameDuck := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "node="+leader.Name()+" ") {
			continue
		}
		if strings.Contains(line, "Entering lame duck mode") {
			inLameDuck = true
		}
		if inLameDuck && strings.Contains(line, "_meta_] Being asked to stepdown") {
			t.Fatalf("%s still led the meta group in lame-duck mode:\n%s", leader.Name(), line)
		}
	}
	if !inLameDuck {
		t.Fatalf("%s never entered lame-duck mode", leader.Name())
	}
}
