package qxd_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// holdingRelay passes TCP connections through to a node. hold makes the
// connections open at that moment a dead link: what their clients send is kept, in
// order, and nothing reaches them; release then delivers what was kept to the node,
// as a link that comes back delivers what it had buffered (a cut-off node's route
// after the heal).
type holdingRelay struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	held   []*heldConn
	conns  []*heldConn
	wg     sync.WaitGroup
}

type heldConn struct {
	in, out  net.Conn
	mu       sync.Mutex
	holding  bool
	buf      []byte
	released chan struct{}
}

func startHoldingRelay(t *testing.T, target string) *holdingRelay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &holdingRelay{l: l, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		l.Close()
		r.release()
		r.mu.Lock()
		for _, c := range r.conns {
			c.in.Close()
			c.out.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *holdingRelay) addr() string { return r.l.Addr().String() }

func (r *holdingRelay) accept() {
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
		c := &heldConn{in: in, out: out, released: make(chan struct{})}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.toNode(c)
		go r.toClient(c)
	}
}

// toNode copies the client's bytes to the node, keeping them while held; once the
// client is gone, what it kept is delivered at the release.
func (r *holdingRelay) toNode(c *heldConn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.in.Read(buf)
		c.mu.Lock()
		if c.holding {
			c.buf = append(c.buf, buf[:n]...)
			n = 0
		}
		holding := c.holding
		c.mu.Unlock()
		if n > 0 {
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

// toClient copies the node's bytes to the client, dropping them while held.
func (r *holdingRelay) toClient(c *heldConn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.out.Read(buf)
		c.mu.Lock()
		holding := c.holding
		c.mu.Unlock()
		if n > 0 && !holding {
			if _, werr := c.in.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			c.in.Close()
			return
		}
	}
}

func (r *holdingRelay) hold() {
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
func (r *holdingRelay) release() {
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

// TestProducerFencesLateBatchesAfterTimeout: a record whose delivery timed out
// while its requests sat in a dead link (outcome unknown) may still be stored
// when the link delivers them after all, but never behind a record of its key
// produced after the timeout. After such a timeout the producer moves to the
// next epoch of its producer id, whose older epoch the writer then refuses, as
// Kafka's producer and broker do; under a new producer id the writer took the
// late requests and stored the record behind the newer one.
func TestProducerFencesLateBatchesAfterTimeout(t *testing.T) {
	t.Parallel()
	node := qxdtest.StartNode(t)
	r := startHoldingRelay(t, strings.TrimPrefix(node.ClientURL(), "nats://"))
	ctx := qxdtest.Context(t, 60*time.Second)
	// The relay first, then the node itself to move to.
	c, err := qxd.Connect(ctx, "nats://"+r.addr()+","+node.ClientURL(), qxd.NATSOptions(nats.DontRandomize()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const topic = "late"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	if got := c.Conn().ConnectedAddr(); got != r.addr() {
		t.Fatalf("client connected to %s, want the relay %s", got, r.addr())
	}
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.RequestTimeout(150*time.Millisecond), qxd.DeliveryTimeout(500*time.Millisecond))
	key := []byte("k")
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: key, Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}

	r.hold()
	err = p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: key, Value: []byte("timed-out")})
	if !errors.Is(err, qxd.ErrRecordTimeout) {
		t.Fatalf("record produced into the dead link: %v, want a delivery timeout", err)
	}
	// The client leaves the silent link for the node itself.
	for c.Conn().ConnectedAddr() == r.addr() || !c.Conn().IsConnected() {
		if ctx.Err() != nil {
			t.Fatal("the client did not leave the silent link")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: key, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	r.release()
	// The writer has the late requests in well under a second.
	time.Sleep(time.Second)

	d, err := c.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw := d.Partitions[0].HighWatermark
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for int64(len(got)) < hw {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			got = append(got, string(rec.Value))
		}
	}
	t.Logf("stored, in order: %v", got)
	after := -1
	for i, v := range got {
		switch v {
		case "after":
			after = i
		case "timed-out":
			if after >= 0 {
				t.Errorf("the record that timed out was stored after a later record of its key: %v", got)
			}
		}
	}
	if after < 0 {
		t.Errorf("the record produced after the timeout is not stored: %v", got)
	}
}
