package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// Partition leadership in a cluster: spreading partition leaders over the nodes (as
// Kafka's preferred-leader election does), and handing leadership off before a node
// stops.

// stepDown asks stream's leader to step down, preferring node prefer ("" lets
// JetStream choose).
func (n *Node) stepDown(ctx context.Context, stream, prefer string) error {
	var body []byte
	if prefer != "" {
		body, _ = json.Marshal(map[string]any{"placement": map[string]string{"preferred": prefer}})
	}
	return n.jsAPI(ctx, semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, stream), body, "step down "+stream)
}

type handOffRequest struct {
	Stream string `json:"stream"`
	Prefer string `json:"prefer,omitempty"`
}

// handOff moves the leadership of stream away from this node, preferring node prefer:
// it stops the stream's writer first, so that nothing more is appended from here,
// then steps the stream down. A writer on the new leader then loads a log that no
// longer moves under it.
func (n *Node) handOff(ctx context.Context, stream, prefer string) error {
	if n.writers != nil {
		n.writers.release(ctx, stream)
	}
	n.handingOff.Store(time.Now().Add(handOffElects).UnixNano())
	err := n.stepDown(ctx, stream, prefer)
	if err != nil && n.writers != nil {
		n.writers.unhold(stream)
	}
	return err
}

// handOffLed is handOff for a stream this node leads (see ledStreams): the
// step-down is made in process, on the stream's RAFT group, rather than through
// the JetStream API, whose requests queue behind the others on a loaded node.
func (n *Node) handOffLed(ctx context.Context, s ledStream, prefer string) error {
	rn := lookupRaftNode(n.ns, s.group)
	if rn == nil {
		n.log.Debug("stream's RAFT group not found on this node: stepping it down through the JetStream API", "stream", s.name)
		return n.handOff(ctx, s.name, prefer)
	}
	if n.writers != nil {
		n.writers.release(ctx, s.name)
	}
	n.handingOff.Store(time.Now().Add(handOffElects).UnixNano())
	var err error
	if id := s.ids[prefer]; id != "" {
		err = rn.StepDown(id)
	} else {
		err = rn.StepDown()
	}
	if err != nil && n.writers != nil {
		n.writers.unhold(s.name)
	}
	return err
}

// handOffElects bounds how long a hand-off's successor takes to be elected
// after the step-down (milliseconds, as a rule), for the election watch.
const handOffElects = 2 * time.Second

// handOffVia asks node leader, which leads stream, to hand its leadership off (see
// handOff). A node that does not answer (it is stopping, or is of a version without
// hand-off) has the stream stepped down directly.
func (n *Node) handOffVia(ctx context.Context, leader, stream, prefer string) error {
	if leader == n.cfg.Name {
		return n.handOff(ctx, stream, prefer)
	}
	body, _ := json.Marshal(handOffRequest{Stream: stream, Prefer: prefer})
	rctx, cancel := context.WithTimeout(ctx, writerStopTimeout+5*time.Second)
	defer cancel()
	resp, err := n.nc.RequestWithContext(rctx, semantics.HandOffSubject(leader), body)
	if errors.Is(err, nats.ErrNoResponders) {
		return n.stepDown(ctx, stream, prefer)
	}
	if err != nil {
		return fmt.Errorf("hand off %s from %s: %w", stream, leader, err)
	}
	if len(resp.Data) > 0 {
		return fmt.Errorf("hand off %s from %s: %s", stream, leader, resp.Data)
	}
	return nil
}

// serveHandOff answers a hand-off request: empty on success, else the error's text.
func (n *Node) serveHandOff(m *nats.Msg) {
	var req handOffRequest
	err := json.Unmarshal(m.Data, &req)
	if err == nil && req.Stream == "" {
		err = errors.New("no stream named")
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), writerStopTimeout+5*time.Second)
		err = n.handOff(ctx, req.Stream, req.Prefer)
		cancel()
	}
	var out []byte
	if err != nil {
		out = []byte(err.Error())
	}
	_ = m.Respond(out)
}

// jsAPI sends a JetStream API request that answers with at most an error.
func (n *Node) jsAPI(ctx context.Context, subject string, body []byte, what string) error {
	resp, err := n.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var out struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if out.Error != nil {
		return fmt.Errorf("%s: %s", what, out.Error.Description)
	}
	return nil
}

// BalanceLeaders moves partition leadership so that no node leads more than its share
// (the partitions' count over the nodes, rounded up) of the given topics' partitions:
// each over-loaded leader steps down in favour of the replica that leads the fewest.
// It returns how many leaderships moved.
func (n *Node) BalanceLeaders(ctx context.Context, topics []semantics.TopicMeta) (int, error) {
	if !n.cfg.clustered() {
		return 0, nil
	}
	type part struct {
		stream   string
		leader   string
		replicas []string
	}
	var parts []part
	for _, t := range topics {
		if t.Config.Replicas < 2 {
			continue
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			st, err := partition.NewReader(n.nc, t.Name, p, false).StreamInfo(ctx)
			if err != nil {
				return 0, err
			}
			parts = append(parts, part{stream: semantics.StreamName(t.Name, p), leader: st.Leader, replicas: st.Replicas})
		}
	}
	if len(parts) == 0 {
		return 0, nil
	}
	count := map[string]int{}
	for _, p := range parts {
		count[p.leader]++
		for _, r := range p.replicas {
			count[r] += 0
		}
	}
	nodes := len(count)
	share := (len(parts) + nodes - 1) / nodes
	moved := 0
	for _, p := range parts {
		if count[p.leader] <= share {
			continue
		}
		// The replica leading the fewest partitions takes over.
		cands := slices.DeleteFunc(slices.Clone(p.replicas), func(r string) bool { return r == p.leader })
		if len(cands) == 0 {
			continue
		}
		slices.SortFunc(cands, func(a, b string) int { return count[a] - count[b] })
		to := cands[0]
		if count[to]+1 > share {
			continue
		}
		if err := n.handOffVia(ctx, p.leader, p.stream, to); err != nil {
			n.log.Debug("leader not moved", "stream", p.stream, "err", err)
			continue
		}
		count[p.leader]--
		count[to]++
		moved++
	}
	return moved, nil
}

// handOffPartitions hands off, all at once, the leadership of every partition
// this node leads that another replica can take over, each as soon as its own
// writer has answered what it had in flight (handOff): a partition goes without
// a writer from its writer's stop until its new leader's writer starts, and
// that gap is not to include the stop of the node's other writers, of its other
// services or the step-down of other streams, as it did when every writer
// stopped first and the streams were then stepped down one after another (a
// produce call waited up to 1.16 s on a loaded machine). What is left for
// handOffLeadership is the buckets and the partitions whose hand-off failed.
// It returns the streams handed off.
func (n *Node) handOffPartitions(ctx context.Context) []string {
	if !n.cfg.clustered() || n.writers == nil || n.ns.NumRoutes() == 0 {
		return nil
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		handed []string
	)
	for _, s := range n.ledStreams() {
		if _, _, ok := semantics.ParseStreamName(s.name); !ok || len(s.takers) == 0 {
			continue
		}
		prefer := ""
		if len(s.current) > 0 {
			prefer = s.current[0]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.handOffLed(ctx, s, prefer); err != nil {
				n.log.Debug("hand-off failed", "stream", s.name, "err", err)
				return
			}
			mu.Lock()
			handed = append(handed, s.name)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return handed
}

// handOffLeadership steps down from every stream this node leads that another
// replica can take over, so that a node that stops on purpose (a rolling restart)
// does not leave partitions, buckets or the group coordinator leaderless until an
// election timeout. It waits, bounded by ctx, until the node leads none of them. A
// stream whose other replicas are all down (the last nodes of a cluster
// stopping) cannot be handed off: it is not waited for, and one warning names them.
// It returns the streams handed off.
func (n *Node) handOffLeadership(ctx context.Context) []string {
	if !n.cfg.clustered() {
		return nil
	}
	led := n.ledStreams()
	if len(led) == 0 {
		return nil
	}
	// With no route to any peer, none can take a leadership, whatever JetStream
	// still counts as up (a peer killed a moment ago, see lastUp).
	reachable := n.ns.NumRoutes() > 0
	heir := coordinatorHeir(led)
	var stuck, moving []string
	var wg sync.WaitGroup
	for _, s := range led {
		if len(s.takers) == 0 || !reachable {
			stuck = append(stuck, s.name)
			continue
		}
		moving = append(moving, s.name)
		// All at once: one after another, each waited for the answer of the
		// one before.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.stepDown(ctx, s.name, heir[s.name]); err != nil {
				n.log.Debug("step down failed", "stream", s.name, "err", err)
			}
		}()
	}
	wg.Wait()
	for len(moving) > 0 && ctx.Err() == nil {
		still := map[string]bool{}
		for _, s := range n.ledStreams() {
			still[s.name] = true
		}
		moving = slices.DeleteFunc(moving, func(s string) bool { return !still[s] })
		if len(moving) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	left := append(stuck, moving...)
	var handed []string
	for _, s := range led {
		if !slices.Contains(left, s.name) {
			handed = append(handed, s.name)
		}
	}
	if len(left) == 0 {
		n.log.Info("leadership handed off", "streams", len(led))
		return handed
	}
	slices.Sort(left)
	names := make([]string, len(left))
	for i, s := range left {
		names[i] = leadershipName(s)
	}
	n.log.Warn("leaderships not handed off: no other replica is up to take them; they move when the other nodes are back",
		"leaderships", strings.Join(names, ", "), "handed_off", len(led)-len(left))
	return handed
}

// handOffMeta steps this node down from JetStream's meta group, in process, if it
// leads it and another node is reachable, and returns the group's RAFT node if it
// did. Left to lame-duck mode, the step-down there (nats-server's
// transferRaftLeaders) made the node wait a whole second before it shut its
// JetStream down and sent its clients away. It comes after the other hand-offs
// and the wait for their successors, which read stream leaderships through the
// meta group: made with them, the election left them without a meta leader to
// ask (a stop took 8.5 s).
func (n *Node) handOffMeta() natsserver.RaftNode {
	if !n.ns.JetStreamIsLeader() || n.ns.NumRoutes() == 0 {
		return nil
	}
	rn := lookupRaftNode(n.ns, metaGroup)
	if rn == nil {
		return nil
	}
	if err := rn.StepDown(); err != nil {
		n.log.Debug("meta group step-down failed; lame-duck mode steps it down", "err", err)
		return nil
	}
	return rn
}

// awaitMetaHandedOff waits, until ctx ends, until rn (the meta group's RAFT node
// that handOffMeta stepped down; nil: nothing to wait for) no longer leads: one
// that still does when lame-duck mode begins is stepped down there again, and
// the second waited for.
func (n *Node) awaitMetaHandedOff(ctx context.Context, rn natsserver.RaftNode) {
	for rn != nil && rn.Leader() && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// successorsWait bounds how long a stopping node waits, from the start of its
// hand-offs, for the successors of the leaderships it handed off (awaitSuccessors)
// before it sends its clients away all the same.
const successorsWait = 3 * time.Second

// successorProbeWait bounds one question to a partition's writer while a
// stopping node waits for its successor.
const successorProbeWait = 250 * time.Millisecond

// successorWriterWait is how long after a partition's successor was elected a
// stopping node waits for its writer to answer: a writer starts within
// milliseconds of its node's election as a rule, and one that does not may be on
// a node that is stopping too (a whole cluster stopped at once), which starts
// none.
const successorWriterWait = time.Second

// awaitSuccessors waits, until ctx ends, until each stream handed off has a
// leader that is another node and, for a partition, until the writer there
// answers a request sent through this node (the partition's last stable offset,
// which only a running writer answers; this node's writers have stopped): a
// produce that this node's clients send meanwhile reaches the successor's writer.
// Only then are the clients sent away (lame-duck mode): before, they were sent
// while the successors were still being elected. A partition whose successor's
// writer has not answered successorWriterWait after its election is no longer
// waited for. It returns the streams left without a serving successor.
func (n *Node) awaitSuccessors(ctx context.Context, streams []string) []string {
	waiting := slices.Clone(streams)
	var given []string
	elected := map[string]time.Time{}
	for len(waiting) > 0 && ctx.Err() == nil && n.nc != nil && !n.nc.IsClosed() {
		leaders := n.streamLeaders()
		now := time.Now()
		served := make([]bool, len(waiting))
		var wg sync.WaitGroup
		for i, s := range waiting {
			if l := leaders[s]; l == "" || l == n.cfg.Name {
				continue
			}
			topic, p, ok := semantics.ParseStreamName(s)
			if !ok {
				served[i] = true
				continue
			}
			if _, ok := elected[s]; !ok {
				elected[s] = now
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				served[i] = n.writerAnswers(ctx, topic, p)
			}()
		}
		wg.Wait()
		i := 0
		waiting = slices.DeleteFunc(waiting, func(s string) bool {
			i++
			if !served[i-1] && !elected[s].IsZero() && time.Since(elected[s]) >= successorWriterWait {
				given = append(given, s)
				return true
			}
			return served[i-1]
		})
		if len(waiting) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(25 * time.Millisecond):
			}
		}
	}
	return append(given, waiting...)
}

// writerAnswers reports whether the writer of partition p of topic answers a
// request for its last stable offset through this node's connection within
// successorProbeWait.
func (n *Node) writerAnswers(ctx context.Context, topic string, p int32) bool {
	ctx, cancel := context.WithTimeout(ctx, successorProbeWait)
	defer cancel()
	body, _ := json.Marshal(semantics.StableRequest{From: math.MaxInt64})
	resp, err := n.nc.RequestWithContext(ctx, semantics.LSOSubject(topic, p), body)
	if err != nil {
		return false
	}
	var r semantics.StableReply
	return json.Unmarshal(resp.Data, &r) == nil && r.Error == nil
}

// streamLeaders maps each replicated stream this node holds a replica of to the
// name of its leader as this node sees it ("" while it has none).
func (n *Node) streamLeaders() map[string]string {
	info, err := n.ns.Jsz(&natsserver.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, acc := range info.AccountDetails {
		for _, s := range acc.Streams {
			if s.Cluster != nil {
				out[s.Name] = s.Cluster.Leader
			}
		}
	}
	return out
}

// leadershipName is how a led stream is named to a person: topic/partition for a
// partition, the bucket's name for a KV bucket.
func leadershipName(stream string) string {
	if t, p, ok := semantics.ParseStreamName(stream); ok {
		return semantics.PartitionString(t, p)
	}
	if b, ok := strings.CutPrefix(stream, "KV_"); ok {
		return "bucket " + b
	}
	return "stream " + stream
}

// ledStream is a replicated stream this node leads, with the replicas that could
// take its leadership over: those that are up (JetStream picks one that is current),
// and of those the ones that are current.
type ledStream struct {
	name    string
	takers  []string
	current []string
	group   string            // its RAFT group
	ids     map[string]string // the replicas' RAFT peer ids by node name
}

// coordinatorHeir names, when this node leads the groups bucket, the one node to
// hand it and the follower buckets this node leads too (leaders_follow.go), so that
// the coordinators and the buckets they write stay led from one node across a
// graceful stop: a replica of each that is up, current ones first. Streams it
// does not name are stepped down without a preference.
func coordinatorHeir(led []ledStream) map[string]string {
	groups := semantics.KVStream(semantics.GroupsBucket)
	var mine []ledStream
	leadsGroups := false
	for _, s := range led {
		if s.name == groups || slices.ContainsFunc(followerBuckets, func(b string) bool { return s.name == semantics.KVStream(b) }) {
			mine = append(mine, s)
			leadsGroups = leadsGroups || s.name == groups
		}
	}
	if !leadsGroups {
		return nil
	}
	everywhere := func(node string, of func(ledStream) []string) bool {
		for _, s := range mine {
			if !slices.Contains(of(s), node) {
				return false
			}
		}
		return true
	}
	var nodes []string
	for _, s := range mine {
		nodes = append(nodes, s.takers...)
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	for _, of := range []func(ledStream) []string{
		func(s ledStream) []string { return s.current },
		func(s ledStream) []string { return s.takers },
	} {
		for _, node := range nodes {
			if everywhere(node, of) {
				out := map[string]string{}
				for _, s := range mine {
					out[s.name] = node
				}
				return out
			}
		}
	}
	return nil
}

// ledStreams lists the replicated streams this node leads.
func (n *Node) ledStreams() []ledStream {
	info, err := n.ns.Jsz(&natsserver.JSzOptions{Accounts: true, Streams: true, Config: true, RaftGroups: true})
	if err != nil {
		return nil
	}
	var out []ledStream
	for _, acc := range info.AccountDetails {
		for _, s := range acc.Streams {
			if !n.ns.JetStreamIsStreamLeader(acc.Name, s.Name) || s.Config == nil || s.Config.Replicas <= 1 {
				continue
			}
			ls := ledStream{name: s.Name, group: s.RaftGroup, ids: map[string]string{}}
			if s.Cluster != nil {
				for _, r := range s.Cluster.Replicas {
					if r != nil {
						ls.ids[r.Name] = r.Peer
					}
					if r != nil && r.Name != n.cfg.Name && !r.Offline {
						ls.takers = append(ls.takers, r.Name)
						if r.Current {
							ls.current = append(ls.current, r.Name)
						}
					}
				}
			}
			out = append(out, ls)
		}
	}
	return out
}

// RebalanceTopic spreads a replicated topic's partition replicas over the cluster's
// nodes (after a node was added, say) and then its leaderships. A replica moves by
// removing an over-loaded node from the partition's peer set: JetStream places the
// replacement on a node without one (preferring the least loaded it can) and
// replicates the partition to it before the move counts. It returns the moves made,
// as "topic/p: from → to".
func (n *Node) RebalanceTopic(ctx context.Context, t semantics.TopicMeta) ([]string, int, error) {
	if !n.cfg.clustered() || t.Config.Replicas < 2 {
		moved, err := n.BalanceLeaders(ctx, []semantics.TopicMeta{t})
		return nil, moved, err
	}
	nodes := n.onlineNodes()
	var moves []string
	for range t.Config.Partitions * 2 { // bounded: each move lowers the imbalance
		placement := map[int32][]string{}
		count := map[string]int{}
		for _, node := range nodes {
			count[node] = 0
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			st, err := partition.NewReader(n.nc, t.Name, p, false).StreamInfo(ctx)
			if err != nil {
				return moves, 0, err
			}
			placement[p] = st.Replicas
			for _, r := range st.Replicas {
				count[r]++
			}
		}
		from, to := "", ""
		for node, c := range count {
			if from == "" || c > count[from] || c == count[from] && node < from {
				from = node
			}
			if to == "" || c < count[to] || c == count[to] && node < to {
				to = node
			}
		}
		if count[from]-count[to] <= 1 {
			break
		}
		// A partition on from but not on to, preferring one from does not lead.
		var pick int32 = -1
		for p := int32(0); p < t.Config.Partitions; p++ {
			rs := placement[p]
			if slices.Contains(rs, from) && !slices.Contains(rs, to) {
				pick = p
				if len(rs) > 0 && rs[0] != from {
					break
				}
			}
		}
		if pick < 0 {
			break
		}
		stream := semantics.StreamName(t.Name, pick)
		if err := n.removePeer(ctx, stream, from); err != nil {
			return moves, 0, err
		}
		dest, err := n.waitReplaced(ctx, t.Name, pick, from, t.Config.Replicas, placement[pick])
		if err != nil {
			return moves, 0, err
		}
		moves = append(moves, fmt.Sprintf("%s: %s → %s", semantics.PartitionString(t.Name, pick), from, dest))
		n.log.Info("partition replica moved", "topic", t.Name, "partition", pick, "from", from, "to", dest)
	}
	moved, err := n.BalanceLeaders(ctx, []semantics.TopicMeta{t})
	return moves, moved, err
}

func (n *Node) removePeer(ctx context.Context, stream, peer string) error {
	body, _ := json.Marshal(map[string]string{"peer": peer})
	return n.jsAPI(ctx, semantics.Subject(semantics.JSStreamPeerRemovePrefix, stream), body, "move "+stream+" off "+peer)
}

// waitReplaced waits until partition p has its replicas again without peer, and
// returns the node that took its place.
func (n *Node) waitReplaced(ctx context.Context, topic string, p int32, peer string, replicas int, old []string) (string, error) {
	r := partition.NewReader(n.nc, topic, p, false)
	for {
		st, err := r.StreamInfo(ctx)
		if err == nil && len(st.Replicas) == replicas && !slices.Contains(st.Replicas, peer) && st.Leader != "" {
			for _, node := range st.Replicas {
				if !slices.Contains(old, node) {
					return node, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("partition %s: no new replica in place of %s: %w", semantics.PartitionString(topic, p), peer, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// onlineNodes lists the cluster's JetStream nodes that are up, this one first. A
// node is up unless the cluster saw it shut down or lost track of it; the meta
// leader's name alone does not count, as it outlives a leader that stopped until
// the others notice.
func (n *Node) onlineNodes() []string {
	out := []string{n.cfg.Name}
	info, err := n.ns.Jsz(&natsserver.JSzOptions{})
	if err != nil || info.Meta == nil {
		return out
	}
	for _, r := range info.Meta.Replicas {
		if r != nil && !r.Offline && r.Name != "" && !strings.HasPrefix(r.Name, "Server name unknown") && !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}
