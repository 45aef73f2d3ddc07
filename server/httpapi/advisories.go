package httpapi

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/jsm.go/api/jetstream/advisory"
	"github.com/nats-io/jsm.go/registry"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qxd-io/qxd/semantics"
)

// JetStream's advisories this port counts, published by the node concerned into the
// account qxd's streams are in, and received by every node's subscription.
var advisorySubjects = []string{
	semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, ">"),
	semantics.Subject(semantics.JSAdvisoryStreamQuorumPrefix, ">"),
	semantics.Subject(semantics.JSAdvisoryConsumerLeaderPrefix, ">"),
	semantics.Subject(semantics.JSAdvisoryConsumerQuorumPrefix, ">"),
}

// The kinds of RAFT group an advisory is about.
const (
	kindPartition = "partition" // a partition's stream
	kindSystem    = "system"    // another stream: qxd's buckets, a bridge's capture stream
	kindConsumer  = "consumer"  // a stream's consumer
)

// maxEvents is how many recent cluster events the console's events view keeps.
const maxEvents = 200

// Event is one cluster event for the console (GET /api/events): a JetStream
// advisory as this node received it.
type Event struct {
	Time time.Time `json:"time"`
	// What happened: "leader elected" or "quorum lost".
	What string `json:"what"`
	// Kind of RAFT group: partition, system or consumer.
	Kind     string `json:"kind"`
	Stream   string `json:"stream"`
	Consumer string `json:"consumer,omitempty"`
	// Topic and Partition name a partition's stream (Kind partition).
	Topic     string `json:"topic,omitempty"`
	Partition *int32 `json:"partition,omitempty"`
	// Leader is the elected leader; Replicas the group's other peers, with
	// whether each is current.
	Leader   string         `json:"leader,omitempty"`
	Replicas []EventReplica `json:"replicas,omitempty"`
}

// EventReplica is a peer of a RAFT group in an Event.
type EventReplica struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
}

// advisories counts JetStream's cluster events, parsed with jsm.go's typed
// schemas: leader elections and lost quorums of the RAFT groups of streams and
// consumers; it keeps the last maxEvents for the console.
type advisories struct {
	elections  *prometheus.CounterVec
	quorumLost *prometheus.CounterVec
	subs       []*nats.Subscription

	mu     sync.Mutex
	recent []Event // oldest first
}

func newAdvisories() *advisories {
	a := &advisories{
		elections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_jetstream_leader_elections_total",
			Help: "Leaders JetStream's RAFT groups elected in the cluster, by kind (partition, system, consumer), as this node received their advisories."}, []string{"kind"}),
		quorumLost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_jetstream_quorum_lost_total",
			Help: "Times a JetStream RAFT group's leader lost its quorum and stalled, by kind (partition, system, consumer), as this node received their advisories."}, []string{"kind"}),
	}
	for _, k := range []string{kindPartition, kindSystem, kindConsumer} {
		a.elections.WithLabelValues(k)
		a.quorumLost.WithLabelValues(k)
	}
	return a
}

// start subscribes to the advisories on nc.
func (a *advisories) start(nc *nats.Conn) error {
	for _, subj := range advisorySubjects {
		sub, err := nc.Subscribe(subj, a.onAdvisory)
		if err != nil {
			a.stop()
			return fmt.Errorf("subscribe to JetStream advisories %s: %w", subj, err)
		}
		a.subs = append(a.subs, sub)
	}
	return nil
}

func (a *advisories) stop() {
	for _, s := range a.subs {
		_ = s.Unsubscribe()
	}
	a.subs = nil
}

// onAdvisory counts and keeps one advisory; one of a schema it does not know is
// left out.
func (a *advisories) onAdvisory(m *nats.Msg) {
	_, ev, err := registry.ParseMessage(m.Data)
	if err != nil {
		return
	}
	const elected, lost = "leader elected", "quorum lost"
	var e Event
	switch ev := ev.(type) {
	case *advisory.JSStreamLeaderElectedV1:
		e = Event{Time: ev.Time, What: elected, Kind: streamKind(ev.Stream), Stream: ev.Stream, Leader: ev.Leader, Replicas: replicas(ev.Replicas)}
		a.elections.WithLabelValues(e.Kind).Inc()
	case *advisory.JSStreamQuorumLostV1:
		e = Event{Time: ev.Time, What: lost, Kind: streamKind(ev.Stream), Stream: ev.Stream, Replicas: replicas(ev.Replicas)}
		a.quorumLost.WithLabelValues(e.Kind).Inc()
	case *advisory.JSConsumerLeaderElectedV1:
		e = Event{Time: ev.Time, What: elected, Kind: kindConsumer, Stream: ev.Stream, Consumer: ev.Consumer, Leader: ev.Leader, Replicas: replicas(ev.Replicas)}
		a.elections.WithLabelValues(kindConsumer).Inc()
	case *advisory.JSConsumerQuorumLostV1:
		e = Event{Time: ev.Time, What: lost, Kind: kindConsumer, Stream: ev.Stream, Consumer: ev.Consumer, Replicas: replicas(ev.Replicas)}
		a.quorumLost.WithLabelValues(kindConsumer).Inc()
	default:
		return
	}
	if t, p, ok := semantics.ParseStreamName(e.Stream); ok {
		e.Topic, e.Partition = t, &p
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.recent) == maxEvents {
		a.recent = slices.Delete(a.recent, 0, 1)
	}
	a.recent = append(a.recent, e)
}

func replicas(ps []*advisory.PeerInfoV1) []EventReplica {
	var out []EventReplica
	for _, p := range ps {
		if p != nil {
			out = append(out, EventReplica{Name: p.Name, Current: p.Current, Offline: p.Offline})
		}
	}
	return out
}

// events returns the recent events, newest first.
func (a *advisories) events() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.recent)
	slices.Reverse(out)
	if out == nil {
		out = []Event{}
	}
	return out
}

func streamKind(stream string) string {
	if _, _, ok := semantics.ParseStreamName(stream); ok {
		return kindPartition
	}
	return kindSystem
}

// Describe and Collect make advisories a prometheus.Collector.
func (a *advisories) Describe(ch chan<- *prometheus.Desc) {
	a.elections.Describe(ch)
	a.quorumLost.Describe(ch)
}

func (a *advisories) Collect(ch chan<- prometheus.Metric) {
	a.elections.Collect(ch)
	a.quorumLost.Collect(ch)
}
