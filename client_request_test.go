package qxd_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// relay passes TCP connections through to a node. Once silenced it drops what
// either side sends, as a connection whose far end has gone loses what is written to
// it before the writer notices; cut then closes its connections.
type relay struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	silent bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{l: l, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		l.Close()
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
		r.mu.Lock()
		r.conns = append(r.conns, in, out)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(out, in)
		go r.pipe(in, out)
	}
}

// pipe copies src to dst until src ends, dropping what comes while silent.
func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		r.mu.Lock()
		silent := r.silent
		r.mu.Unlock()
		if n > 0 && !silent {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

func (r *relay) silence() {
	r.mu.Lock()
	r.silent = true
	r.mu.Unlock()
}

func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// TestAdminReadAfterConnectionLoss: an admin read written to a connection just
// before it is lost (its node stopped, and the client had not noticed yet) is
// asked again once the client has reconnected to another node, and answered then,
// rather than waiting out its whole timeout for an answer that cannot come.
func TestAdminReadAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	node := qxdtest.StartNode(t)
	r := startRelay(t, strings.TrimPrefix(node.ClientURL(), "nats://"))
	ctx := qxdtest.Context(t, 60*time.Second)
	// The relay first, then the node itself to fail over to.
	c, err := qxd.Connect(ctx, "nats://"+r.addr()+","+node.ClientURL(), qxd.NATSOptions(nats.DontRandomize()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qxdtest.CreateTopic(t, c, "lost", qxd.TopicConfig{})
	if got := c.Conn().ConnectedAddr(); got != r.addr() {
		t.Fatalf("client connected to %s, want the relay %s", got, r.addr())
	}

	r.silence()
	time.AfterFunc(time.Second, r.cut)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	md, err := c.Admin().Metadata(rctx)
	if err != nil {
		t.Fatalf("metadata asked just before the connection was lost: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
	if len(md.Topics) != 1 || c.Conn().ConnectedAddr() == r.addr() {
		t.Errorf("metadata %+v from %s", md, c.Conn().ConnectedAddr())
	}
}
