package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
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
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * hold))
	send := func(corr int32, req kmsg.Request) {
		t.Helper()
		body := req.AppendTo(nil)
		hdr := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(req.GetVersion()))
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(corr))
		hdr = append(hdr, 0, 1, 't') // client id "t"; v4 Metadata and v0 ApiVersions use header v1
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(hdr)+len(body)))
		if _, err := c.Write(append(append(frame, hdr...), body...)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(c)
	answer := func() int32 {
		t.Helper()
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		return int32(binary.BigEndian.Uint32(buf))
	}

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
