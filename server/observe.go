package server

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd/semantics"
)

// Observer sees what a node's partition writers and NATS doors do, for a service
// that counts it (server/httpapi's metrics). Its methods are called on the hot
// paths, some with a writer's lock held: they must return quickly, must not block
// and must not call the node.
type Observer interface {
	// Appended is called once a batch is stored in partition p of topic: records
	// records, bytes bytes (a compacted topic's batch is stored one record a
	// message: the sum), latency from its append to JetStream's ack.
	Appended(topic string, p int32, records int64, bytes int, latency time.Duration)
	// Answered is called once per request a door answered: api names the request
	// (APIName), code is the Kafka error code of its answer (0: none).
	Answered(api string, code int16)
	// Fetched is called once per fetch the node's fetch service answered with
	// batches (the Kafka listener's Fetch, the console's records): records records
	// in bytes bytes of partition p of topic.
	Fetched(topic string, p int32, records int64, bytes int)
	// KafkaAnswered is called once per request the Kafka listener answered: api is
	// Kafka's name of the request ("Produce", "Fetch"), code the first error code
	// in its answer (0: none).
	KafkaAnswered(api string, code int16)
}

// APIName names a request for an Observer by its subject: "produce" for a
// partition writer's, the operation for the admin API and the group coordinator
// ("topic.create", "cluster.info", "group.join"), "other" for any other subject.
// The names are few and fixed, whatever topics, groups and subjects clients use.
func APIName(subject string) string {
	if strings.HasPrefix(subject, semantics.WriterPrefix+".") {
		return "produce"
	}
	op, _ := semantics.SplitTopicAPISubject(subject)
	if op == subject {
		op, _ = semantics.SplitGroupSubject(subject)
	}
	if op == subject {
		op, _ = semantics.SplitTxnSubject(subject)
	}
	if name, ok := apiNames[op]; ok {
		return name
	}
	return "other"
}

// apiNames are the operations' names by subject.
var apiNames = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{semantics.APITopicCreate, semantics.APITopicDelete, semantics.APITopicAddPartitions,
		semantics.APITopicDescribe, semantics.APITopicRebalance, semantics.APITopicAlterConfig,
		semantics.APITopicDeleteRecords, semantics.APITopicVerify, semantics.APITopicReportDamage, semantics.APITopicRepair,
		semantics.APITopicList, semantics.APIBridgeCreate, semantics.APIBridgeDelete,
		semantics.APIBridgeList, semantics.APIBridgeDescribe, semantics.APIClusterInfo, semantics.APIClusterMetadata} {
		m[s] = strings.TrimPrefix(s, semantics.APIPrefix+".")
	}
	for _, s := range []string{semantics.GroupJoin, semantics.GroupSync, semantics.GroupHeartbeat, semantics.GroupLeave,
		semantics.GroupCommit, semantics.GroupFetch, semantics.GroupDescribe, semantics.GroupDelete, semantics.GroupReset,
		semantics.GroupList} {
		m[s] = "group." + s[strings.LastIndexByte(s, '.')+1:]
	}
	for _, s := range []string{semantics.TxnInit, semantics.TxnAddPartitions, semantics.TxnAddGroup,
		semantics.TxnCommitOffsets, semantics.TxnEnd, semantics.TxnDescribe, semantics.TxnList} {
		m[s] = "txn." + s[strings.LastIndexByte(s, '.')+1:]
	}
	return m
}()

// observers are the Observers a node's services registered through their Host.
// Without any, a hook costs one atomic load.
type observers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]Observer]
}

// add registers o and returns the function that removes it.
func (s *observers) add(o Observer) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := []Observer{o}
	if cur := s.list.Load(); cur != nil {
		l = append(slices.Clone(*cur), o)
	}
	s.list.Store(&l)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur := s.list.Load(); cur != nil {
			l := slices.DeleteFunc(slices.Clone(*cur), func(x Observer) bool { return x == o })
			s.list.Store(&l)
		}
	}
}

func (s *observers) appended(topic string, p int32, records int64, bytes int, latency time.Duration) {
	if s == nil {
		return
	}
	if l := s.list.Load(); l != nil {
		for _, o := range *l {
			o.Appended(topic, p, records, bytes, latency)
		}
	}
}

func (s *observers) answered(api string, code int16) {
	if s == nil {
		return
	}
	if l := s.list.Load(); l != nil {
		for _, o := range *l {
			o.Answered(api, code)
		}
	}
}

func (s *observers) fetched(topic string, p int32, records int64, bytes int) {
	if s == nil {
		return
	}
	if l := s.list.Load(); l != nil {
		for _, o := range *l {
			o.Fetched(topic, p, records, bytes)
		}
	}
}

// Answered implements kafka.Observer: the Kafka listener's requests.
func (s *observers) Answered(api string, code int16) {
	if l := s.list.Load(); l != nil {
		for _, o := range *l {
			o.KafkaAnswered(api, code)
		}
	}
}

// answeredJSON reports an encoded API answer: its code is the one of its "error"
// member, if any.
func (s *observers) answeredJSON(subject string, body []byte) {
	if s == nil || s.list.Load() == nil {
		return
	}
	var r struct {
		Error *semantics.APIError `json:"error"`
	}
	_ = json.Unmarshal(body, &r)
	code := int16(0)
	if r.Error != nil {
		code = r.Error.Code
		if code == 0 {
			code = -1 // an error without a Kafka code: Kafka's UNKNOWN_SERVER_ERROR
		}
	}
	s.answered(APIName(subject), code)
}

// ready reports what keeps the node from serving clients; none when it is ready.
func (n *Node) ready() []string {
	var not []string
	if !n.ns.JetStreamEnabled() {
		return []string{"JetStream is not running"}
	}
	// JetStream current with a known meta leader (on a single node, always).
	h := n.ns.Healthz(&natsserver.HealthzOptions{JSMetaOnly: true})
	// nats-server checks its listeners within 1 ms: on a loaded machine the check
	// can be descheduled past that before it looks, and then fails naming no
	// listener. Such an answer says nothing of the node: ask again.
	for i := 0; i < 3 && h.Status != "ok" && strings.HasSuffix(h.Error, "after 1ms: "); i++ {
		h = n.ns.Healthz(&natsserver.HealthzOptions{JSMetaOnly: true})
	}
	if h.Status != "ok" {
		msg := h.Error
		if msg == "" {
			msg = "JetStream is not current with the cluster (status " + h.Status + ")"
		}
		not = append(not, msg)
	}
	if n.isolated.Load() {
		not = append(not, "the node is cut off from its cluster: fewer than a majority of the nodes answer it")
	}
	if n.writers == nil || !n.writers.running.Load() {
		not = append(not, "the partition writers are not started")
	}
	return not
}
