package qxd_test

import (
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestClientLeavesSilentNode connects a client to a node of a cluster through a
// TCP relay, then freezes the relay: the node neither answers nor closes, as a
// paused (SIGSTOPped) node or a silent network cut looks to its clients. The
// client must notice within its pings' bound (a ping every second, two
// outstanding by default: gone after 2–3 s) and continue through another node.
// With pings every 10 s, three outstanding, it was still on the silent node after
// 8 s (nats.go gives up after up to 40 s then); with pings every 2 s, two
// outstanding, it left after 4–6 s.
func TestClientLeavesSilentNode(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	relay := startRelay(t, nodes[1].ClientURL()[len("nats://"):])
	urls := "nats://" + relay.addr() + "," + nodes[0].ClientURL() + "," + nodes[2].ClientURL()
	c := connectTo(ctx, t, urls, nodes[1])
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	relay.freeze()
	frozen := time.Now()
	bound := 4 * time.Second // the default pings' 3 s, and slack for a loaded machine
	for c.Conn().ConnectedServerName() == nodes[1].Name() || !c.Conn().IsConnected() {
		if time.Since(frozen) > bound {
			t.Fatalf("client still on the silent node %s %v after it went silent, want it gone within %v",
				nodes[1].Name(), time.Since(frozen).Round(time.Millisecond), bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("client moved to %s %v after its node went silent", c.Conn().ConnectedServerName(), time.Since(frozen).Round(time.Millisecond))
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping through the new node: %v", err)
	}
}
