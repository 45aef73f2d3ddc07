package kafka_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// roundTrip sends req over a new connection to addr and reads its answer.
func roundTrip(t *testing.T, addr string, req kmsg.Request) kmsg.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return onConn(t, c, req)
}

// onConn sends req over the connection c and reads its answer.
func onConn(t *testing.T, c net.Conn, req kmsg.Request) kmsg.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, 42)); err != nil {
		t.Fatal(err)
	}
	body := readFrame(t, c)
	if id := int32(binary.BigEndian.Uint32(body)); id != 42 {
		t.Fatalf("correlation id %d, want 42", id)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		body = body[1:] // response header tags (none)
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("read %s v%d answer: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

func readFrame(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return b
}

// Every version of ApiVersions is answered, and what it advertises is exactly the
// set of APIs the listener answers.
func TestApiVersions(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	var first []kmsg.ApiVersionsResponseApiKey
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
		resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions v%d: error %d", v, resp.ErrorCode)
		}
		if first == nil {
			first = resp.ApiKeys
		} else if !slices.EqualFunc(first, resp.ApiKeys, func(a, b kmsg.ApiVersionsResponseApiKey) bool {
			return a.ApiKey == b.ApiKey && a.MinVersion == b.MinVersion && a.MaxVersion == b.MaxVersion
		}) {
			t.Fatalf("ApiVersions v%d lists %v, v0 listed %v", v, resp.ApiKeys, first)
		}
	}
	// Every advertised version of every API is answered (a request with default
	// fields; the answer must decode as that version).
	for _, k := range first {
		for v := k.MinVersion; v <= k.MaxVersion; v++ {
			if k.ApiKey == kmsg.Produce.Int16() || k.ApiKey == kmsg.JoinGroup.Int16() || k.ApiKey == kmsg.SyncGroup.Int16() {
				continue // need real content; covered by the client tests
			}
			req := kmsg.RequestForKey(k.ApiKey)
			req.SetVersion(v)
			roundTrip(t, n.KafkaAddr(), req)
		}
	}
	for _, want := range []int16{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 16, 18, 22} {
		if !slices.ContainsFunc(first, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == want }) {
			t.Errorf("ApiVersions does not list key %d (%s)", want, kmsg.NameForKey(want))
		}
	}
}

// A supported feature's minimum version is 0 only for ApiVersions v4 and up:
// the Java client before 3.9 asks with v3 and fails on a minimum below 1
// (KAFKA-17011).
func TestApiVersionsFeatureMinimum(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	for v, want := range map[int16]int16{3: 1, 4: 0, 5: 0} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
		resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.ApiVersionsResponse)
		if len(resp.SupportedFeatures) == 0 {
			t.Fatalf("ApiVersions v%d names no supported feature", v)
		}
		for _, f := range resp.SupportedFeatures {
			if f.MinVersion != want || f.MaxVersion < 1 {
				t.Errorf("ApiVersions v%d: feature %s supported at %d..%d, want the minimum %d", v, f.Name, f.MinVersion, f.MaxVersion, want)
			}
		}
	}
}

// An ApiVersions of a version the listener does not know gets Kafka's v0 answer
// with UNSUPPORTED_VERSION and the versions it has.
func TestApiVersionsUnsupportedVersion(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	c, err := net.Dial("tcp", n.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 4
	b := kmsg.NewRequestFormatter().AppendRequest(nil, req, 9)
	binary.BigEndian.PutUint16(b[6:], 77) // version 77
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	body := readFrame(t, c)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 35 || len(resp.ApiKeys) == 0 {
		t.Fatalf("error %d with %d keys, want UNSUPPORTED_VERSION (35) with the keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

// Garbage closes the connection at once (no hung connection) and the listener
// keeps serving.
func TestGarbageClosesConnection(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	for name, b := range map[string][]byte{
		"negative size":   {0xff, 0xff, 0xff, 0xff},
		"huge size":       {0x7f, 0xff, 0xff, 0xff, 1, 2, 3},
		"short header":    {0, 0, 0, 8, 0, 18, 0, 0, 0, 0, 0, 1},
		"unknown api key": append([]byte{0, 0, 0, 10, 0x7f, 0, 0, 0, 0, 0, 0, 1}, 0xff, 0xff),
		"bad body":        {0, 0, 0, 13, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff},
		"plain text":      []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	} {
		c, err := net.Dial("tcp", n.KafkaAddr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = bufio.NewReader(c).ReadByte()
		if err != io.EOF {
			t.Errorf("%s: read %v, want the connection closed (EOF)", name, err)
		} else if time.Since(start) > 5*time.Second {
			t.Errorf("%s: closed after %v", name, time.Since(start))
		}
		c.Close()
	}
	req := kmsg.NewPtrApiVersionsRequest()
	if resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("after garbage: ApiVersions error %d", resp.ErrorCode)
	}
}

// A fetch of a partition with nothing to return answers an empty record set, not a
// null one: librdkafka (kcat, confluent-kafka) refuses a null set as a parse failure
// and never reads the partition.
func TestFetchEmptyRecordsNotNull(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "empty", qxd.TopicConfig{Partitions: 1})
	for _, v := range []int16{4, 11, 12} {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(v)
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "empty"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rp.LogStartOffset = -1
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch v%d: answer %+v, want one partition", v, resp.Topics)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("fetch v%d: error code %d", v, p.ErrorCode)
		}
		if p.RecordBatches == nil {
			t.Errorf("fetch v%d: records are null, want an empty set", v)
		}
	}
}
