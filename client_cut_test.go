package qxd_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// TestClientLeavesCutOffNode cuts a node of a cluster of three off from its peers
// (its routes pass through TCP relays that are then frozen: neither closed nor
// answering, as a network cut looks) while a client stays connected to it, as its
// clients do through a cut between nodes. The node answers the client's pings, so
// the client cannot find the cut itself: the node must tell it to move once it
// doubts it reaches its cluster (no other node has answered it for a second), not
// only once it counts itself cut off (2.5 s): a client connected to a cut-off node
// should leave it about as soon as it leaves a paused one.
func TestClientLeavesCutOffNode(t *testing.T) {
	t.Parallel()
	const cutOff = "node is cut off from its cluster: fewer than a majority of the nodes answer; sending its clients to other nodes and not coordinating groups"
	ctx := qxdtest.Context(t, 90*time.Second)
	nodes, relays, logged := relayedCluster(ctx, t)

	c := connectTo(ctx, t, nodes[1].ClientURL(), nodes[1])
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The node learns of the others through its routes; let its client learn of
	// them too (NATS's INFO), so that it has somewhere to move to.
	for len(c.Conn().Servers()) < 3 {
		if ctx.Err() != nil {
			t.Fatalf("client knows the servers %v, want all three", c.Conn().Servers())
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, r := range relays {
		r.freeze()
	}
	cut := time.Now()
	for c.Conn().ConnectedServerName() == nodes[1].Name() || !c.Conn().IsConnected() {
		if time.Since(cut) > 20*time.Second {
			t.Fatalf("client still on the cut-off node %s %v after the cut; the node logged: %s", nodes[1].Name(), time.Since(cut).Round(time.Millisecond), logged.since(cut))
		}
		time.Sleep(10 * time.Millisecond)
	}
	moved := time.Now()
	counted := logged.wait(ctx, cutOff)
	if counted.IsZero() {
		t.Fatalf("node %s never counted itself cut off: the cut is not complete (a route bypasses the relays?)", nodes[1].Name())
	}
	t.Logf("client moved to %s %v after the cut; the node counted itself cut off %v after it",
		c.Conn().ConnectedServerName(), moved.Sub(cut).Round(time.Millisecond), counted.Sub(cut).Round(time.Millisecond))
	if !moved.Before(counted) {
		t.Fatalf("client moved %v after the cut, when its node had counted itself cut off (%v): want it gone while the node only doubts it reaches its cluster",
			moved.Sub(cut).Round(time.Millisecond), counted.Sub(cut).Round(time.Millisecond))
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping through the new node: %v", err)
	}
}

// relayedCluster starts a cluster of three whose node 2 has every route, to or
// from it, through a relay, and returns, once a majority has answered node
// 2, the nodes, the relays and what node 2 logs. A node may learn another's own cluster address from a third
// (NATS's route gossip) and route to it directly, past the relays: such a
// cluster is closed and another started, once; the test is skipped when that
// one is bypassed too.
func relayedCluster(ctx context.Context, t *testing.T, tune ...func(*server.Config)) ([]*server.Node, []*relay, *logTimes) {
	t.Helper()
	const armed = "a majority of the cluster answers this node: should it be cut off, it will send its clients to other nodes"
	for attempt := 1; ; attempt++ {
		cfgs := qxdtest.ClusterConfigs(t, 3)
		for i := range cfgs {
			for _, f := range tune {
				f(&cfgs[i])
			}
		}
		var relays []*relay
		relayTo := func(i int) string {
			r := startRelay(t, cfgs[i].ClusterListen)
			relays = append(relays, r)
			return "nats://" + r.addr()
		}
		via := []string{relayTo(0), relayTo(1), relayTo(2)}
		direct := append([]string(nil), cfgs[0].Peers...)
		cfgs[0].Peers = []string{direct[0], via[1], direct[2]}
		cfgs[1].Peers = []string{via[0], direct[1], via[2]}
		cfgs[2].Peers = []string{direct[0], via[1], direct[2]}
		logged := &logTimes{}
		cfgs[1].Logger = slog.New(logged)
		nodes := qxdtest.StartCluster(t, cfgs)
		// Closing the relayed routes first lets the nodes stop without waiting
		// for a quorum they cannot reach (cleanups run last first).
		t.Cleanup(func() {
			for _, r := range relays {
				r.cut()
			}
		})
		// The node sends its clients away only once a majority has answered
		// it; its routes are up by then.
		if logged.wait(ctx, armed).IsZero() {
			t.Fatalf("node %s never heard from a majority of its cluster", nodes[1].Name())
		}
		bypass := bypassingRoutes(t, nodes[1], relays)
		if bypass == "" {
			return nodes, relays, logged
		}
		if attempt == 2 {
			// Each attempt bypasses about half the time; more would make the
			// test slow (20 s an attempt with -race on a busy machine).
			t.Skipf("node %s routes past the relays in both clusters started: %s", nodes[1].Name(), bypass)
		}
		t.Logf("node %s routes past the relays (%s); starting another cluster", nodes[1].Name(), bypass)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = n.Close(cctx)
			})
		}
		wg.Wait()
	}
}

// bypassingRoutes lists the routes of n that pass no relay of relays
// (routesPastRelays), as "node at address".
func bypassingRoutes(t *testing.T, n *server.Node, relays []*relay) string {
	t.Helper()
	var bypass []string
	for _, r := range routesPastRelays(t, n, relays) {
		bypass = append(bypass, r.RemoteName+" at "+net.JoinHostPort(r.IP, strconv.Itoa(r.Port)))
	}
	return strings.Join(bypass, ", ")
}

// logTimes is a slog handler that records when each message was first logged.
type logTimes struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (h *logTimes) Enabled(context.Context, slog.Level) bool { return true }

func (h *logTimes) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at == nil {
		h.at = map[string]time.Time{}
	}
	if _, ok := h.at[r.Message]; !ok {
		h.at[r.Message] = time.Now()
	}
	return nil
}

func (h *logTimes) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logTimes) WithGroup(string) slog.Handler      { return h }

// since lists the messages first logged at or after from, with when.
func (h *logTimes) since(from time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for msg, at := range h.at {
		if !at.Before(from) {
			fmt.Fprintf(&b, "\n  +%v %s", at.Sub(from).Round(time.Millisecond), msg)
		}
	}
	return b.String()
}

// wait returns when msg was first logged, waiting for it until ctx ends (zero
// then).
func (h *logTimes) wait(ctx context.Context, msg string) time.Time {
	for {
		h.mu.Lock()
		at := h.at[msg]
		h.mu.Unlock()
		if !at.IsZero() || ctx.Err() != nil {
			return at
		}
		time.Sleep(10 * time.Millisecond)
	}
}
