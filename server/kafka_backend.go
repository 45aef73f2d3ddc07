package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// kafkaBrokerWait bounds how long a Metadata request waits for the other nodes to
// say their Kafka addresses.
const kafkaBrokerWait = time.Second

// kafkaMetadataWait bounds how long a Metadata answer waits for the partition
// streams' leaders to describe them. While a node that led streams is lost,
// JetStream's stream list waits 4 s for it and asking each stream 2 s more:
// longer than Kafka clients wait, when they need the new leaders most (a
// client that bounds its requests to a few seconds, to leave a frozen broker
// soon, gives Metadata no more). A partition not described by then gets its
// leader as this node's replica knows it (localLeader), which names a new
// leader as soon as it is elected.
const kafkaMetadataWait = 500 * time.Millisecond

// kafkaEpochWait bounds how long a Metadata answer waits for the other nodes to
// name the leader epochs of partitions whose replica here knows no leader.
const kafkaEpochWait = 500 * time.Millisecond

// kafkaBackend is the node's services as the Kafka listener's Backend, in process:
// produce (Node.Writers), fetch (Node.Fetcher), the group service (Node.Groups)
// and topic admin (Node.Admin). Its own in-process connection reads partition
// offsets, watches partitions for appends and asks the other nodes for their Kafka
// addresses.
type kafkaBackend struct {
	n         *Node
	nc        *nats.Conn // the listener's own in-process connection
	advertise kafka.Broker

	infoSub  *nats.Subscription
	epochSub *nats.Subscription
	leadsSub *nats.Subscription
	reads    kafkaReads // where partitions' last fetches ended
	stores   storeReads
	bufs     batchBufs // the buffers store reads load batches into
	mu       sync.Mutex
	addrs    map[string]kafka.Broker // other nodes' Kafka addresses, by name
	// parts is the partition count of each topic as Metadata last answered it,
	// for answers while the topic's record cannot be read.
	parts map[string]int32
	// leaders is each partition's leader as Metadata last answered it, by
	// stream, for the partitions whose leader this node's RAFT view cannot
	// name while the topic's record cannot be read.
	leaders map[string]kafka.PartitionInfo
	// electionPoll, when set (nanoseconds), replaces kafkaElectionPoll: the
	// tests slow the held answers' looks down.
	electionPoll atomic.Int64
}

var _ kafka.Backend = (*kafkaBackend)(nil)

// kafkaFront is a node's Kafka listener with its backend.
type kafkaFront struct {
	b *kafkaBackend
	l *kafka.Listener

	resumeErr string // the last failure to resume the listener, logged once
}

// kafkaCutOff suspends the Kafka listener while the node is cut off from its
// cluster, and resumes it once the node is not: a Kafka client has no lame-duck
// notice, but takes a refused connection for a broker that is down, reads the
// metadata again from another broker and goes to the leaders and coordinators
// the majority elects. The isolation watch calls it at every probe, so that a
// listener that could not listen again tries again.
func (n *Node) kafkaCutOff(isolated bool) {
	k := n.kafka
	if k == nil {
		return
	}
	if isolated {
		if !k.l.Suspended() {
			k.l.Suspend()
			n.log.Warn("kafka listener suspended: the node is cut off from its cluster; Kafka clients go to other nodes", "listen", k.l.Addr().String())
		}
		return
	}
	if !k.l.Suspended() {
		return
	}
	if err := k.l.Resume(); err != nil {
		if err.Error() != k.resumeErr {
			k.resumeErr = err.Error()
			n.log.Error("kafka listener cannot listen again after the node was cut off from its cluster; retrying", "err", err)
		}
		return
	}
	k.resumeErr = ""
	n.log.Info("kafka listener serves again: the node reaches a majority of its cluster", "listen", k.l.Addr().String())
}

// brokerID is a node's Kafka broker id: derived from its name, so that it is the
// same after a restart and on every node.
func brokerID(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32() & math.MaxInt32)
}

// startKafka starts the Kafka listener when the config asks for one.
func (n *Node) startKafka() error {
	if n.cfg.KafkaListen == "" {
		return nil
	}
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(n.ns), nats.Name("qxd-node-" + n.cfg.Name + "-kafka"),
		nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)}, internalOptions(n.internalKey)...)...)
	if err != nil {
		return fmt.Errorf("connect the Kafka listener to the embedded server: %w", err)
	}
	ln, err := net.Listen("tcp", n.cfg.KafkaListen)
	if err != nil {
		nc.Close()
		return kafkaListenErr(n.cfg.KafkaListen, err)
	}
	b := &kafkaBackend{n: n, nc: nc, addrs: map[string]kafka.Broker{}, parts: map[string]int32{}, leaders: map[string]kafka.PartitionInfo{}, advertise: advertised(n.cfg, ln.Addr())}
	kcfg := kafka.Config{Listener: ln, Backend: b, Logger: n.log, Observer: &n.obs, FetchSessionSlots: n.cfg.KafkaFetchSessionSlots,
		FetchSessionEviction: n.cfg.KafkaFetchSessionEviction, FetchMaxBytes: n.cfg.KafkaFetchMaxBytes}
	if kcfg.FetchSessionSlots == 0 {
		kcfg.FetchSessionSlots = kafka.NoFetchSessions
	}
	if n.cfg.TLS.Enabled() {
		// The node's certificates, as on its NATS port (mutual TLS with Verify).
		if kcfg.TLS, _, err = n.cfg.TLS.build("tls", n.cfg.TLS.Verify); err != nil {
			ln.Close()
			nc.Close()
			return fmt.Errorf("kafka listener: %w", err)
		}
	}
	if n.auth != nil {
		kcfg.Auth = kafkaAuth{n.auth}
	}
	l, err := kafka.Listen(kcfg)
	if err != nil {
		ln.Close()
		nc.Close()
		return err
	}
	if err := b.start(); err != nil {
		_ = l.Close(context.Background())
		nc.Close()
		return err
	}
	n.kafka = &kafkaFront{b: b, l: l}
	kafkaAddr := net.JoinHostPort(b.advertise.Host, strconv.Itoa(int(b.advertise.Port)))
	n.admin.kafka.Store(&kafkaAddr)
	n.log.Info("kafka listener started", "tls", kcfg.TLS != nil, "sasl", kcfg.Auth != nil, "listen", l.Addr().String(), "advertise", kafkaAddr)
	return nil
}

// kafkaAuth checks Kafka clients' SASL credentials against the node's users: PLAIN
// against their bcrypt hashes, as the NATS port checks them, and SCRAM against
// their SCRAM credentials.
type kafkaAuth struct{ a *authenticator }

var _ kafka.Authenticator = kafkaAuth{}

// Plain implements kafka.Authenticator.
func (k kafkaAuth) Plain(_ context.Context, user, password string) (semantics.Grant, error) {
	u, err := k.a.checkPassword(user, password)
	if err != nil {
		return semantics.Grant{}, err
	}
	return u.Grant, nil
}

// SCRAM implements kafka.Authenticator.
func (k kafkaAuth) SCRAM(_ context.Context, mechanism, user string) (kafka.SCRAMCredential, semantics.Grant, error) {
	u, c, err := k.a.scramCredential(user, mechanism)
	if err != nil {
		return c, semantics.Grant{}, err
	}
	return c, u.Grant, nil
}

func kafkaListenErr(addr string, err error) error {
	return fmt.Errorf("kafka listen address %s is not available: %w (stop what uses it or choose another with --kafka-listen)", addr, err)
}

// checkKafkaPortFree fails when the Kafka listen address cannot be bound, before
// the node starts anything.
func checkKafkaPortFree(addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return kafkaListenErr(addr, err)
	}
	return l.Close()
}

// advertised is the broker address a node gives Kafka clients: KafkaAdvertise, or
// the address bound; a wildcard host (0.0.0.0, ::) becomes the host name, as Kafka
// advertises a listener without a host.
func advertised(cfg Config, bound net.Addr) kafka.Broker {
	host, port, _ := net.SplitHostPort(bound.String())
	if cfg.KafkaAdvertise != "" {
		ah, ap, _ := net.SplitHostPort(cfg.KafkaAdvertise)
		if ah != "" {
			host = ah
		}
		if ap != "" && ap != "0" {
			port = ap
		}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	pn, _ := strconv.Atoi(port)
	return kafka.Broker{ID: brokerID(cfg.Name), Name: cfg.Name, Host: host, Port: int32(pn)}
}

// stopKafka closes the Kafka listener and its connections.
func (n *Node) stopKafka(ctx context.Context) {
	if n.kafka == nil {
		return
	}
	if err := n.kafka.l.Close(ctx); err != nil {
		n.log.Warn("kafka listener did not stop in time", "err", err)
	}
	n.kafka.b.reads.close()
	n.kafka.b.nc.Close()
}

// KafkaAddr is the address the node's Kafka listener listens on, "" without one.
func (n *Node) KafkaAddr() string {
	if n.kafka == nil {
		return ""
	}
	return n.kafka.l.Addr().String()
}

// KafkaFetchSessions reads the Kafka listener's fetch session figures; false
// without a Kafka listener.
func (n *Node) KafkaFetchSessions() (kafka.FetchSessionStats, bool) {
	if n.kafka == nil {
		return kafka.FetchSessionStats{}, false
	}
	return n.kafka.l.FetchSessionStats(), true
}

func (b *kafkaBackend) start() error {
	var err error
	b.infoSub, err = b.nc.Subscribe(semantics.KafkaBrokersSubject, func(m *nats.Msg) {
		data, _ := json.Marshal(b.advertise)
		_ = m.Respond(data)
	})
	if err != nil {
		return fmt.Errorf("kafka listener: subscribe for broker requests: %w", err)
	}
	// Leader epochs this node knows (it holds a replica of the stream): a node
	// holding none asks the others.
	b.epochSub, err = b.nc.Subscribe(semantics.KafkaEpochsSubject, func(m *nats.Msg) {
		var streams []string
		if json.Unmarshal(m.Data, &streams) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), kafkaBrokerWait)
		defer cancel()
		known := map[string]int32{}
		for _, s := range streams {
			if e := b.n.epochs.of(ctx, s); e >= 0 {
				known[s] = e
			}
		}
		data, _ := json.Marshal(known)
		_ = m.Respond(data)
	})
	if err != nil {
		return fmt.Errorf("kafka listener: subscribe for leader epoch requests: %w", err)
	}
	b.leadsSub, err = b.nc.Subscribe(semantics.KafkaLeadsSubject, b.serveLeads)
	if err != nil {
		return fmt.Errorf("kafka listener: subscribe for leadership requests: %w", err)
	}
	return b.nc.Flush()
}

// partitionEpochs returns the leader epochs of partition streams: from this node
// where it holds a replica, else from the nodes that do, which answer within
// kafkaEpochWait (-1 for a stream none of them knows: no leader now).
func (b *kafkaBackend) partitionEpochs(ctx context.Context, streams []string) map[string]int32 {
	out := make(map[string]int32, len(streams))
	var missing []string
	// The local lookups together within kafkaEpochWait: a stream whose group
	// this node has not found asks its leader, which may be the node just lost.
	lctx, cancel := context.WithTimeout(ctx, kafkaEpochWait)
	defer cancel()
	for _, s := range streams {
		if e := b.n.epochs.of(lctx, s); e >= 0 {
			out[s] = e
		} else {
			out[s] = -1
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 || !b.n.ns.JetStreamIsClustered() {
		return out
	}
	inbox := nats.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return out
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(missing)
	if err := b.nc.PublishRequest(semantics.KafkaEpochsSubject, inbox, req); err != nil {
		return out
	}
	left := map[string]bool{}
	for _, s := range missing {
		left[s] = true
	}
	deadline := time.Now().Add(kafkaEpochWait)
	for len(left) > 0 && ctx.Err() == nil {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var known map[string]int32
		if json.Unmarshal(m.Data, &known) != nil {
			continue
		}
		for s, e := range known {
			if _, asked := out[s]; asked && e > out[s] {
				out[s] = e
				delete(left, s)
			}
		}
	}
	return out
}

// LeaderEpoch implements kafka.Backend: the partition's leader epoch as this node
// knows it (-1: it holds no replica, or there is no leader).
func (b *kafkaBackend) LeaderEpoch(ctx context.Context, topic string, p int32) int32 {
	return b.n.epochs.of(ctx, semantics.StreamName(topic, p))
}

// EpochEnd implements kafka.Backend (OffsetForLeaderEpoch) from the epochs the
// writers stamped on the stored batches, as Kafka's leader epoch cache answers:
// the current epoch ends at the high watermark; an older one where the first batch
// of a later epoch begins, with the greatest epoch at or below the one asked that
// wrote something; an epoch above the current one is unknown (-1, -1).
func (b *kafkaBackend) EpochEnd(ctx context.Context, topic string, p int32, epoch int32) (int32, int64, error) {
	stream := semantics.StreamName(topic, p)
	if !b.n.isStreamLeader(stream) {
		return -1, -1, semantics.Errorf(semantics.ErrNotLeader, "partition %s is led by another node", semantics.PartitionString(topic, p))
	}
	// The leader's own view: a replica's may end before what consumers already
	// read, which they would take for a truncated log.
	r, offs, err := b.offsetsFrom(ctx, topic, p, false)
	if err != nil {
		return -1, -1, err
	}
	current := b.n.epochs.of(ctx, stream)
	switch {
	case current < 0:
		return -1, -1, semantics.Errorf(semantics.ErrNotLeader, "partition %s has no leader now", semantics.PartitionString(topic, p))
	case epoch == current:
		return current, offs.HighWatermark, nil
	case epoch > current:
		return -1, -1, nil
	}
	if offs.Msgs == 0 {
		return epoch, offs.HighWatermark, nil
	}
	below, found, above, next, err := semantics.FindLeaderEpoch(ctx, r, offs.FirstSeq, offs.LastSeq, epoch)
	if err != nil {
		return -1, -1, err
	}
	end := offs.HighWatermark // the current epoch begins where the log ends
	if next {
		m, err := r.Get(ctx, above)
		if err != nil {
			return -1, -1, err
		}
		h, err := semantics.PeekBatchHeader(m.Data)
		if err != nil {
			return -1, -1, err
		}
		end = h.BaseOffset
	}
	got := epoch // older than every epoch stored: Kafka answers the one asked
	if found {
		m, err := r.Get(ctx, below)
		if err != nil {
			return -1, -1, err
		}
		if h, err := semantics.PeekBatchHeader(m.Data); err == nil && h.LeaderEpoch >= 0 {
			got = h.LeaderEpoch
		}
	}
	return got, end, nil
}

// topicMeta returns the record of a ready topic, as the writers know it if they do,
// else as a replica of the topics bucket holds it (getTopicQuick: it runs on every
// fetch of a topic this node leads no partition of; a refusal is the leader's).
func (b *kafkaBackend) topicMeta(ctx context.Context, name string) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	if w := b.n.writers; w != nil {
		w.mu.Lock()
		t, ok := w.topics[name]
		w.mu.Unlock()
		if ok && t.State == semantics.TopicReady {
			return t, nil
		}
	}
	t, err := b.n.admin.meta.getTopicQuick(ctx, name)
	if err != nil {
		return t, err
	}
	if t.State != semantics.TopicReady {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s; retry", name, t.State)
	}
	return t, nil
}

func (b *kafkaBackend) partition(ctx context.Context, topic string, p int32) (semantics.TopicMeta, error) {
	t, err := b.topicMeta(ctx, topic)
	if err != nil {
		return t, err
	}
	if p >= t.Config.Partitions {
		// The record read (the writers' copy, or a replica's) may be from before
		// partitions were added: the leader's has the last word.
		if t, err = b.n.admin.meta.getTopic(ctx, topic); err != nil {
			return t, err
		}
	}
	if p < 0 || p >= t.Config.Partitions {
		return t, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has no partition %d (it has %d)", topic, p, t.Config.Partitions)
	}
	return t, nil
}

// Append implements kafka.Backend through the node's produce service, in process:
// the batch goes to the partition's writer as the client sent it. A partition this
// node does not lead is NOT_LEADER_OR_FOLLOWER, so the client reads the metadata
// again and sends it to the leader, as with Kafka.
func (b *kafkaBackend) Append(ctx context.Context, topic string, p int32, batch []byte, acks int16) func() (kafka.AppendResult, error) {
	fail := func(err error) func() (kafka.AppendResult, error) {
		return func() (kafka.AppendResult, error) { return kafka.AppendResult{}, err }
	}
	t, err := b.partition(ctx, topic, p)
	if err != nil {
		return fail(err)
	}
	if len(batch) > int(t.Config.MaxMessageBytes) {
		return fail(semantics.Errorf(semantics.ErrMessageTooLarge,
			"partition %s: batch of %d bytes is over the topic's max message bytes (%d): send smaller batches or raise max.message.bytes",
			semantics.PartitionString(topic, p), len(batch), t.Config.MaxMessageBytes))
	}
	if acks == 0 {
		b.n.Writers().AppendAsync(topic, p, batch, nil)
		return fail(nil)
	}
	ch := make(chan semantics.ProduceReply, 1)
	b.n.Writers().AppendAsync(topic, p, batch, func(r semantics.ProduceReply) { ch <- r })
	return func() (kafka.AppendResult, error) {
		select {
		case r := <-ch:
			if err := r.Err(); err != nil {
				return kafka.AppendResult{}, err
			}
			return kafka.AppendResult{BaseOffset: r.BaseOffset, LogAppendTime: r.LogAppendTime, LogStart: -1}, nil
		case <-ctx.Done():
			if r, ok := wokenAnswer(ctx, ch); ok {
				if err := r.Err(); err != nil {
					return kafka.AppendResult{}, err
				}
				return kafka.AppendResult{BaseOffset: r.BaseOffset, LogAppendTime: r.LogAppendTime, LogStart: -1}, nil
			}
			return kafka.AppendResult{}, semantics.Errorf(semantics.ErrTimeout,
				"partition %s: not stored in time (an idempotent producer resends it safely)", semantics.PartitionString(topic, p))
		}
	}
}

// wokenLate is how long after a produce request's deadline its timer must fire
// for the Kafka listener to take it that the node did not run meanwhile (it was
// paused, SIGSTOP) rather than that the append waited on the cluster.
const wokenLate = time.Second

// wokenAnswer waits for the writer's answer to an append whose request's
// deadline passed while the node did not run: the writer's answer (NOT_LEADER
// once the node, woken, learns that another node leads the partition now)
// sends a Kafka client to the new leader at once, where REQUEST_TIMED_OUT has it
// resend to this node. It waits at most the writer's ackTimeout, after which
// the writer answers whatever happened.
func wokenAnswer(ctx context.Context, ch <-chan semantics.ProduceReply) (semantics.ProduceReply, bool) {
	deadline, ok := ctx.Deadline()
	if !ok || time.Since(deadline) < wokenLate {
		return semantics.ProduceReply{}, false
	}
	t := time.NewTimer(ackTimeout + time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, true
	case <-t.C:
		return semantics.ProduceReply{}, false
	}
}

// offsets reads a partition's offsets (from the stream leader's view) and returns
// its reader for direct reads.
func (b *kafkaBackend) offsets(ctx context.Context, topic string, p int32) (*partition.Reader, partition.Offsets, error) {
	return b.offsetsFrom(ctx, topic, p, true)
}

// offsetsFrom is offsets with direct reads (any replica answers, possibly a
// little behind) or, without, reads answered by the stream's leader.
func (b *kafkaBackend) offsetsFrom(ctx context.Context, topic string, p int32, direct bool) (*partition.Reader, partition.Offsets, error) {
	t, err := b.partition(ctx, topic, p)
	if err != nil {
		return nil, partition.Offsets{}, err
	}
	r := partition.NewReader(b.nc, topic, p, direct)
	offs, err := r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
		ck, err := b.n.admin.meta.getCheckpoint(ctx, t.ID, p)
		return ck.Next, err
	})
	return r, offs, err
}

// Offsets implements kafka.Backend: the offsets a fetch reads (readEnds), from
// the leader's store when this node leads the partition, and the stream's first
// and last batches remembered for the consumer's first fetch.
func (b *kafkaBackend) Offsets(ctx context.Context, topic string, p int32) (int64, int64, error) {
	t, err := b.partition(ctx, topic, p)
	if err != nil {
		return -1, -1, err
	}
	offs, _, err := b.readEnds(ctx, partition.NewReader(b.nc, topic, p, false), t, p)
	if err != nil {
		return -1, -1, err
	}
	return offs.LogStart, offs.HighWatermark, nil
}

// OffsetForTime implements kafka.Backend.
func (b *kafkaBackend) OffsetForTime(ctx context.Context, topic string, p int32, ts int64) (int64, int64, error) {
	r, offs, err := b.offsets(ctx, topic, p)
	if err != nil {
		return -1, -1, err
	}
	m, found, err := r.OffsetForTime(ctx, offs, ts)
	if err != nil || !found {
		return -1, -1, err
	}
	return m.Offset, m.Timestamp, nil
}

// kafkaWatch is woken by publishes to partition streams' subjects.
type kafkaWatch struct {
	c    chan struct{}
	subs []*nats.Subscription
}

func (w *kafkaWatch) C() <-chan struct{} { return w.c }

func (w *kafkaWatch) Close() {
	for _, s := range w.subs {
		_ = s.Unsubscribe()
	}
}

// Watch implements kafka.Backend: it subscribes to the partitions' stream subjects,
// where the writers publish every append.
func (b *kafkaBackend) Watch(ctx context.Context, parts []semantics.TopicPartition) (kafka.Watch, error) {
	w := &kafkaWatch{c: make(chan struct{}, 1)}
	for _, tp := range parts {
		if semantics.ValidateTopicName(tp.Topic) != nil {
			continue
		}
		s, err := b.nc.Subscribe(semantics.StreamSubject(tp.Topic, tp.Partition), func(*nats.Msg) {
			select {
			case w.c <- struct{}{}:
			default:
			}
		})
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("watch partition %s: %w", tp, err)
		}
		w.subs = append(w.subs, s)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.nc.FlushWithContext(fctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch partitions: %w", err)
	}
	return w, nil
}

// brokers returns every node with a Kafka listener, by name: this one, and those
// that answer within kafkaBrokerWait, until want have answered. A node in lost,
// or one this node has no route to, is not waited for: it cannot answer (a node first asked for its address
// once it was killed made every answer wait kafkaBrokerWait), and is named
// only if its address is known.
func (b *kafkaBackend) brokers(ctx context.Context, want []string, lost lostNodes) map[string]kafka.Broker {
	out := map[string]kafka.Broker{b.advertise.Name: b.advertise}
	b.mu.Lock()
	need := len(out) // this node and those of want still to answer
	for _, name := range want {
		if name == b.advertise.Name {
			continue
		}
		if a, ok := b.addrs[name]; ok {
			out[name] = a
			need++
		} else if !lost.unreachable(name) {
			need++
		}
	}
	b.mu.Unlock()
	if len(out) >= need || !b.n.ns.JetStreamIsClustered() {
		return out
	}
	inbox := nats.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return out
	}
	defer sub.Unsubscribe()
	if err := b.nc.PublishRequest(semantics.KafkaBrokersSubject, inbox, nil); err != nil {
		return out
	}
	deadline := time.Now().Add(kafkaBrokerWait)
	for len(out) < need && ctx.Err() == nil {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var br kafka.Broker
		if json.Unmarshal(m.Data, &br) == nil && br.Name != "" {
			out[br.Name] = br
			b.mu.Lock()
			b.addrs[br.Name] = br
			b.mu.Unlock()
		}
	}
	return out
}

// kafkaClusterID is the cluster id Kafka clients are given for the JetStream
// cluster named name: "qxd" for a single node, whose cluster has no name.
func kafkaClusterID(name string) string {
	if name == "" {
		return "qxd"
	}
	return name
}

// Self implements kafka.Backend: the cluster id Cluster answers, read the same
// way on this node alone, and the node's broker id.
func (b *kafkaBackend) Self(context.Context) (string, int32) {
	var ci semantics.ClusterInfo
	b.n.admin.metaNodes(&ci)
	return kafkaClusterID(ci.Name), b.advertise.ID
}

// Cluster implements kafka.Backend from the node's metadata (the same view as
// 'qxd cluster metadata').
func (b *kafkaBackend) Cluster(ctx context.Context, topics []string) (kafka.Cluster, error) {
	asked := time.Now()
	if err := b.awaitOwnFate(ctx); err != nil {
		return kafka.Cluster{}, err
	}
	mctx, cancel := context.WithTimeout(ctx, kafkaMetadataWait)
	go b.cutMetadataWait(mctx, cancel, kafka.RequestBehind(ctx))
	md, err := b.n.admin.metadata(mctx, semantics.MetadataRequest{Topics: topics}, false)
	cancel()
	if err != nil {
		return kafka.Cluster{}, err
	}
	// A node silent to this node's probes (isolationWatch.silent: paused, cut
	// off, or dead with its routes not yet dropped) is left out of the brokers,
	// as Kafka's controller leaves out a broker it fenced, and listed among its
	// partitions' offline replicas. franz-go then closes its connections to it:
	// a request it waits for there, which the node would answer only once it
	// wakes or the cut heals, fails and is sent again to the partition's new
	// leader, instead of holding the partition until the client's request
	// timeout (20 s by default).
	probes, now := b.n.probes.Load(), time.Now()
	var names []string
	for _, br := range md.Brokers {
		silent := probes != nil && br.Name != b.advertise.Name && probes.silent(br.Name, now)
		if br.Up && !silent {
			names = append(names, br.Name)
		}
	}
	brokers := b.brokers(ctx, names, b.lostNow())
	cl := kafka.Cluster{ClusterID: kafkaClusterID(md.Cluster), ControllerID: -1}
	if md.MetaLeader != "" {
		cl.ControllerID = brokerID(md.MetaLeader)
	} else if !b.n.ns.JetStreamIsClustered() {
		cl.ControllerID = b.advertise.ID
	}
	for _, br := range brokers {
		cl.Brokers = append(cl.Brokers, br)
	}
	var streams []string
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			streams = append(streams, semantics.StreamName(t.Name, p.Partition))
		}
	}
	epochs := b.partitionEpochs(ctx, streams)
	// A node cut off from its cluster does not know who leads: its view is
	// stale, and it leads nothing it can store to.
	cutOff := b.n.isolated.Load()
	woke := b.wokeAt(time.Now())
	lost := b.lostNow()
	var held []heldPartition
	for _, t := range md.Topics {
		ti := kafka.TopicInfo{Name: t.Name}
		if id, err := base64.RawURLEncoding.DecodeString(t.ID); err == nil && len(id) == 16 {
			copy(ti.ID[:], id)
		}
		switch {
		case t.Error != nil && semantics.IsRetriable(t.Error.Err()) && !cutOff:
			if known, ok := b.knownTopic(t.Name); ok {
				// The topic's record could not be read now (the topics
				// bucket's leader was lost and the others have not elected
				// another), but the node knows the topic from the bucket's
				// watch, and its partitions' leaders from their own RAFT
				// groups: a partition that has a leader keeps it, so that
				// clients go on producing to it while the bucket elects.
				cl.Topics = append(cl.Topics, b.knownTopicInfo(ctx, known, brokers, lost, len(cl.Topics), &held))
				continue
			}
			fallthrough
		case t.Error != nil && semantics.IsRetriable(t.Error.Err()):
			// The topic's record could not be read now (the topics bucket
			// has no leader for a moment, say): the topic has not changed.
			// Kafka clients drop the partitions of a topic answered with an
			// error and none (librdkafka fails the records it holds for them
			// with _UNKNOWN_PARTITION), so it keeps those it last had, each
			// without a leader, and everything retriable, for them to ask
			// again.
			ti.Err = semantics.Errorf(semantics.ErrTopicNotReady, "topic %q: %s", t.Name, t.Error.Message)
			for p := range b.knownPartitions(t.Name) {
				ti.Partitions = append(ti.Partitions, kafka.PartitionInfo{Partition: p, Leader: -1, LeaderEpoch: -1,
					Replicas: []int32{}, ISR: []int32{}, Offline: []int32{}})
			}
			cl.Topics = append(cl.Topics, ti)
			continue
		case t.Error != nil:
			ti.Err = t.Error.Err()
		case t.State != semantics.TopicReady:
			ti.Err = semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s", t.Name, t.State)
		}
		b.mu.Lock()
		if t.State == semantics.TopicReady && t.Error == nil {
			b.parts[t.Name] = int32(len(t.Partitions))
		} else {
			delete(b.parts, t.Name)
		}
		b.mu.Unlock()
		for _, p := range t.Partitions {
			stream := semantics.StreamName(t.Name, p.Partition)
			pi := kafka.PartitionInfo{Partition: p.Partition, Leader: -1, Replicas: []int32{}, ISR: []int32{}, Offline: []int32{},
				LeaderEpoch: epochs[stream]}
			leaderName := ""
			switch {
			case cutOff:
				pi.LeaderEpoch = -1
			case p.Leader != "":
				pi.Leader, leaderName = brokerID(p.Leader), p.Leader
			case !b.n.ns.JetStreamIsClustered():
				pi.Leader = b.advertise.ID
			default:
				if leader, replicas, term := b.localLeader(stream); leader != "" {
					// Its epoch too: clients keep a leader they know over one
					// named without an epoch.
					pi.Leader, pi.LeaderEpoch, leaderName = brokerID(leader), term, leader
					p.Replicas, p.InSync = replicas, []string{leader}
				}
			}
			switch {
			case leaderName != "" && b.lostLeader(lost, leaderName, stream):
				held = append(held, heldPartition{topic: len(cl.Topics), part: len(ti.Partitions), stream: stream, silent: leaderName})
			case leaderName == "" && !cutOff && b.electing(lost, stream):
				held = append(held, heldPartition{topic: len(cl.Topics), part: len(ti.Partitions), stream: stream})
			case !cutOff && b.wokeStale(woke, leaderName, stream):
				held = append(held, b.wokeHeld(len(cl.Topics), len(ti.Partitions), stream, woke))
			}
			pi.FormerLeader = b.formerLeader(pi.Leader, semantics.StreamName(t.Name, p.Partition))
			for _, r := range p.Replicas {
				pi.Replicas = append(pi.Replicas, brokerID(r))
				if _, up := brokers[r]; !up {
					pi.Offline = append(pi.Offline, brokerID(r))
				}
			}
			for _, r := range p.InSync {
				pi.ISR = append(pi.ISR, brokerID(r))
			}
			if len(pi.Replicas) == 0 && pi.Leader >= 0 {
				pi.Replicas, pi.ISR = []int32{pi.Leader}, []int32{pi.Leader}
			}
			if pi.Leader >= 0 && ti.Err == nil {
				b.mu.Lock()
				b.leaders[semantics.StreamName(t.Name, p.Partition)] = pi
				b.mu.Unlock()
			}
			ti.Partitions = append(ti.Partitions, pi)
		}
		cl.Topics = append(cl.Topics, ti)
	}
	b.awaitElections(ctx, kafka.RequestBehind(ctx), &cl, held, asked.Add(kafkaElectionWait))
	if time.Since(asked) > kafkaSlowAnswer {
		b.refreshLeaders(&cl)
	}
	unnameLost(&cl, b.lostNow(), partitionNodes(md))
	return cl, nil
}

// kafkaSlowAnswer is how long a Metadata answer may take before its leaders,
// read at its start, are looked at again (refreshLeaders).
const kafkaSlowAnswer = 250 * time.Millisecond

// refreshLeaders names, in an answer that took long to read, each partition's
// leader as this node's replica knows it now where that is a later term than
// the one read at the answer's start. An answer read in 5 s (the first after
// a kill, waiting on the lost node) named the lost leader after the client had
// heard of its successor from another node; librdkafka 2.0.2, told the
// successor, then the lost leader, then the successor again, stayed with the
// lost leader's broker for good (docs/kafka.md).
func (b *kafkaBackend) refreshLeaders(cl *kafka.Cluster) {
	for ti := range cl.Topics {
		t := &cl.Topics[ti]
		if t.Err != nil {
			continue
		}
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			stream := semantics.StreamName(t.Name, p.Partition)
			if _, ok := b.n.epochs.cached(stream); !ok || p.LeaderEpoch < 0 {
				continue
			}
			leader, _, term := b.localLeader(stream)
			if leader == "" || term <= p.LeaderEpoch {
				continue
			}
			id := brokerID(leader)
			if id != p.Leader {
				p.Leader, p.ISR = id, []int32{id}
				p.FormerLeader = b.formerLeader(id, stream)
			}
			p.LeaderEpoch = term
			b.mu.Lock()
			b.leaders[stream] = *p
			b.mu.Unlock()
		}
	}
}

// kafkaDoubtWait bounds how long a Metadata answer waits while its node doubts
// it reaches its cluster (awaitOwnFate): from doubtAfter of silence (the
// earliest doubt; later after slow answers, see doubtWaitLocked) to counting
// itself cut off at isolatedAfter, and a probe's tick more.
const kafkaDoubtWait = isolatedAfter - doubtAfter + probeEvery

// awaitOwnFate holds a Metadata answer while the node doubts it reaches a
// majority of its cluster (isolationWatch.doubtful), until it hears from one
// again or counts itself cut off, then suspends its Kafka listener and resets
// the request's connection (ctx ends); at most kafkaDoubtWait. A node cut off
// knows no leader but its stale view, which names itself for the partitions it
// led: a client told so goes on sending there, and reads the metadata again
// only MetadataMinAge (franz-go: 5 s) after this answer, when its connection
// to the node is refused 2.5–3 s after the cut. Held and reset, the request
// is sent to another node at once, whose answer names the new leaders.
func (b *kafkaBackend) awaitOwnFate(ctx context.Context) error {
	probes := b.n.probes.Load()
	if probes == nil || !probes.doubtful(time.Now()) {
		return nil
	}
	deadline := time.NewTimer(kafkaDoubtWait)
	defer deadline.Stop()
	tick := time.NewTicker(kafkaElectionPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return nil
		case <-tick.C:
		}
		if !b.n.isolated.Load() && !probes.doubtful(time.Now()) {
			return nil
		}
	}
}

// kafkaElectionWait bounds how long, from its start, a Metadata answer waits
// for the new leader of a partition whose leader's node this node has lost
// (lostNodes: no route to it, or quiet to its probes for doubtAfter). The
// other nodes elect its successor once its routes are gone for electionSettle
// or it is silent (silentAfter): the first follower in line campaigns once it
// counts the leader gone or silent (within half a second of this node, their
// probes being apart by up to probeEvery), within electionCheckEvery, after
// rankedCampaignDelay, and wins within milliseconds. 1.5 s, the stream descriptions' wait (kafkaMetadataWait)
// included, keeps the answer within the 2 s a client bounding its requests to
// a few seconds gives Metadata (docs/kafka.md).
const kafkaElectionWait = 1500 * time.Millisecond

// kafkaElectionPoll is how often a held Metadata answer looks for the new
// leaders.
const kafkaElectionPoll = 25 * time.Millisecond

// heldPartition is a partition of a Metadata answer (cl.Topics[topic]
// .Partitions[part]) whose leader, on a node lost (silent), is being replaced,
// or which has no leader while a node is lost (silent ""), or whose leader this node, just
// woken from a pause (woke), does not know or may no longer be (wokeStale).
type heldPartition struct {
	topic, part int
	stream      string
	silent      string
	// For a woken node: when it woke, its group's term when the hold began
	// (-1: it had no leader), and whether the group, led by this node at that
	// term, was heard from by a quorum since the wake at the last look.
	woke      time.Time
	term      int32
	confirmed bool
}

// kafkaWakeFor is how long after the node woke from a pause its Metadata holds
// the partitions its stale view names no leader for, or itself
// (wokeStale): the election watch's electionRecentFor, for which the node
// calls no election. Within it the node hears its groups' current leaders
// (the next append or heartbeat, within a second), and a group it led before
// the pause either hears its peers again or steps down for their higher term.
const kafkaWakeFor = electionRecentFor

// wokeAt is when the node woke from a pause if that was within kafkaWakeFor of
// now, or now when the election watch has not checked the groups for
// electionGap (the node is waking now, before the watch noticed); zero
// otherwise.
func (b *kafkaBackend) wokeAt(now time.Time) time.Time {
	if c := b.n.electionChecked.Load(); c != 0 && now.Sub(time.Unix(0, c)) > electionGap {
		return now
	}
	if w := b.n.woke.Load(); w != 0 && now.Sub(time.Unix(0, w)) < kafkaWakeFor {
		return time.Unix(0, w)
	}
	return time.Time{}
}

// wokeStale reports whether the node woke at woke (zero: not lately), holds a
// replica of stream, and names leader ("": none) for it, which its view may
// have wrong: a group it led before the pause names it leader, at a stale
// term, until it hears its successor, and one between elections names none.
// Answered so, franz-go would send to the node, or keep the leader it knew,
// and read the metadata again only MetadataMinAge (5 s) later.
func (b *kafkaBackend) wokeStale(woke time.Time, leader, stream string) bool {
	if woke.IsZero() || leader != "" && leader != b.advertise.Name {
		return false
	}
	_, ok := b.n.epochs.cached(stream)
	return ok
}

// wokeHeld is the held partition cl.Topics[topic].Partitions[part] of stream,
// for a node that woke at woke (wokeStale).
func (b *kafkaBackend) wokeHeld(topic, part int, stream string, woke time.Time) heldPartition {
	h := heldPartition{topic: topic, part: part, stream: stream, woke: woke, term: -1}
	if leader, _, term := b.localLeader(stream); leader != "" {
		h.term = term
	}
	return h
}

// leadsSinceWake reports whether this node, which names itself leader of h's
// stream at term, leads it indeed: it won an election after the hold began (a
// term above h.term), or it was heard by a quorum of the group since it woke,
// at two looks in a row at the same term. A response at a higher term counts
// as heard an instant before the leader steps down for it; the second look
// sees the step-down.
func (b *kafkaBackend) leadsSinceWake(h *heldPartition, term int32) bool {
	if term > h.term {
		return true
	}
	g, ok := b.n.epochs.cached(h.stream)
	var rn natsserver.RaftNode
	if ok {
		rn = lookupRaftNode(b.n.ns, g.name)
	}
	if rn == nil || rn.State() != natsserver.Leader || int32(min(rn.Term(), math.MaxInt32)) != term {
		h.confirmed = false
		return false
	}
	peers, heard := rn.Peers(), 0
	for _, p := range peers {
		if p.ID == rn.ID() || p.Last.After(h.woke) {
			heard++
		}
	}
	was := h.confirmed
	h.confirmed = heard >= len(peers)/2+1
	return was && h.confirmed
}

// awaitElections waits, until deadline, for the held partitions of cl
// to get new leaders, and names each in cl with its epoch as soon as this
// node's replica knows it; those still without one keep what they had (the
// lost leader, which unnameLost turns into none; none; a woken node's own
// view, itself or none). A woken
// node's partition named itself is released once its leadership is confirmed
// (leadsSinceWake).
//
// A Kafka client reads the metadata again when its requests to a partition's
// leader fail, and then at most every MetadataMinAge (franz-go: 5 s): an answer
// that still names the lost leader, in the seconds between its last answer
// and its successor's election, makes the client wait those 5 s; one that
// names no leader (LEADER_NOT_AVAILABLE) as well, and franz-go keeps sending to
// the leader it knew meanwhile. The client loses less waiting for the election
// here. The node waits only while the leader stays lost (one that answers
// again leads on, and is named) and only for its own replica's RAFT view,
// which names the new leader the moment it wins; and not once behind is
// closed (kafka.RequestBehind: the client sent another request on the
// connection, whose answer waits for this one), when cl says what is known.
//
// However the hold ends, the node looks once more before it answers: an
// election won since its last look (up to a poll earlier) is named. Else the
// held answer would name the lost leader while the answer to the request
// behind it, read a moment later, names its successor; librdkafka 2.0.2,
// told the successor, then the lost leader, then the successor in quick
// succession, left the partition with the lost leader's broker and took the
// successor for a "preferred replica" it would not migrate away from (a
// produce stall of 1m52s in the kill drill, docs/kafka.md).
func (b *kafkaBackend) awaitElections(ctx context.Context, behind <-chan struct{}, cl *kafka.Cluster, held []heldPartition, until time.Time) {
	if len(held) == 0 {
		return
	}
	deadline := time.NewTimer(time.Until(until))
	defer deadline.Stop()
	poll := kafkaElectionPoll
	if d := b.electionPoll.Load(); d > 0 {
		poll = time.Duration(d)
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	// A woken node asks the others which of its held partitions they lead
	// (kafka_leads.go).
	var asker *leadsAsker
	var woken []string
	for _, h := range held {
		if !h.woke.IsZero() {
			woken = append(woken, h.stream)
		}
	}
	if len(woken) > 0 && b.n.ns.JetStreamIsClustered() {
		if asker = b.askLeads(woken); asker != nil {
			defer asker.close()
		}
	}
	for last := false; ; {
		left := held[:0]
		lost := b.lostNow()
		if asker != nil {
			asker.poll(time.Now())
		}
		for _, h := range held {
			if h.silent != "" && !lost.has(h.silent) {
				continue // it answers again: it leads
			}
			leader, replicas, term := b.localLeader(h.stream)
			stale := leader == "" || leader == h.silent || !h.woke.IsZero() && leader == b.advertise.Name && !b.leadsSinceWake(&h, term)
			if stale && !h.woke.IsZero() && asker != nil {
				if c, ok := asker.leader(h.stream); ok {
					leader, term, stale = c.node, c.term, false
				}
			}
			if stale {
				left = append(left, h)
				continue
			}
			pi := &cl.Topics[h.topic].Partitions[h.part]
			pi.Leader, pi.LeaderEpoch, pi.ISR = brokerID(leader), term, []int32{brokerID(leader)}
			if len(pi.Replicas) == 0 {
				for _, r := range replicas {
					pi.Replicas = append(pi.Replicas, brokerID(r))
				}
			}
			pi.FormerLeader = b.formerLeader(pi.Leader, h.stream)
			if cl.Topics[h.topic].Err == nil {
				b.mu.Lock()
				b.leaders[h.stream] = *pi
				b.mu.Unlock()
			}
		}
		held = left
		if len(held) == 0 || last {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			last = true
		case <-behind:
			last = true
		case <-tick.C:
		}
	}
}

// knownTopic is the topic as this node's writers know it from the topics
// bucket's watch, if it is ready.
func (b *kafkaBackend) knownTopic(name string) (semantics.TopicMeta, bool) {
	w := b.n.writers
	if w == nil {
		return semantics.TopicMeta{}, false
	}
	w.mu.Lock()
	t, ok := w.topics[name]
	w.mu.Unlock()
	return t, ok && t.State == semantics.TopicReady
}

// knownTopicInfo is the Metadata answer for topic t from this node's own view:
// each partition's leader as its replica here knows it (localLeader), with the
// leader's epoch, or, on a single node, this node; else the leader Metadata last
// answered for it; a partition whose leader the node does not know has none
// (LEADER_NOT_AVAILABLE, for clients to ask again).
//
// Its partitions whose leader's node is lost, or that have none while a node
// is lost (lost), are added to held (as the topic at index topic of the answer), for
// awaitElections.
func (b *kafkaBackend) knownTopicInfo(ctx context.Context, t semantics.TopicMeta, brokers map[string]kafka.Broker, lost lostNodes, topic int, held *[]heldPartition) kafka.TopicInfo {
	ti := kafka.TopicInfo{Name: t.Name}
	if id, err := base64.RawURLEncoding.DecodeString(t.ID); err == nil && len(id) == 16 {
		copy(ti.ID[:], id)
	}
	clustered := b.n.ns.JetStreamIsClustered()
	for p := range t.Config.Partitions {
		stream := semantics.StreamName(t.Name, p)
		pi := kafka.PartitionInfo{Partition: p, Leader: -1, LeaderEpoch: -1, Replicas: []int32{}, ISR: []int32{}, Offline: []int32{}}
		if !clustered {
			pi.Leader, pi.LeaderEpoch = b.advertise.ID, b.n.epochs.of(ctx, stream)
			pi.Replicas, pi.ISR = []int32{pi.Leader}, []int32{pi.Leader}
		} else if leader, replicas, term := b.localLeader(stream); leader != "" {
			pi.Leader, pi.LeaderEpoch = brokerID(leader), term
			pi.FormerLeader = b.formerLeader(pi.Leader, stream)
			pi.ISR = []int32{pi.Leader}
			for _, r := range replicas {
				pi.Replicas = append(pi.Replicas, brokerID(r))
				if _, up := brokers[r]; !up {
					pi.Offline = append(pi.Offline, brokerID(r))
				}
			}
			switch woke := b.wokeAt(time.Now()); {
			case b.lostLeader(lost, leader, stream):
				*held = append(*held, heldPartition{topic: topic, part: int(p), stream: stream, silent: leader})
			case b.wokeStale(woke, leader, stream):
				*held = append(*held, b.wokeHeld(topic, int(p), stream, woke))
			}
		} else {
			// The node's RAFT view does not name the leader (a peer whose
			// name it has not learnt yet): the leader Metadata last answered.
			b.mu.Lock()
			if last, ok := b.leaders[stream]; ok {
				pi = last
			}
			b.mu.Unlock()
			switch woke := b.wokeAt(time.Now()); {
			case b.electing(lost, stream):
				*held = append(*held, heldPartition{topic: topic, part: int(p), stream: stream})
			case b.wokeStale(woke, "", stream):
				*held = append(*held, b.wokeHeld(topic, int(p), stream, woke))
			}
		}
		ti.Partitions = append(ti.Partitions, pi)
	}
	return ti
}

// formerLeader reports whether leader, as a view of stream's leader, names this
// node although it does not lead the stream now (kafka.PartitionInfo's
// FormerLeader).
func (b *kafkaBackend) formerLeader(leader int32, stream string) bool {
	return leader == b.advertise.ID && b.n.ns.JetStreamIsClustered() && !b.n.isStreamLeader(stream)
}

// localLeader is the leader of a partition stream as this node's replica knows
// it, with the replicas of the stream and the leader's epoch (its RAFT term);
// "" when the node holds no replica whose group it knows (epochs caches it), or
// the group has no leader. A leader that was lost stays named until the others
// elect another, as in the streams' own answers.
func (b *kafkaBackend) localLeader(stream string) (string, []string, int32) {
	e := b.n.epochs
	g, ok := e.cached(stream)
	if !ok {
		g, ok = e.local(stream)
	}
	if !ok {
		return "", nil, -1
	}
	rz := b.n.ns.Raftz(&natsserver.RaftzOptions{AccountFilter: natsserver.DEFAULT_GLOBAL_ACCOUNT, GroupFilter: g.name})
	if rz == nil {
		return "", nil, -1
	}
	grp, ok := (*rz)[natsserver.DEFAULT_GLOBAL_ACCOUNT][g.name]
	if !ok || grp.Leader == "" {
		return "", nil, -1
	}
	names := map[string]string{grp.ID: b.n.ns.Name()}
	for id, p := range grp.Peers {
		names[id] = p.Name
	}
	leader := names[grp.Leader]
	if leader == "" {
		return "", nil, -1
	}
	var replicas []string
	for _, name := range names {
		if name != "" {
			replicas = append(replicas, name)
		}
	}
	slices.Sort(replicas)
	return leader, replicas, int32(min(grp.Term, math.MaxInt32))
}

// knownPartitions is how many partitions the topic had when this node last knew
// it: as the partition writers know it (from the topics bucket's watch), else as
// Metadata last answered it; 0 for a topic it never knew.
func (b *kafkaBackend) knownPartitions(name string) int32 {
	if w := b.n.writers; w != nil {
		w.mu.Lock()
		t, ok := w.topics[name]
		w.mu.Unlock()
		if ok && t.State == semantics.TopicReady {
			return t.Config.Partitions
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.parts[name]
}

// Coordinator implements kafka.Backend: the node leading the groups bucket's
// stream, which runs the group coordinator.
func (b *kafkaBackend) Coordinator(ctx context.Context, group string) (kafka.Broker, error) {
	if group == "" {
		return kafka.Broker{}, semantics.Errorf(semantics.ErrInvalidGroupID, "group id is empty")
	}
	if b.n.isolated.Load() {
		return kafka.Broker{}, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "this node is cut off from its cluster; ask another node")
	}
	if _, err := b.n.groups.current(); err == nil {
		return b.advertise, nil
	}
	if !b.n.ns.JetStreamIsClustered() {
		return kafka.Broker{}, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "the group coordinator is starting; retry")
	}
	// The coordinator runs on the groups bucket's leader: as this node's
	// replica of the bucket knows it, else as the bucket's description names
	// it. The description is the leader's to give, and one asked while the
	// leader hands its leadership off (a graceful stop) went unanswered for
	// JetStream's 5 s while the successor's replica knew at once.
	leader, _, _ := b.localLeader(b.n.groups.role.stream)
	if leader == "" || leader == b.advertise.Name {
		ictx, cancel := context.WithTimeout(ctx, coordinatorInfoWait)
		info, err := b.n.js.Stream(ictx, b.n.groups.role.stream)
		cancel()
		if err != nil {
			return kafka.Broker{}, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "find the group coordinator: %v; retry", err)
		}
		ci := info.CachedInfo()
		if ci.Cluster == nil || ci.Cluster.Leader == "" {
			return kafka.Broker{}, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "the groups bucket has no leader now; retry")
		}
		leader = ci.Cluster.Leader
	}
	br, ok := b.brokers(ctx, []string{leader}, b.lostNow())[leader]
	if !ok {
		return kafka.Broker{}, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "node %s coordinates groups and has no Kafka listener", leader)
	}
	return br, nil
}

// coordinatorInfoWait bounds how long FindCoordinator waits for the groups
// bucket's description when this node's replica names no other leader: a
// client asks again at once when told COORDINATOR_NOT_AVAILABLE, and the
// question then reaches the bucket's new leader.
const coordinatorInfoWait = time.Second

// The group requests go to the node's group service, which answers
// NOT_COORDINATOR when this node does not coordinate (the client asks
// FindCoordinator again). Joins and syncs wait as long as the NATS door lets them.

func (b *kafkaBackend) Join(ctx context.Context, req groups.JoinRequest) (groups.JoinResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, maxGroupWait)
	defer cancel()
	return b.n.Groups().Join(ctx, req)
}

func (b *kafkaBackend) Sync(ctx context.Context, req groups.SyncRequest) (groups.SyncResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, maxGroupWait)
	defer cancel()
	return b.n.Groups().Sync(ctx, req)
}

func (b *kafkaBackend) Heartbeat(ctx context.Context, req groups.HeartbeatRequest) error {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().Heartbeat(ctx, req)
}

func (b *kafkaBackend) Leave(ctx context.Context, req groups.LeaveRequest) error {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().Leave(ctx, req)
}

func (b *kafkaBackend) CommitOffsets(ctx context.Context, req groups.CommitRequest) error {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().CommitOffsets(ctx, req)
}

func (b *kafkaBackend) FetchOffsets(ctx context.Context, req groups.FetchRequest) ([]semantics.OffsetEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().FetchOffsets(ctx, req)
}

func (b *kafkaBackend) DescribeGroup(ctx context.Context, group string) (groups.GroupDescription, error) {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().DescribeGroup(ctx, group)
}

func (b *kafkaBackend) ListGroups(ctx context.Context) ([]groups.GroupSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().ListGroups(ctx)
}

// ProducerID implements kafka.Backend: 63 random bits, as the SDK's producers draw
// theirs (no round trip, no coordinator; a collision is not a practical concern).
func (b *kafkaBackend) ProducerID(context.Context) (int64, error) {
	return rand.Int64N(math.MaxInt64), nil
}

// CreateTopic implements kafka.Backend: the configs by Kafka's names are read by
// the rules every door shares (semantics.AlterConfig), plus cleanup.policy, which
// only a create sets.
func (b *kafkaBackend) CreateTopic(ctx context.Context, name string, partitions int32, replicas int, configs map[string]string, validateOnly bool) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	given := semantics.TopicConfig{Partitions: partitions, Replicas: replicas}
	set := map[string]string{}
	for k, v := range configs {
		if k != "cleanup.policy" {
			set[k] = v
			continue
		}
		switch v {
		case "delete":
		case "compact":
			given.Compact = true
		default:
			return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidConfig,
				"topic %q: cleanup.policy=%s is not supported: use delete or compact", name, v)
		}
	}
	given, err := semantics.WithConfig(name, given, set)
	if err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("topic %q: %w", name, err)
	}
	if !validateOnly {
		t, _, err := b.n.admin.CreateTopic(ctx, semantics.CreateTopicRequest{Name: name, Config: given})
		return t, err
	}
	cfg := given.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("topic %q: %w", name, err)
	}
	if peers := b.n.clusterSize(); cfg.Replicas > peers {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidReplicationFactor,
			"topic %q: %d replicas cannot be placed: the cluster has %d node(s) with JetStream", name, cfg.Replicas, peers)
	}
	if _, err := b.n.admin.meta.getTopic(ctx, name); err == nil {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrTopicExists, "topic %q already exists", name)
	} else if !errors.Is(err, semantics.ErrUnknownTopic) {
		return semantics.TopicMeta{}, err
	}
	return semantics.TopicMeta{Name: name, Config: cfg, State: semantics.TopicReady, Overrides: semantics.ConfigOverrides(given)}, nil
}

// DeleteTopic implements kafka.Backend.
func (b *kafkaBackend) DeleteTopic(ctx context.Context, name string) error {
	_, err := b.n.admin.DeleteTopic(ctx, semantics.DeleteTopicRequest{Name: name})
	return err
}

// AddPartitions implements kafka.Backend.
func (b *kafkaBackend) AddPartitions(ctx context.Context, name string, total int32, validateOnly bool) error {
	if err := semantics.ValidateTopicName(name); err != nil {
		return err
	}
	if !validateOnly {
		_, err := b.n.admin.AddPartitions(ctx, semantics.AddPartitionsRequest{Name: name, Total: total})
		return err
	}
	t, err := b.topicMeta(ctx, name)
	if err != nil {
		return err
	}
	if total <= t.Config.Partitions || total > semantics.MaxPartitions {
		return semantics.Errorf(semantics.ErrInvalidPartitions,
			"topic %q has %d partitions: the new count %d must be larger, and at most %d", name, t.Config.Partitions, total, semantics.MaxPartitions)
	}
	return nil
}

// Topic implements kafka.Backend.
func (b *kafkaBackend) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return b.n.admin.meta.getTopic(ctx, name)
}

// TopicByID implements kafka.Backend: from the topics the writers know (every
// topic, kept current by their watch), else from the topics bucket.
func (b *kafkaBackend) TopicByID(ctx context.Context, id [16]byte) (string, error) {
	want := base64.RawURLEncoding.EncodeToString(id[:])
	if w := b.n.writers; w != nil {
		w.mu.Lock()
		for name, t := range w.topics {
			if t.ID == want && t.State == semantics.TopicReady {
				w.mu.Unlock()
				return name, nil
			}
		}
		w.mu.Unlock()
	}
	all, err := b.n.admin.ListTopics(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range all {
		if t.ID == want && t.State == semantics.TopicReady {
			return t.Name, nil
		}
	}
	return "", semantics.Errorf(semantics.ErrUnknownTopic, "no topic has id %s", want)
}

// DeleteGroup implements kafka.Backend.
func (b *kafkaBackend) DeleteGroup(ctx context.Context, group string) error {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	return b.n.Groups().DeleteGroup(ctx, group)
}

// DeleteOffsets implements kafka.Backend (OffsetDelete) on the coordinating node:
// a group with members that are assigned a partition of topic keeps its offsets
// there (GROUP_SUBSCRIBED_TO_TOPIC); otherwise the commits of the partitions given
// are deleted, through the coordinator, which fences the delete as a group's
// (coordinator.Coordinator.DeleteOffsets).
func (b *kafkaBackend) DeleteOffsets(ctx context.Context, group, topic string, partitions []int32) error {
	ctx, cancel := context.WithTimeout(ctx, quickGroupWait)
	defer cancel()
	g := b.n.Groups()
	desc, err := g.DescribeGroup(ctx, group)
	if err != nil {
		return err
	}
	if desc.State != groups.Empty && desc.State != groups.Dead {
		for _, m := range desc.Members {
			for _, tp := range m.Partitions {
				if tp.Topic == topic {
					return semantics.Errorf(semantics.ErrGroupSubscribedToTopic,
						"group %q is consuming topic %q (member %s): stop its members first", group, topic, m.MemberID)
				}
			}
		}
	}
	if len(desc.Members) == 0 && desc.State == groups.Dead {
		commits, err := b.n.groups.offsets.List(ctx, group)
		if err != nil {
			return err
		}
		if len(commits) == 0 {
			return semantics.Errorf(semantics.ErrGroupIDNotFound, "group %q does not exist", group)
		}
	}
	parts := make([]semantics.TopicPartition, len(partitions))
	for i, p := range partitions {
		parts[i] = semantics.TopicPartition{Topic: topic, Partition: p}
	}
	return g.DeleteOffsets(ctx, group, parts)
}

// AlterConfig implements kafka.Backend with the rules every door shares
// (semantics.AlterConfig); validate-only applies them to the record read now and
// changes nothing.
func (b *kafkaBackend) AlterConfig(ctx context.Context, topic string, set map[string]string, del []string, validateOnly bool) error {
	if !validateOnly {
		_, err := b.n.admin.AlterTopicConfig(ctx, semantics.AlterTopicConfigRequest{Name: topic, Set: set, Delete: del})
		return err
	}
	t, err := b.topicMeta(ctx, topic)
	if err != nil {
		return err
	}
	_, _, err = semantics.AlterConfig(t, set, del)
	return err
}

// DeleteRecords implements kafka.Backend (qxd's trim).
func (b *kafkaBackend) DeleteRecords(ctx context.Context, topic string, p int32, offset int64) (int64, error) {
	r, err := b.n.admin.DeleteRecords(ctx, semantics.DeleteRecordsRequest{Name: topic, Partition: p, Offset: offset})
	return r.LogStartOffset, err
}
