package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// holdingBackend holds every Metadata answer for as long as a backend awaiting a
// silent leader's successor may (here far longer), unless the client sends
// another request behind it on the connection.
type holdingBackend struct {
	noBackend
	hold time.Duration
}

func (b holdingBackend) Cluster(ctx context.Context, topics []string) (Cluster, error) {
	select {
	case <-RequestBehind(ctx):
	case <-time.After(b.hold):
	case <-ctx.Done():
	}
	return Cluster{ClusterID: "held", ControllerID: -1}, nil
}

// A Metadata answer held on a connection is given as soon as the client sends
// another request on that connection: answers go in request order, so the hold
// would otherwise hold the request behind it too (librdkafka's produce requests
// share the connection of its Metadata requests).
func TestMetadataHoldEndsWithRequestBehind(t *testing.T) {
	t.Parallel()
	const hold = 20 * time.Second
	l, err := Listen(Config{Listen: "127.0.0.1:0", Backend: holdingBackend{hold: hold}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	rc := dialRaw(t, l, 2*hold)
	send := rc.send
	answer := func() int32 { corr, _ := rc.answer(); return corr }

	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	send(1, md)
	time.Sleep(200 * time.Millisecond) // the answer is held by now
	behind := time.Now()
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(0)
	send(2, av)
	if corr := answer(); corr != 1 {
		t.Fatalf("first answer for request %d, want the Metadata's (1)", corr)
	}
	if d := time.Since(behind); d > hold/4 {
		t.Errorf("the held Metadata answer came %v after a request behind it, want at once (hold %v)", d.Round(time.Millisecond), hold)
	}
	if corr := answer(); corr != 2 {
		t.Fatalf("second answer for request %d, want the ApiVersions' (2)", corr)
	}
}

// slowCoordinatorBackend answers FindCoordinator only once release is closed,
// and Metadata with the cluster id view holds when it is read.
type slowCoordinatorBackend struct {
	noBackend
	release chan struct{}
	view    *atomic.Value
}

func (b slowCoordinatorBackend) Coordinator(ctx context.Context, group string) (Broker, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return Broker{ID: 1, Host: "127.0.0.1", Port: 9}, nil
}

func (b slowCoordinatorBackend) Cluster(ctx context.Context, topics []string) (Cluster, error) {
	return Cluster{ClusterID: b.view.Load().(string), ControllerID: -1}, nil
}

// A Metadata answer that goes out behind a slow answer on its connection is
// read when that answer is ready, not when the request arrived: read on
// arrival, it named the leaders of seconds before (behind a FindCoordinator
// waiting for a lost coordinator), after the client had heard of their
// successors, and librdkafka went back to a lost leader for good.
func TestMetadataReadAfterAnswersAhead(t *testing.T) {
	t.Parallel()
	view := &atomic.Value{}
	view.Store("before")
	b := slowCoordinatorBackend{release: make(chan struct{}), view: view}
	l, err := Listen(Config{Listen: "127.0.0.1:0", Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	rc := dialRaw(t, l, 20*time.Second)
	send, answer := rc.send, rc.answer

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(1)
	fc.CoordinatorKey = "g"
	send(1, fc)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	send(2, md)
	time.Sleep(200 * time.Millisecond) // both are read by now
	view.Store("after")
	close(b.release)
	if corr, _ := answer(); corr != 1 {
		t.Fatalf("first answer for request %d, want the FindCoordinator's (1)", corr)
	}
	corr, body := answer()
	if corr != 2 {
		t.Fatalf("second answer for request %d, want the Metadata's (2)", corr)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(4)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if got := kmsg.StringPtr(""); resp.ClusterID == nil || *resp.ClusterID != "after" {
		if resp.ClusterID != nil {
			got = resp.ClusterID
		}
		t.Errorf("the Metadata answer behind the FindCoordinator's gave the view %q (when it arrived), want %q (when the answer ahead was ready)", *got, "after")
	}
}

// rawConn is a Kafka connection whose requests are framed and answers read by
// hand (request header v1, client id "t": no request these tests send is
// flexible), for tests of the order of a connection's answers.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialRaw connects to l for within, closed at the test's end.
func dialRaw(t *testing.T, l *Listener, within time.Duration) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(within))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(corr int32, req kmsg.Request) {
	rc.t.Helper()
	body := req.AppendTo(nil)
	hdr := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(req.GetVersion()))
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(corr))
	hdr = append(hdr, 0, 1, 't')
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(hdr)+len(body)))
	if _, err := rc.c.Write(append(append(frame, hdr...), body...)); err != nil {
		rc.t.Fatal(err)
	}
}

// answer reads the next answer: its correlation id and what follows it.
func (rc *rawConn) answer() (int32, []byte) {
	rc.t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(rc.r, size[:]); err != nil {
		rc.t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rc.r, buf); err != nil {
		rc.t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(buf)), buf[4:]
}
