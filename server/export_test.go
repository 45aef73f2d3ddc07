package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// HandOffVia exposes handOffVia to the tests: it asks node leader to hand the
// leadership of stream off, preferring node prefer.
func (n *Node) HandOffVia(ctx context.Context, leader, stream, prefer string) error {
	return n.handOffVia(ctx, leader, stream, prefer)
}

// VerifyOnNode exposes verifyOn to the tests: it makes node lead partition p of
// topic and reads its whole copy back.
func (a *Admin) VerifyOnNode(ctx context.Context, topic string, p int32, node string) (semantics.VerifyPartitionResponse, error) {
	t, err := a.meta.getTopic(ctx, topic)
	if err != nil {
		return semantics.VerifyPartitionResponse{}, err
	}
	return a.verifyOn(ctx, t, p, node)
}

// CheckpointRecord exposes getCheckpoint to the tests: partition p's
// checkpoint in the partitions bucket, read as a replica holds it (a KV get).
func (a *Admin) CheckpointRecord(ctx context.Context, topicID string, p int32) (semantics.Checkpoint, error) {
	return a.meta.getCheckpoint(ctx, topicID, p)
}

// KafkaRead exposes the Kafka listener's fetch read to the tests: what a fetch of
// partition p of topic from offset is answered with, on node n.
func (n *Node) KafkaRead(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (kafka.ReadResult, error) {
	return n.kafka.b.Read(ctx, topic, p, offset, maxBytes)
}

// DamageRecord exposes getDamage to the tests: the damage record of partition p
// of the topic whose id is topicID, read from the partitions bucket's leader.
func (a *Admin) DamageRecord(ctx context.Context, topicID string, p int32) (semantics.DamageRecord, error) {
	rec, _, err := a.meta.getDamage(ctx, topicID, p)
	return rec, err
}

// KafkaCutOff exposes kafkaCutOff to the tests: the Kafka listener as the node
// serves it while it counts itself cut off from its cluster (suspended), or not.
func (n *Node) KafkaCutOff(isolated bool) { n.kafkaCutOff(isolated) }

// CountsSilent reports whether n counts node silent now: it answered n's probes
// once and none for a while (isolationWatch.silent).
func (n *Node) CountsSilent(node string) bool {
	w := n.probes.Load()
	return w != nil && w.silent(node, time.Now())
}

// KafkaBrokers exposes brokers to the tests: the nodes of want whose Kafka
// addresses n knows or learns, by name, with the nodes n has lost now.
func (n *Node) KafkaBrokers(ctx context.Context, want []string) []string {
	var out []string
	for name := range n.kafka.b.brokers(ctx, want, n.kafka.b.lostNow()) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// KafkaMetadataWaitEnd exposes cutMetadataWait to the tests: a Metadata
// answer's wait for JetStream's view, bounded to d, with no request behind it.
// It returns how the wait ended (context.Canceled: cut short).
func (n *Node) KafkaMetadataWaitEnd(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	go n.kafka.b.cutMetadataWait(ctx, cancel, nil)
	<-ctx.Done()
	return ctx.Err()
}

// HasRouteTo reports whether n has a route to node.
func (n *Node) HasRouteTo(node string) bool { return routedServers(n.ns)[node] }

// SetKafkaElectionPoll makes n's held Metadata answers look for new leaders
// every d instead of every kafkaElectionPoll.
func (n *Node) SetKafkaElectionPoll(d time.Duration) { n.kafka.b.electionPoll.Store(int64(d)) }

// KafkaLocalLeader is stream's leader as n's replica knows it ("": none).
func (n *Node) KafkaLocalLeader(stream string) string {
	leader, _, _ := n.kafka.b.localLeader(stream)
	return leader
}

// KafkaRefreshLeaders exposes refreshLeaders to the tests: partition p of topic
// answered with leader at epoch, looked at again. It returns the leader and
// epoch as answered then.
func (n *Node) KafkaRefreshLeaders(topic string, p, leader, epoch int32) (int32, int32) {
	cl := kafka.Cluster{Topics: []kafka.TopicInfo{{Name: topic, Partitions: []kafka.PartitionInfo{{Partition: p, Leader: leader, LeaderEpoch: epoch}}}}}
	n.kafka.b.refreshLeaders(&cl)
	pi := cl.Topics[0].Partitions[0]
	return pi.Leader, pi.LeaderEpoch
}

// KafkaAwaitElection exposes awaitElections to the tests: a Metadata answer held
// for a new leader of stream, until until, or until behind is closed (a request
// behind it on its connection). It returns the partition's leader as answered.
func (n *Node) KafkaAwaitElection(ctx context.Context, behind <-chan struct{}, stream string, until time.Time) int32 {
	cl := kafka.Cluster{Topics: []kafka.TopicInfo{{Partitions: []kafka.PartitionInfo{{Leader: -1}}}}}
	n.kafka.b.awaitElections(ctx, behind, &cl, []heldPartition{{stream: stream}}, until)
	return cl.Topics[0].Partitions[0].Leader
}

// WriterReplay exposes the writer's replay to the tests: the messages a load of
// partition p of topic on n replays from sequence from on (up to the stream's
// last), read as the writer reads them (fromStore: from the node's store when
// it leads the stream, else through NATS, or through NATS only).
func (n *Node) WriterReplay(ctx context.Context, topic string, p int32, from uint64, fromStore bool) ([]partition.Msg, error) {
	t, err := n.admin.meta.getTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	w := newWriter(n.writers.env, t, p, nil)
	st, err := w.reader.StreamInfo(ctx)
	if err != nil {
		return nil, err
	}
	replayAt := w.natsReplayer(st)
	if fromStore {
		replayAt = w.replayer(st, w.localStore())
	}
	var out []partition.Msg
	for seq := from; seq <= st.LastSeq; {
		m, err := replayAt(ctx, seq)
		if errors.Is(err, semantics.ErrNoBatch) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		seq = m.Seq + 1
	}
	return out, nil
}

// StoreDurability exposes the settings of partition stream stream's file store on
// node n that its write path reads: whether it fsyncs each write before it
// returns (syncAlways) and writes in place rather than gathering writes for a
// flusher (fip). ok is false when the node holds no such store.
func (n *Node) StoreDurability(stream string) (fsyncEach, inPlace, ok bool) {
	s, _, _ := storeSyncOf(n.ns, stream, nil, "")
	if s == nil {
		return false, false, false
	}
	mu := s.mu()
	mu.RLock()
	defer mu.RUnlock()
	return s.syncsAlways(), *s.fip(), true
}

// MismatchStoreLayout has n's writers take the file store of every partition
// stream for laid out otherwise than qxd expects, for reason why, as with a
// nats-server qxd was not built against: they cannot set a store's durability
// (StoreDurability still reads the store's own settings).
func (n *Node) MismatchStoreLayout(why string) { n.storeMismatch.Store(&why) }

// SetDurabilityTick has n's writers keep their stores' durability on their
// background ticks (on, the default) or not: off, only the start of a writer,
// an acknowledgement and a change of the topic's config apply it.
func (n *Node) SetDurabilityTick(on bool) { n.noDurabilityTick.Store(!on) }

// WriterLoadFacts is what a writer's load reads of its log besides the replay:
// the stream's state, the last message on the checkpoint subject (or the
// error: semantics.ErrNoBatch) and the abort markers.
type WriterLoadFacts struct {
	State      partition.StreamState
	Checkpoint partition.Msg
	CkErr      error
	Aborted    []partition.Msg
}

// WriterLoadFacts exposes a writer's load lookups to the tests: read as the
// writer reads them (fromStore: from the node's store when it leads the
// stream, else with JetStream API requests only).
func (n *Node) WriterLoadFacts(ctx context.Context, topic string, p int32, fromStore bool) (WriterLoadFacts, error) {
	t, err := n.admin.meta.getTopic(ctx, topic)
	if err != nil {
		return WriterLoadFacts{}, err
	}
	w := newWriter(n.writers.env, t, p, nil)
	var local *leaderStore
	if fromStore {
		local = w.localStore()
	}
	var f WriterLoadFacts
	if f.State, err = w.streamState(ctx, local); err != nil {
		return f, err
	}
	f.Checkpoint, f.CkErr = w.lastOn(ctx, local, semantics.CheckpointSubject(topic, p))
	f.Aborted, err = w.abortMarkers(ctx, f.State, local)
	return f, err
}

// ProbeState describes n's isolation watch for a failing test's log: when each
// node last answered and had a route, and the watch's marks.
func (n *Node) ProbeState() string {
	w := n.probes.Load()
	if w == nil {
		return "no isolation watch"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Millisecond).String() + " ago"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last check %s, ran %s, on time since %s, routes since %s, isolated %v, armed %v, size %d;",
		ago(w.last), ago(w.ran), ago(w.onTimeSince), ago(w.routesSince), w.isolated, w.armed, w.size)
	for _, node := range slices.Sorted(maps.Keys(w.routeSeen)) {
		fmt.Fprintf(&b, " %s answered %s, route seen %s;", node, ago(w.heard[node]), ago(w.routeSeen[node]))
	}
	return b.String()
}

// ProbesSawRoute reports whether n's isolation watch has seen a route to node.
func (n *Node) ProbesSawRoute(node string) bool {
	w := n.probes.Load()
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.routeSeen[node].IsZero()
}

// KafkaAskLeads asks the other nodes which of streams they lead, as a woken
// node's held Metadata answer does, until each is answered or ctx ends. It
// returns each answered stream's leader and term.
func (n *Node) KafkaAskLeads(ctx context.Context, streams []string) map[string]LeadClaim {
	a := n.kafka.b.askLeads(streams)
	if a == nil {
		return nil
	}
	defer a.close()
	for ctx.Err() == nil && len(a.claims) < len(streams) {
		time.Sleep(10 * time.Millisecond)
		a.poll(time.Now())
	}
	out := map[string]LeadClaim{}
	for s, c := range a.claims {
		out[s] = LeadClaim{Node: c.node, Term: c.term}
	}
	return out
}

// LeadClaim is a node's word that it leads a stream's RAFT group at a term.
type LeadClaim struct {
	Node string
	Term int32
}

// KafkaLocalTerm is the term of stream's RAFT group as n's replica knows it
// (-1: n holds no replica).
func (n *Node) KafkaLocalTerm(stream string) int32 {
	if rn := n.kafka.b.raftNodeOf(stream); rn != nil {
		return raftTerm(rn)
	}
	return -1
}

// HoldReplicaBehind stops n's replica of stream, a follower, from applying what
// the stream's RAFT group commits (nats-server's RaftNode.PauseApply): it goes
// on storing and acknowledging the group's entries, so the other replicas still
// make a quorum, but its store keeps what it held, as a replica that lags its
// leader does, and a consumer JetStream places on it (a KV watcher's) reads
// that. release applies what it missed.
func (n *Node) HoldReplicaBehind(ctx context.Context, stream string) (release func(), err error) {
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.RaftGroup == "" {
		return nil, fmt.Errorf("stream %s is not replicated", stream)
	}
	rn := lookupRaftNode(n.ns, info.Cluster.RaftGroup)
	if rn == nil {
		return nil, fmt.Errorf("node %s holds no replica of stream %s", n.Name(), stream)
	}
	if err := rn.PauseApply(); err != nil {
		return nil, fmt.Errorf("hold %s's replica of stream %s: %w", n.Name(), stream, err)
	}
	return sync.OnceFunc(rn.ResumeApply), nil
}

// LeadsMeta says whether the node leads JetStream's meta group.
func (n *Node) LeadsMeta() bool { return n.ns.JetStreamIsLeader() }

// CampaignMeta makes the node's replica of JetStream's meta group campaign
// (an up-to-date replica wins at a higher term and the leader steps down).
func (n *Node) CampaignMeta() error {
	rn := lookupRaftNode(n.ns, metaGroup)
	if rn == nil {
		return fmt.Errorf("node %s holds no replica of the meta group", n.Name())
	}
	return rn.Campaign()
}
