package kafka_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// messageSet is a message set of one message in a format before RecordBatch v2,
// as clients before Kafka 0.11 send it: magic 0 (0.8, 0.9) or 1 (0.10).
func messageSet(magic byte, value string) []byte {
	m := []byte{magic, 0} // attributes: no codec
	if magic == 1 {
		m = binary.BigEndian.AppendUint64(m, uint64(time.Now().UnixMilli()))
	}
	m = binary.BigEndian.AppendUint32(m, 0xffffffff) // null key
	m = binary.BigEndian.AppendUint32(m, uint32(len(value)))
	m = append(m, value...)
	b := binary.BigEndian.AppendUint64(nil, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(m)))
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(m))
	return append(b, m...)
}

// lockedBuffer collects a node's logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tooOldLogs are the clients named by the node's "kafka client too old" logs.
func (l *lockedBuffer) tooOldLogs(t *testing.T) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var clients []string
	for line := range bytes.Lines(l.b.Bytes()) {
		var rec struct {
			Msg    string `json:"msg"`
			Client string `json:"client"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "kafka client too old" {
			clients = append(clients, rec.Client)
		}
	}
	return clients
}

// Produce v0-v2 and Fetch v0-v3, which clients before Kafka 0.11 send and qxd
// does not advertise, are answered on an open connection: every partition of a
// produce UNSUPPORTED_FOR_MESSAGE_FORMAT, whatever its records, and nothing is
// stored; every partition of a fetch UNSUPPORTED_VERSION, and nothing is read.
// The node logs the first of them on each connection with the client id. An
// acks=0 produce of those versions closes the connection and stores nothing.
// ApiVersions lists none of these versions.
func TestOldClientVersionsRefused(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "old", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 30*time.Second)

	// Two records in each partition, so that what an old client stores would show.
	cl := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(2) {
		for range 2 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "old", Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	ends := func() []int64 {
		t.Helper()
		offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, "old")
		if err != nil || offs.Error() != nil {
			t.Fatalf("end offsets: %v %v", err, offs.Error())
		}
		var out []int64
		for p := range int32(2) {
			o, _ := offs.Lookup("old", p)
			out = append(out, o.Offset)
		}
		return out
	}
	want := []int64{2, 2}
	if got := ends(); !slices.Equal(got, want) {
		t.Fatalf("end offsets %v before the old requests, want %v", got, want)
	}

	conn, err := net.Dial("tcp", n.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	produce := func(v int16, acks int16) *kmsg.ProduceRequest {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = v, acks, 10000
		magic := byte(0)
		if v == 2 {
			magic = 1
		}
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "old"
		for p, records := range [][]byte{messageSet(magic, "old"), batch(t, 1, 10)} {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = int32(p), records
			rt.Partitions = append(rt.Partitions, rp)
		}
		missing := kmsg.NewProduceRequestTopic()
		missing.Topic = "missing"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = messageSet(magic, "old")
		missing.Partitions = append(missing.Partitions, rp)
		req.Topics = append(req.Topics, rt, missing)
		return req
	}
	for v := int16(0); v <= 2; v++ {
		resp := onConn(t, conn, produce(v, -1)).(*kmsg.ProduceResponse)
		var got int
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				got++
				if rp.ErrorCode != kerr.UnsupportedForMessageFormat.Code || rp.BaseOffset != -1 {
					t.Errorf("Produce v%d %s/%d: code %d (%v) base offset %d, want UNSUPPORTED_FOR_MESSAGE_FORMAT and -1",
						v, rt.Topic, rp.Partition, rp.ErrorCode, kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
				}
			}
		}
		if got != 3 {
			t.Errorf("Produce v%d answered %d partitions, want 3: %+v", v, got, resp.Topics)
		}
		if got := ends(); !slices.Equal(got, want) {
			t.Fatalf("end offsets %v after Produce v%d, want %v: nothing stored", got, v, want)
		}
	}
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = v, -1, 100, 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "old"
		for p := range int32(2) {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := onConn(t, conn, req).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("Fetch v%d: answer %+v, want the two partitions", v, resp.Topics)
		}
		for _, rp := range resp.Topics[0].Partitions {
			if rp.ErrorCode != kerr.UnsupportedVersion.Code || len(rp.RecordBatches) != 0 {
				t.Errorf("Fetch v%d partition %d: code %d (%v) with %d bytes of records, want UNSUPPORTED_VERSION and none",
					v, rp.Partition, rp.ErrorCode, kerr.ErrorForCode(rp.ErrorCode), len(rp.RecordBatches))
			}
		}
	}
	// The connection still serves. ApiVersions lists Produce from v0, as Kafka
	// 4.0 does (librdkafka compresses only for a broker that lists v0), and
	// Fetch from v4.
	av := onConn(t, conn, kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	for _, k := range av.ApiKeys {
		if (k.ApiKey == kmsg.Produce.Int16() && k.MinVersion != 0) || (k.ApiKey == kmsg.Fetch.Int16() && k.MinVersion != 4) {
			t.Errorf("ApiVersions lists %s from v%d, want Produce from v0 and Fetch from v4", kmsg.NameForKey(k.ApiKey), k.MinVersion)
		}
	}
	if got := logs.tooOldLogs(t); !slices.Equal(got, []string{"test"}) {
		t.Errorf("too-old logs name clients %q, want one log naming client \"test\"", got)
	}

	// acks=0: no answer can carry the code, so the connection is closed.
	conn2, err := net.Dial("tcp", n.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn2.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("test-acks0")).AppendRequest(nil, produce(2, 0), 7)); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(conn2).ReadByte(); err != io.EOF {
		t.Errorf("acks=0 Produce v2: read %v, want the connection closed (EOF)", err)
	}
	if got := ends(); !slices.Equal(got, want) {
		t.Fatalf("end offsets %v after an acks=0 Produce v2, want %v: nothing stored", got, want)
	}
	if got := logs.tooOldLogs(t); !slices.Equal(got, []string{"test", "test-acks0"}) {
		t.Errorf("too-old logs name clients %q, want \"test\" then \"test-acks0\"", got)
	}
}

// A version an API does not advertise, other than the refused old Produce and
// Fetch versions, closes the connection, as Kafka does: older versions of other
// APIs and versions above the newest served.
func TestUnadvertisedVersionsCloseConnection(t *testing.T) {
	t.Parallel()
	n, _ := startNode(t)
	for _, tc := range []struct {
		name    string
		req     kmsg.Request
		version int16 // sent in the header: -1 keeps the request's
	}{
		{"ListOffsets v0", &kmsg.ListOffsetsRequest{Version: 0}, -1},
		{"OffsetCommit v1", &kmsg.OffsetCommitRequest{Version: 1}, -1},
		{"OffsetFetch v0", &kmsg.OffsetFetchRequest{Version: 0}, -1},
		{"Produce v14", &kmsg.ProduceRequest{Version: 13}, 14},
		{"Fetch v19", &kmsg.FetchRequest{Version: 18}, 19},
		{"Metadata v14", &kmsg.MetadataRequest{Version: 13}, 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", n.KafkaAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			b := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, tc.req, 3)
			if tc.version >= 0 {
				binary.BigEndian.PutUint16(b[6:], uint16(tc.version))
			}
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
			if _, err := bufio.NewReader(conn).ReadByte(); err != io.EOF {
				t.Errorf("read %v, want the connection closed (EOF)", err)
			}
		})
	}
	// The listener keeps serving.
	if resp := roundTrip(t, n.KafkaAddr(), kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions error %d", resp.ErrorCode)
	}
}
