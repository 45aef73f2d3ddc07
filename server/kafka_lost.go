package server

import (
	"context"
	"slices"
	"time"

	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// A Kafka Metadata answer never names a leader on a node its node has lost:
// it answers such a partition without a leader (LEADER_NOT_AVAILABLE), as a
// Kafka broker does while the controller elects. A node's view of a
// partition's leader (its replica's RAFT group, JetStream's stream list) names
// a lost leader until the group elects its successor and this node hears of
// it, and the node that wins hears first: for a moment one node names the new
// leader and another the lost one. librdkafka 2.0.2, told the new leader, then
// the lost one, then the new one again within milliseconds, hands the
// partition to the lost leader's broker while it records the new leader as
// the partition's leader, and takes every later answer naming that leader for
// a "preferred replica" it does not move back from (rdkafka_topic.c,
// rd_kafka_toppar_leader_update): a producer's partition held until the next
// leader change (1m52s in the kill drill), a group member's left unread. Told
// "no leader" instead, it hands the partition to its internal broker, which it
// never takes for a preferred replica, and asks again within a second
// (rd_kafka_topic_scan_all). Answers of two nodes can then differ only between
// no leader and the new one. franz-go keeps the leader and epoch it knew for a
// partition answered without a leader, and asks again.

// lostNodes is, at one moment, which nodes this node has lost: those whose
// route closed while this node ran (a killed node's routes close within
// milliseconds, the signal on which its followers elect, raft_campaign.go case
// (b); isolationWatch.routesLost), and those that answered none of its probes
// for doubtAfter (a paused or cut-off node, whose routes stay up for seconds:
// isolationWatch.quiet). A node that wakes from a pause finds its routes
// closed by the others: it does not count those nodes lost for it. On a single
// node none.
type lostNodes struct {
	self      string
	clustered bool
	routeLost map[string]bool
	routed    map[string]bool // the nodes this node has a route to now (nil: not known)
	probes    *isolationWatch
	at        time.Time
}

// lostNow is which nodes this node has lost now.
func (b *kafkaBackend) lostNow() lostNodes {
	l := lostNodes{self: b.advertise.Name, clustered: b.n.ns.JetStreamIsClustered(), probes: b.n.probes.Load(), at: time.Now()}
	if l.clustered {
		l.routed = routedServers(b.n.ns)
		if l.probes != nil { // no watch yet: none lost
			l.routeLost = l.probes.routesLost(l.routed, l.at)
		}
	}
	return l
}

// has reports whether node is lost.
func (l lostNodes) has(node string) bool {
	if !l.clustered || node == "" || node == l.self {
		return false
	}
	return l.routeLost[node] || l.probes != nil && l.probes.quiet(node, l.at, doubtAfter)
}

// unreachable reports whether node cannot answer a request now: it is lost,
// or this node has no route to it (lost or not: a node that woke from a pause
// finds its routes closed until they are made again).
func (l lostNodes) unreachable(node string) bool {
	return l.has(node) || l.clustered && l.routed != nil && node != l.self && !l.routed[node]
}

// any reports whether a node this node knows (it answered this node's probes
// once, or this node saw a route to it) is lost.
func (l lostNodes) any() bool {
	if !l.clustered || l.probes == nil {
		return false
	}
	return slices.ContainsFunc(l.probes.nodes(), l.has)
}

// unnameLost answers each partition of cl whose leader is a node in lost
// without a leader (and that node among its offline replicas); nodes are the
// names of the nodes cl may name, besides those that answered this node's
// probes.
func unnameLost(cl *kafka.Cluster, lost lostNodes, nodes []string) {
	if !lost.clustered {
		return
	}
	ids := map[int32]bool{}
	if lost.probes != nil {
		nodes = append(nodes, lost.probes.nodes()...)
	}
	for _, name := range nodes {
		if lost.has(name) {
			ids[brokerID(name)] = true
		}
	}
	if len(ids) == 0 {
		return
	}
	for ti := range cl.Topics {
		for pi := range cl.Topics[ti].Partitions {
			p := &cl.Topics[ti].Partitions[pi]
			if p.Leader < 0 || !ids[p.Leader] {
				continue
			}
			gone := p.Leader
			p.Leader, p.LeaderEpoch, p.FormerLeader = -1, -1, false
			p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return id == gone })
			if !slices.Contains(p.Offline, gone) {
				p.Offline = append(slices.Clone(p.Offline), gone)
			}
		}
	}
}

// lostLeader reports whether leader, a partition stream's leader as this
// node knows it, is on a node this node has lost, and this node holds a
// replica of the stream, whose RAFT group will name the successor as soon as
// it is elected (localLeader): a Metadata answer waits for it
// (awaitElections).
func (b *kafkaBackend) lostLeader(lost lostNodes, leader, stream string) bool {
	if !lost.has(leader) {
		return false
	}
	_, ok := b.n.epochs.cached(stream)
	return ok
}

// electing reports whether stream, which has no leader in this node's view,
// may be electing one because a node was lost (lostNodes.any), and this node
// holds a replica of the stream, whose RAFT group will name the new leader as
// soon as it is elected (localLeader). A partition answered without a leader
// (LEADER_NOT_AVAILABLE) makes franz-go keep sending to the leader it knew,
// and read the metadata again only 5 s later.
func (b *kafkaBackend) electing(lost lostNodes, stream string) bool {
	if !lost.any() {
		return false
	}
	_, ok := b.n.epochs.cached(stream)
	return ok
}

// partitionNodes is the names of the nodes md names: its brokers and every
// partition's replicas.
func partitionNodes(md semantics.Metadata) []string {
	var out []string
	for _, br := range md.Brokers {
		out = append(out, br.Name)
	}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.Replicas...)
			if p.Leader != "" {
				out = append(out, p.Leader)
			}
		}
	}
	return out
}

// kafkaLostMetadataWait is how long, while a node is lost, a Metadata answer
// waits for JetStream's view (the topics bucket, the stream list) before it
// answers from its own (cutMetadataWait).
const kafkaLostMetadataWait = 100 * time.Millisecond

// cutMetadataWait ends ctx (cancel) once it has waited kafkaLostMetadataWait,
// or once a request is behind it on its connection (behind closed:
// kafka.RequestBehind), while this node has lost a node; it returns when ctx
// ends. While a node is lost, the topics bucket and the stream list wait for
// it when it led their streams (the list waits up to 4 s for a stream leader
// that does not answer), and a Metadata answer waited kafkaMetadataWait
// (500 ms) at each read in the second after a kill; librdkafka's next
// Metadata request on the connection, and its produce requests to healthy
// partitions, waited behind it. Cut short, the answer is the node's own view:
// a topic the bucket did not answer for as its writers know it, a partition
// the list did not describe with the leader its replica knows
// (knownTopicInfo, localLeader).
func (b *kafkaBackend) cutMetadataWait(ctx context.Context, cancel context.CancelFunc, behind <-chan struct{}) {
	wait := time.NewTimer(kafkaLostMetadataWait)
	defer wait.Stop()
	select {
	case <-ctx.Done():
		return
	case <-behind:
	case <-wait.C:
	}
	tick := time.NewTicker(kafkaElectionPoll)
	defer tick.Stop()
	for !b.lostNow().any() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	cancel()
}
