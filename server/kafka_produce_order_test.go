package server_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// kafkaConn is a raw Kafka connection whose requests the test writes one after
// the other, without waiting for answers (pipelined, as clients do).
type kafkaConn struct {
	t  *testing.T
	nc net.Conn
}

func dialKafka(t *testing.T, addr string) *kafkaConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &kafkaConn{t: t, nc: nc}
}

func (k *kafkaConn) send(req kmsg.Request, correlation int32) {
	k.t.Helper()
	if _, err := k.nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, correlation)); err != nil {
		k.t.Fatal(err)
	}
}

// read reads the next answer, which must be to req with correlation, within d.
func (k *kafkaConn) read(req kmsg.Request, correlation int32, d time.Duration) kmsg.Response {
	k.t.Helper()
	_ = k.nc.SetReadDeadline(time.Now().Add(d))
	var size [4]byte
	if _, err := io.ReadFull(k.nc, size[:]); err != nil {
		k.t.Fatalf("read the answer to request %d: %v", correlation, err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(k.nc, b); err != nil {
		k.t.Fatalf("read the answer to request %d: %v", correlation, err)
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != correlation {
		k.t.Fatalf("answer to request %d came, want the answer to request %d first", got, correlation)
	}
	b = b[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		b = b[1:] // response header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		k.t.Fatalf("decode the answer to request %d: %v", correlation, err)
	}
	return resp
}

// roundTrip sends req on a new connection and reads its answer.
func roundTrip(t *testing.T, addr string, req kmsg.Request) kmsg.Response {
	t.Helper()
	k := dialKafka(t, addr)
	defer k.nc.Close()
	k.send(req, 1)
	return k.read(req, 1, 10*time.Second)
}

// produceV12 is a Produce v12 (acks all) of batch to partition 0 of topic, in
// transactional id txn ("" for none).
func produceV12(topic, txn string, batch []byte) *kmsg.ProduceRequest {
	req := qxdtest.ProduceRequest(12, -1, 30*time.Second, topic, batch)
	if txn != "" {
		req.TransactionID = kmsg.StringPtr(txn)
	}
	return req
}

func oneRecord(t *testing.T, value string, p semantics.ProducerInfo) []byte {
	t.Helper()
	var bb semantics.BatchBuilder
	bb.Append(&semantics.Record{Value: []byte(value)})
	b, err := bb.Build(nil, p, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// highWatermark reads partition 0 of topic's high watermark with ListOffsets.
func highWatermark(t *testing.T, addr, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version, req.ReplicaID = 7, -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := roundTrip(t, addr, req).(*kmsg.ListOffsetsResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("high watermark of %s/0: code %d", topic, p.ErrorCode)
	} else {
		return p.Offset
	}
	return -1
}

// TestKafkaTransactionalProduceNotHeld: a transactional Produce v12 waits for
// the transaction coordinator to add its partitions (here held busy with the
// transactional id) without holding the connection's later requests: a later
// produce to another partition is stored meanwhile, one to the same partition
// waits for it (batches reach each partition in request order), and the
// answers still come in request order.
func TestKafkaTransactionalProduceNotHeld(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "held", qxd.TopicConfig{Partitions: 1})
	qxdtest.CreateTopic(t, c, "free", qxd.TopicConfig{Partitions: 1})
	addr := n.KafkaAddr()

	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 5, kmsg.StringPtr("held-tx"), 60000
	ir := roundTrip(t, addr, init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: code %d", ir.ErrorCode)
	}
	release, err := n.Transactions().HoldTxn("held-tx")
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	k := dialKafka(t, addr)
	txn := produceV12("held", "held-tx", oneRecord(t, "in txn", semantics.ProducerInfo{ID: ir.ProducerID, Epoch: ir.ProducerEpoch, Transactional: true}))
	other := produceV12("free", "", oneRecord(t, "other partition", semantics.NoProducer))
	same := produceV12("held", "", oneRecord(t, "same partition", semantics.NoProducer))
	k.send(txn, 1)
	k.send(other, 2)
	k.send(same, 3)

	// While the coordinator is held, the produce to the other partition is
	// stored; the one to the same partition is not.
	deadline := time.Now().Add(15 * time.Second)
	for highWatermark(t, addr, "free") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the produce to free/0 sent after a transactional produce waiting for the coordinator was not stored within 15s: the connection's later requests are held")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hw := highWatermark(t, addr, "held"); hw != 0 {
		t.Fatalf("held/0 has %d records while the transactional produce before them waits: want none", hw)
	}
	// No answer comes before the first request's.
	_ = k.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var one [1]byte
	if _, err := k.nc.Read(one[:]); err == nil {
		t.Fatal("an answer came while the first request waits for the coordinator")
	}

	release()
	for i, want := range []struct {
		req    kmsg.Request
		offset int64
	}{{txn, 0}, {other, 0}, {same, 1}} {
		r := k.read(want.req, int32(i+1), 20*time.Second).(*kmsg.ProduceResponse)
		p := r.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != want.offset {
			t.Errorf("request %d (%s/0): code %d at offset %d, want stored at %d", i+1, r.Topics[0].Topic, p.ErrorCode, p.BaseOffset, want.offset)
		}
	}
}

// TestKafkaProduceByIDTopicRemade: a transactional Produce v13 names its topic
// by id; if the topic is deleted and made again while the request waits for
// the transaction coordinator, its batch is refused with UNKNOWN_TOPIC_ID and
// stores nothing in the new topic, which has another id.
func TestKafkaProduceByIDTopicRemade(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "remade", qxd.TopicConfig{Partitions: 1})
	addr := n.KafkaAddr()

	md := kmsg.NewPtrMetadataRequest()
	md.Version = 13
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("remade")
	md.Topics = append(md.Topics, mt)
	id := roundTrip(t, addr, md).(*kmsg.MetadataResponse).Topics[0].TopicID

	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 5, kmsg.StringPtr("remade-tx"), 60000
	ir := roundTrip(t, addr, init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: code %d", ir.ErrorCode)
	}
	release, err := n.Transactions().HoldTxn("remade-tx")
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	req := produceV12("", "remade-tx", oneRecord(t, "old topic", semantics.ProducerInfo{ID: ir.ProducerID, Epoch: ir.ProducerEpoch, Transactional: true}))
	req.Version, req.Topics[0].TopicID = 13, id
	k := dialKafka(t, addr)
	k.send(req, 1)
	time.Sleep(100 * time.Millisecond) // the request reaches the coordinator's wait
	ctx := qxdtest.Context(t, 30*time.Second)
	if err := c.Admin().DeleteTopic(ctx, "remade"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "remade", qxd.TopicConfig{Partitions: 1})
	release()

	r := k.read(req, 1, 20*time.Second).(*kmsg.ProduceResponse)
	if p := r.Topics[0].Partitions[0]; r.Topics[0].TopicID != id || p.ErrorCode != 100 { // UNKNOWN_TOPIC_ID
		t.Fatalf("produce by the id of remade, made again meanwhile: code %d at %d, want UNKNOWN_TOPIC_ID", p.ErrorCode, p.BaseOffset)
	}
	if hw := highWatermark(t, addr, "remade"); hw != 0 {
		t.Fatalf("remade made again has %d records, want none", hw)
	}
}
