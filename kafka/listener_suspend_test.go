package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// apiVersionsRoundTrip sends an ApiVersions v0 request on c and reads its answer.
func apiVersionsRoundTrip(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// size, api key 18, version 0, correlation id 7, client id "t"
	req := []byte{0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 7, 0, 1, 't'}
	if _, err := c.Write(req); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return err
	}
	_, err := io.ReadFull(r, make([]byte, binary.BigEndian.Uint32(size[:])))
	return err
}

// A suspended listener refuses connections and has closed those it had, so that
// Kafka clients take it for a broker that is down; resumed, it serves on the same
// address again.
func TestListenerSuspend(t *testing.T) {
	t.Parallel()
	l, err := Listen(Config{Listen: "127.0.0.1:0", Backend: noBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	addr := l.Addr().String()
	old, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := apiVersionsRoundTrip(old); err != nil {
		t.Fatalf("before Suspend: %v", err)
	}

	l.Suspend()
	l.Suspend() // idempotent
	if !l.Suspended() {
		t.Fatal("Suspended() = false after Suspend")
	}
	if err := apiVersionsRoundTrip(old); err == nil {
		t.Error("a connection open before Suspend is still served")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("a suspended listener took a connection")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a suspended listener: %v, want connection refused", err)
	}

	if err := l.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := l.Resume(); err != nil { // idempotent
		t.Fatal(err)
	}
	if l.Suspended() || l.Addr().String() != addr {
		t.Fatalf("after Resume: suspended %v, address %s, want serving on %s", l.Suspended(), l.Addr(), addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial after Resume: %v", err)
	}
	defer c.Close()
	if err := apiVersionsRoundTrip(c); err != nil {
		t.Fatalf("after Resume: %v", err)
	}

	// Close after a Suspend ends it all; Resume then does nothing.
	l.Suspend()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Resume(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("Resume after Close listens again")
	}
}
