package kafka

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// noBackend answers nothing: these tests send no request that reaches it.
type noBackend struct{ Backend }

// A connection that sends nothing, or stops half-way through a request, is closed
// after its timeout, so a stuck client holds nothing for long.
func TestListenerClosesStuckConnections(t *testing.T) {
	t.Parallel()
	l, err := Listen(Config{Listen: "127.0.0.1:0", Backend: noBackend{}, IdleTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	for name, send := range map[string][]byte{"idle": nil, "half a size": {0, 0}, "half a request": {0, 0, 0, 20, 0, 18}} {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(send); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := bufio.NewReader(c).ReadByte(); err != io.EOF {
			t.Errorf("%s: read %v, want the connection closed", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: closed after %v", name, d)
		}
		c.Close()
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
