package httpapi

import (
	"fmt"

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

// advisories counts JetStream's cluster events, parsed with jsm.go's typed
// schemas: leader elections and lost quorums of the RAFT groups of streams and
// consumers.
type advisories struct {
	elections  *prometheus.CounterVec
	quorumLost *prometheus.CounterVec
	subs       []*nats.Subscription
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

// onAdvisory counts one advisory; one of a schema it does not know is left out.
func (a *advisories) onAdvisory(m *nats.Msg) {
	_, ev, err := registry.ParseMessage(m.Data)
	if err != nil {
		return
	}
	switch ev := ev.(type) {
	case *advisory.JSStreamLeaderElectedV1:
		a.elections.WithLabelValues(streamKind(ev.Stream)).Inc()
	case *advisory.JSStreamQuorumLostV1:
		a.quorumLost.WithLabelValues(streamKind(ev.Stream)).Inc()
	case *advisory.JSConsumerLeaderElectedV1:
		a.elections.WithLabelValues(kindConsumer).Inc()
	case *advisory.JSConsumerQuorumLostV1:
		a.quorumLost.WithLabelValues(kindConsumer).Inc()
	}
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
