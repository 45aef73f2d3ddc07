package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestKafkaPausedLeader pauses (SIGSTOP) the node leading a partition, with a
// Kafka produce request to that partition in flight on it, past the request's
// timeout and the partition's election, then wakes it (SIGCONT). While it is
// paused, a healthy node's Metadata answers within kafkaPausedMetadataBound
// (it waited for the paused node: 2–3 s, as long as a client that bounds its
// requests to a few seconds gives it) and names the partition's new leader
// within a second of its election. Woken, the paused node answers the request
// it held NOT_LEADER_OR_FOLLOWER, within kafkaWokenAnswerBound, naming the new
// leader (KIP-951) when it has learned it by then (its routes come back after
// the pause; never itself), which sends a Kafka client there at once; it answered
// REQUEST_TIMED_OUT, which has a client resend to the same node, since the
// request's deadline and the append's had passed while it slept. QXD_DRILL_BIN
// names a prebuilt qxd binary to run instead of building this tree.
func TestKafkaPausedLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three qxd processes and pauses one for 12 s; skipped with -short")
	}
	const (
		topic = "kafka-paused"
		// The produce request's timeout, franz-go's default (Kafka's
		// request.timeout.ms is 30 s): the pause outlasts it.
		requestTimeout = 10 * time.Second
		pause          = requestTimeout + 2*time.Second
		// Bounds well above what the answers take (tens of milliseconds on an
		// idle machine) and below what they took before (2–3 s; the answer
		// REQUEST_TIMED_OUT at once).
		kafkaPausedMetadataBound = 2 * time.Second
		kafkaElectedSeenBound    = 2 * time.Second
		kafkaWokenAnswerBound    = 4 * time.Second
	)
	bin := os.Getenv("QXD_DRILL_BIN")
	if bin == "" {
		bin = buildQxd(t)
	}
	cl := startProcCluster(t, bin, loopbackLayout(t, 3))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := connect(t, cl.urls())
	if _, err := admin.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 3, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var leader string
	for wait := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		var err error
		if leader, err = leaderOf(ctx, admin, topic, 0); err == nil {
			break
		}
		if time.Since(wait) > 30*time.Second {
			t.Fatal(err)
		}
	}
	victim := cl.node(leader)
	if victim == nil {
		t.Fatalf("partition 0's leader %q is not one of the nodes", leader)
	}
	var healthy *procNode
	for _, n := range cl.nodes {
		if n != victim {
			healthy = n
			break
		}
	}

	// The victim's writer of partition 0 stores a record, on the connection the
	// request in flight will take.
	k := dialKafkaProc(t, victim.kafka)
	var corr int32
	for wait := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		corr++
		req := kafkaPausedProduce(t, topic, requestTimeout)
		k.send(t, req, corr)
		p := k.read(t, req, corr, 15*time.Second).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		if p.ErrorCode == 0 {
			break
		}
		if time.Since(wait) > 30*time.Second {
			t.Fatalf("%s does not store a record of partition 0: error %d", victim.name, p.ErrorCode)
		}
	}
	victimID := kafkaPausedLeader(t, healthy.kafka, topic)
	if victimID < 0 {
		t.Fatalf("%s does not name partition 0's leader", healthy.name)
	}

	// Partition 0's elections, as the healthy node hears of them.
	nc, err := nats.Connect(healthy.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	elected := make(chan time.Time, 8)
	if _, err := nc.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, semantics.StreamName(topic, 0)), func(*nats.Msg) {
		elected <- time.Now()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := victim.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now()
	defer victim.signal(syscall.SIGCONT) // also when the test fails
	corr++
	held := kafkaPausedProduce(t, topic, requestTimeout)
	k.send(t, held, corr)

	// A healthy node's Metadata while the leader is paused: quick, and naming
	// the new leader once it is elected.
	var slowest time.Duration
	var newLeader int32 = -1
	var seenAt time.Time
	for newLeader < 0 && time.Since(pausedAt) < pause {
		began := time.Now()
		id := kafkaPausedLeader(t, healthy.kafka, topic)
		slowest = max(slowest, time.Since(began))
		if id >= 0 && id != victimID {
			newLeader, seenAt = id, time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("paused %s (broker %d); %s's Metadata took at most %v; it named broker %d the leader of partition 0 %v after the pause",
		victim.name, victimID, healthy.name, slowest.Round(time.Millisecond), newLeader, seenAt.Sub(pausedAt).Round(time.Millisecond))
	if slowest > kafkaPausedMetadataBound {
		t.Errorf("a Metadata request to %s took %v while %s was paused, want at most %v", healthy.name, slowest.Round(time.Millisecond), victim.name, kafkaPausedMetadataBound)
	}
	if newLeader < 0 {
		t.Fatalf("%s named no new leader of partition 0 within %v of the pause", healthy.name, pause)
	}
	select {
	case at := <-elected:
		// The advisory may reach the test after Metadata already names the
		// leader: a negative delay is as good as none.
		d := seenAt.Sub(at)
		t.Logf("%s's Metadata named the new leader %v after the election advisory reached the test", healthy.name, d.Round(time.Millisecond))
		if d > kafkaElectedSeenBound {
			t.Errorf("%s's Metadata named partition 0's new leader %v after its election, want at most %v", healthy.name, d.Round(time.Millisecond), kafkaElectedSeenBound)
		}
	case <-time.After(5 * time.Second):
		t.Logf("no election advisory of partition 0 reached the test")
	}

	time.Sleep(pause - time.Since(pausedAt))
	if err := victim.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wokeAt := time.Now()
	resp := k.read(t, held, corr, 30*time.Second).(*kmsg.ProduceResponse)
	took := time.Since(wokeAt)
	p := resp.Topics[0].Partitions[0]
	t.Logf("woken %v after the pause, %s answered the request it held in %v: error %d, current leader %d (epoch %d), brokers %v",
		wokeAt.Sub(pausedAt).Round(time.Millisecond), victim.name, took.Round(time.Millisecond), p.ErrorCode, p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch, resp.Brokers)
	if p.ErrorCode != semantics.ErrNotLeader.Code {
		t.Errorf("woken, %s answered the produce it held with error %d, want NOT_LEADER_OR_FOLLOWER (%d)", victim.name, p.ErrorCode, semantics.ErrNotLeader.Code)
	}
	// The answer names the new leader when the woken node has learned it within
	// the second it waits for one; its routes, stale after the pause, may take
	// longer to come back on a loaded machine (seen in CI), and then it names
	// none, which sends the client to its metadata as well. It must never name
	// itself.
	switch {
	case p.CurrentLeader.LeaderID < 0:
		t.Logf("woken, %s named no leader: it did not learn the new one within its wait", victim.name)
	case p.CurrentLeader.LeaderID == victimID:
		t.Errorf("woken, %s named itself partition 0's leader, want the new leader (%d)", victim.name, newLeader)
	case !slices.ContainsFunc(resp.Brokers, func(b kmsg.ProduceResponseBroker) bool { return b.NodeID == p.CurrentLeader.LeaderID && b.Port > 0 }):
		t.Errorf("woken, %s named leader %d without its address (brokers %+v)", victim.name, p.CurrentLeader.LeaderID, resp.Brokers)
	}
	if took > kafkaWokenAnswerBound {
		t.Errorf("woken, %s answered the produce it held after %v, want at most %v", victim.name, took.Round(time.Millisecond), kafkaWokenAnswerBound)
	}
}

// kafkaPausedProduce is a Produce v12 (acks all) of one record to partition 0 of
// topic, from no idempotent producer.
func kafkaPausedProduce(t *testing.T, topic string, timeout time.Duration) *kmsg.ProduceRequest {
	t.Helper()
	var bb semantics.BatchBuilder
	bb.Append(&semantics.Record{Value: []byte("paused")})
	batch, err := bb.Build(nil, semantics.ProducerInfo{ID: -1, Epoch: -1, BaseSequence: -1}, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return qxdtest.ProduceRequest(12, -1, timeout, topic, batch)
}

// kafkaPausedLeader asks the node at addr (its Kafka listener) for partition 0
// of topic's leader: its broker id, -1 for none.
func kafkaPausedLeader(t *testing.T, addr, topic string) int32 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	k := dialKafkaProc(t, addr)
	defer k.nc.Close()
	k.send(t, req, 1)
	resp := k.read(t, req, 1, 15*time.Second).(*kmsg.MetadataResponse)
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.Partition == 0 && p.ErrorCode == 0 {
				return p.Leader
			}
		}
	}
	return -1
}

// kafkaProcConn is a raw Kafka connection to a node process.
type kafkaProcConn struct{ nc net.Conn }

func dialKafkaProc(t *testing.T, addr string) *kafkaProcConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &kafkaProcConn{nc: nc}
}

func (k *kafkaProcConn) send(t *testing.T, req kmsg.Request, correlation int32) {
	t.Helper()
	if _, err := k.nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, correlation)); err != nil {
		t.Fatal(err)
	}
}

// read reads the next answer, which must be to req with correlation, within d.
func (k *kafkaProcConn) read(t *testing.T, req kmsg.Request, correlation int32, d time.Duration) kmsg.Response {
	t.Helper()
	_ = k.nc.SetReadDeadline(time.Now().Add(d))
	var size [4]byte
	if _, err := io.ReadFull(k.nc, size[:]); err != nil {
		t.Fatalf("read the answer to request %d: %v", correlation, err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(k.nc, b); err != nil {
		t.Fatalf("read the answer to request %d: %v", correlation, err)
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != correlation {
		t.Fatalf("answer to request %d came, want the answer to request %d", got, correlation)
	}
	b = b[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		b = b[1:] // response header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatalf("decode the answer to request %d: %v", correlation, err)
	}
	return resp
}
