package qxd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestPing checks Client.Ping against a qxd node and against a plain nats-server,
// where it fails by its deadline with ErrUnavailable naming the cause, instead of
// admin requests retrying for their 30 s.
func TestPing(t *testing.T) {
	t.Parallel()
	c := qxdtest.Connect(t, qxdtest.StartNode(t))
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("ping a qxd node: %v", err)
	}

	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	plain, err := qxd.Connect(t.Context(), ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	err = plain.Ping(ctx)
	if !errors.Is(err, semantics.ErrUnavailable) || !strings.Contains(err.Error(), "has no JetStream") || !strings.Contains(err.Error(), ns.ClientURL()) {
		t.Errorf("ping a plain nats-server: err = %v, want ErrUnavailable naming the server and that it has no JetStream", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("ping with a 1s deadline took %s", took)
	}
}

// TestPingOverASlowLink pings a qxd node whose answers take longer than one
// question's wait (2s), as a loaded machine's can: Ping takes the late answer
// rather than give up every question at its wait and report that JetStream did
// not answer. The node's answers reach the client through a TCP proxy that
// holds every byte from the node for a while once the client is connected.
func TestPingOverASlowLink(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	link := newSlowLink(t, strings.TrimPrefix(n.ClientURL(), "nats://"))
	c, err := qxd.Connect(t.Context(), "nats://"+link.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("ping over the link before it slows: %v", err)
	}
	link.delay.Store(int64(2500 * time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping with answers 2.5s late: %v", err)
	}
	t.Logf("ping with answers 2.5s late took %s", time.Since(start).Round(time.Millisecond))
}

// slowLink is a TCP proxy to a server that delays what the server sends by
// delay (nanoseconds), keeping its order; what the client sends goes at once.
type slowLink struct {
	addr  string
	delay atomic.Int64
}

func newSlowLink(t *testing.T, server string) *slowLink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowLink{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cc, err := l.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", server)
			if err != nil {
				cc.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, cc, sc)
			mu.Unlock()
			wg.Add(2)
			go func() { // client to server, at once
				defer wg.Done()
				_, _ = io.Copy(sc, cc)
				sc.Close()
			}()
			go func() { // server to client, each chunk delay after it came
				defer wg.Done()
				s.relay(cc, sc)
			}()
		}
	}()
	return s
}

func (s *slowLink) relay(to, from net.Conn) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := to.Write(c.b); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		k, err := from.Read(buf)
		if k > 0 {
			q <- chunk{b: bytes.Clone(buf[:k]), due: time.Now().Add(time.Duration(s.delay.Load()))}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
	to.Close()
}
