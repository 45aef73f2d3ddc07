package qxd_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// relay passes TCP connections through to a node, and fails them as a network
// does:
//
//   - silence drops what either side sends from then on, as a connection whose
//     far end has gone loses what is written to it before the writer notices;
//     cut then closes the connections;
//   - freeze stops passing anything on, and reading, without closing anything,
//     as a paused (SIGSTOPped) node or a silent network cut looks to its peers;
//     thaw then closes the connections and passes new ones;
//   - hold makes the connections open at that moment a dead link: what their
//     clients send is kept, in order, and nothing reaches them; release then
//     delivers what was kept to the node, as a link that comes back delivers
//     what it had buffered (a cut-off node's route after the heal);
//   - lag delays what the node sends, keeping its order;
//   - silenceAt silences the relay when the client sends a message on a given
//     subject: before passing it on (the request is lost), or after (only its
//     answer is lost: the relay is deaf from then on, passing on what the client
//     sends and dropping what the node sends).
type relay struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	done chan struct{} // closed at the test's end

	mu     sync.Mutex
	silent bool
	deaf   bool // drops what the node sends only
	frozen bool
	// at, if not nil, is the subject whose message silences the relay
	// (silenceAt); atPassed passes that message on first.
	at       []byte
	atPassed bool
	lagged   atomic.Int64 // ns (lag)
	conns    []*relayConn
	held     []*relayConn
}

// relayConn is one client's connection (in) and the relay's to the node (out).
type relayConn struct {
	in, out  net.Conn
	mu       sync.Mutex
	holding  bool
	buf      []byte // what the client sent while held
	released chan struct{}
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{l: l, target: target, done: make(chan struct{})}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		l.Close()
		close(r.done)
		r.release()
		r.cut()
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.l.Addr().String() }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			in.Close()
			continue
		}
		c := &relayConn{in: in, out: out, released: make(chan struct{})}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.toNode(c)
		go r.toClient(c)
	}
}

// toNode copies the client's bytes to the node: dropped while silent, kept
// while held. Once the client is gone, what was kept is delivered at the
// release.
func (r *relay) toNode(c *relayConn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.in.Read(buf)
		r.mu.Lock()
		if r.at != nil && bytes.Contains(buf[:n], r.at) {
			r.at = nil
			if r.atPassed {
				r.deaf = true
			} else {
				r.silent = true
			}
		}
		silent, frozen := r.silent, r.frozen
		r.mu.Unlock()
		if frozen && n > 0 {
			<-r.done // silent until the test ends
			return
		}
		c.mu.Lock()
		if c.holding {
			c.buf = append(c.buf, buf[:n]...)
			n = 0
		}
		holding := c.holding
		c.mu.Unlock()
		if n > 0 && !silent {
			if _, werr := c.out.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if holding {
				<-c.released
			}
			c.out.Close()
			return
		}
	}
}

// toClient copies the node's bytes to the client, dropping them while silent
// or held, each chunk lag after it came (in order).
func (r *relay) toClient(c *relayConn) {
	defer r.wg.Done()
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 1024)
	written := make(chan struct{})
	go func() {
		defer close(written)
		for ch := range q {
			time.Sleep(time.Until(ch.due))
			r.mu.Lock()
			frozen := r.frozen
			r.mu.Unlock()
			if frozen {
				continue
			}
			if _, err := c.in.Write(ch.b); err != nil {
				for range q { // until toClient ends
				}
				return
			}
		}
	}()
	defer func() {
		close(q)
		<-written
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.out.Read(buf)
		r.mu.Lock()
		silent, frozen := r.silent || r.deaf, r.frozen
		r.mu.Unlock()
		if frozen && n > 0 {
			<-r.done
			return
		}
		c.mu.Lock()
		holding := c.holding
		c.mu.Unlock()
		if n > 0 && !silent && !holding {
			q <- chunk{b: bytes.Clone(buf[:n]), due: time.Now().Add(time.Duration(r.lagged.Load()))}
		}
		if err != nil {
			c.in.Close()
			return
		}
	}
}

// lag delays what the node sends from now on by d, keeping its order, as a slow
// link (or a loaded machine) does; what the client sends goes at once.
func (r *relay) lag(d time.Duration) { r.lagged.Store(int64(d)) }

func (r *relay) silence() {
	r.mu.Lock()
	r.silent = true
	r.mu.Unlock()
}

// silenceAt silences the relay once the client sends a message on subject:
// before passing that message on, or, with passed, after (see relay).
func (r *relay) silenceAt(subject string, passed bool) {
	r.mu.Lock()
	r.at, r.atPassed = []byte(" "+subject+" "), passed
	r.mu.Unlock()
}

func (r *relay) freeze() {
	r.mu.Lock()
	r.frozen = true
	r.mu.Unlock()
}

// thaw ends a freeze as a cut heals after its peers gave up on their
// connections: it closes them (what was sent meanwhile is lost), and the
// connections made from then on pass again.
func (r *relay) thaw() {
	r.mu.Lock()
	r.frozen = false
	r.mu.Unlock()
	r.cut()
}

// cut closes every connection the relay holds open: a cut that heals by closing.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.in.Close()
		c.out.Close()
	}
	r.conns = nil
}

func (r *relay) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.mu.Lock()
		c.holding = true
		c.mu.Unlock()
		r.held = append(r.held, c)
	}
}

// release delivers what the held connections kept, in order, to the node.
func (r *relay) release() {
	r.mu.Lock()
	held := r.held
	r.held = nil
	r.mu.Unlock()
	for _, c := range held {
		c.mu.Lock()
		if c.holding {
			_, _ = c.out.Write(c.buf)
			c.buf, c.holding = nil, false
			close(c.released)
		}
		c.mu.Unlock()
	}
}

// connectTo connects a client to the servers of urls, in order (the first is
// node on, the others where the client may move to), and checks that it is on
// on. It is closed at the test's end.
func connectTo(ctx context.Context, t *testing.T, urls string, on *server.Node, opts ...qxd.ClientOption) *qxd.Client {
	t.Helper()
	c, err := qxd.Connect(ctx, urls, append([]qxd.ClientOption{qxd.NATSOptions(nats.DontRandomize())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if got := c.Conn().ConnectedServerName(); got != on.Name() {
		t.Fatalf("client connected to %s, want %s", got, on.Name())
	}
	return c
}

// relayedClient starts a node and a relay to it, and connects a client to the
// relay first, then to the node itself, for the client to move to. The client
// is closed at the test's end.
func relayedClient(ctx context.Context, t *testing.T) (*relay, *qxd.Client) {
	t.Helper()
	node := qxdtest.StartNode(t)
	r := startRelay(t, strings.TrimPrefix(node.ClientURL(), "nats://"))
	c, err := qxd.Connect(ctx, "nats://"+r.addr()+","+node.ClientURL(), qxd.NATSOptions(nats.DontRandomize()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if got := c.Conn().ConnectedAddr(); got != r.addr() {
		t.Fatalf("client connected to %s, want the relay %s", got, r.addr())
	}
	return r, c
}

// routesPastRelays lists the routes of n that pass no relay of relays: their
// far end is neither a relay's listener (n dialled it) nor a relay's own end of
// a connection it made to n.
func routesPastRelays(t *testing.T, n *server.Node, relays []*relay) []*natsserver.RouteInfo {
	t.Helper()
	ends := map[string]bool{}
	for _, r := range relays {
		ends[r.addr()] = true
		r.mu.Lock()
		for _, c := range r.conns {
			ends[c.in.LocalAddr().String()] = true
			ends[c.out.LocalAddr().String()] = true
		}
		r.mu.Unlock()
	}
	rz, err := n.NATSServer().Routez(&natsserver.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var past []*natsserver.RouteInfo
	for _, r := range rz.Routes {
		if !ends[net.JoinHostPort(r.IP, strconv.Itoa(r.Port))] {
			past = append(past, r)
		}
	}
	return past
}
