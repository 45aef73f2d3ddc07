package qxd_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
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
	relay := startSilentRelay(t, nodes[1].ClientURL()[len("nats://"):])
	urls := "nats://" + relay.addr + "," + nodes[0].ClientURL() + "," + nodes[2].ClientURL()
	c, err := qxd.Connect(ctx, urls, qxd.NATSOptions(nats.DontRandomize()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if got := c.Conn().ConnectedServerName(); got != nodes[1].Name() {
		t.Fatalf("client connected to %s, want %s", got, nodes[1].Name())
	}
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

// silentRelay forwards TCP connections to a target until frozen; then it stops
// forwarding without closing anything.
type silentRelay struct {
	addr   string
	mu     sync.Mutex
	frozen chan struct{}
	done   chan struct{} // closed at the test's end
	conns  []net.Conn
}

func startSilentRelay(t *testing.T, target string) *silentRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &silentRelay{addr: ln.Addr().String(), frozen: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		close(r.done)
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.mu.Unlock()
			go r.pipe(out, in)
			go r.pipe(in, out)
		}
	}()
	return r
}

func (r *silentRelay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-r.frozen:
				<-r.done // silent until the test ends
				return
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *silentRelay) freeze() { close(r.frozen) }
