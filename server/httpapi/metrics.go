package httpapi

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// The metrics. Counters come from the node's hooks (server.Observer) as things
// happen; gauges are read from the node's services when Prometheus scrapes, at
// most once per stateTTL (see snapshot). Every metric is in docs/operations.md,
// "Metrics and health".
//
// Label cardinality is bounded: per-partition series only for partitions this
// node leads (or led or served fetches of since it started, for the counters),
// per-group series only on the node coordinating the groups, and the api and
// error labels take a fixed set of values. Past maxParts partitions (and, for the
// groups' offsets, group partitions), the rest share one series labelled
// otherLabel (counters and summable gauges) or have none (offsets), and
// qxd_metrics_partitions_over_limit counts them.

// DefaultMaxPartitionSeries is how many partitions get series of their own unless
// Service.MaxPartitionSeries says otherwise.
const DefaultMaxPartitionSeries = 5000

// otherLabel is the topic and partition label of the series of partitions past
// the limit: not a valid topic name, so it cannot be mistaken for one.
const otherLabel = "(other)"

// bridgeAdmin reads the bridges (the SDK's admin client, as `qxd bridge` does).
type bridgeAdmin interface {
	ListBridges(ctx context.Context) ([]qxd.Bridge, string, error)
	DescribeBridge(ctx context.Context, name string) (qxd.BridgeDescription, error)
}

// stateTTL is how long one read of the node's state serves scrapes.
const stateTTL = 5 * time.Second

// stateTimeout bounds one read of the node's state.
const stateTimeout = 10 * time.Second

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	// State read at scrape time.
	descLogStart = desc("qxd_partition_log_start_offset", "First offset still stored in the partition (partitions this node leads).", "topic", "partition")
	descHWM      = desc("qxd_partition_high_watermark", "Offset the partition's next record will get (partitions this node leads).", "topic", "partition")
	descLSO      = desc("qxd_partition_last_stable_offset", "First offset of the partition's earliest open transaction, else its high watermark: read-committed consumers read up to it (partitions this node leads).", "topic", "partition")
	descStored   = desc("qxd_partition_stored_bytes", "Bytes the partition's stream stores (partitions this node leads).", "topic", "partition")
	descBatches  = desc("qxd_partition_stored_batches", "Record batches the partition's stream stores (partitions this node leads).", "topic", "partition")
	descLed      = desc("qxd_node_partitions_led", "Partitions whose stream this node leads (it runs their writers).")
	descReady    = desc("qxd_node_ready", "1 when the node serves clients (as /readyz answers 200), else 0.")
	descJS       = desc("qxd_node_jetstream_up", "1 when the node's JetStream answers, else 0.")
	descSync     = desc("qxd_node_sync_interval_seconds", "The node's --sync: 0 syncs every append before it is acknowledged, else the background sync interval.")
	descMetaLead = desc("qxd_cluster_meta_leader", "1 when this node leads JetStream's meta group (places streams), else 0.")
	descNodes    = desc("qxd_cluster_nodes", "Nodes of the cluster by whether they are up (as this node sees them).", "up")
	descParts    = desc("qxd_cluster_partitions", "Partitions of all ready topics in the cluster.")
	descUnder    = desc("qxd_cluster_under_replicated_partitions", "Partitions with fewer current replicas than their replication factor, those without a leader included.")
	descNoLeader = desc("qxd_cluster_partitions_without_leader", "Partitions whose stream has no leader (cannot be written).")
	descBehind   = desc("qxd_cluster_replicas_behind", "Partition replicas on the node that are not current: behind their leader or catching up, offline, or of a partition without a leader.", "node")
	descRepLag   = desc("qxd_cluster_replica_lag", "RAFT entries the node's partition replicas are behind their leaders, summed, as the leaders last saw.", "node")
	descCoord    = desc("qxd_group_coordinator", "1 when this node coordinates the consumer groups (exports the qxd_group_ metrics), else 0.")
	descGState   = desc("qxd_group_state", "1 for the group's current state (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead).", "group", "state")
	descGMembers = desc("qxd_group_members", "Members of the group.", "group")
	descGGen     = desc("qxd_group_generation", "The group's generation.", "group")
	descGOffset  = desc("qxd_group_committed_offset", "The group's committed offset of the partition: the next offset it reads.", "group", "topic", "partition")
	descGLag     = desc("qxd_group_lag", "Records the group has yet to read in the partition: high watermark minus committed offset.", "group", "topic", "partition")
	descErrors   = desc("qxd_metrics_read_errors", "Parts of the node's state the last scrape could not read (their metrics are missing).")
	descBMsgs    = desc("qxd_bridge_messages_total", "Messages the bridge stored (ingest) or records it published (egress) since it started on its node.", "bridge", "kind", "topic")
	descBFailed  = desc("qxd_bridge_failed_total", "Messages the bridge could not store since it started on its node.", "bridge", "kind", "topic")
	descBBacklog = desc("qxd_bridge_backlog", "Messages of the stream a stream or capture bridge reads that it has yet to take.", "bridge", "kind", "topic")
	descBRunning = desc("qxd_bridge_running", "1 when the bridge runs (its runner answered), else 0.", "bridge", "kind", "topic")
	descGTotal   = desc("qxd_group_total_lag", "Records the group has yet to read, summed over its committed partitions.", "group")
	descFSess    = desc("qxd_kafka_fetch_sessions", "Fetch sessions (KIP-227) the Kafka listener holds for its clients (Kafka's NumIncrementalFetchSessions); at most --kafka-fetch-session-slots.")
	descFSParts  = desc("qxd_kafka_fetch_session_partitions", "Partitions held in the Kafka listener's fetch sessions, summed over them (Kafka's NumIncrementalFetchPartitionsCached).")
	descFReads   = desc("qxd_kafka_fetch_batches_read_total", "Stored batches the Kafka listener read for fetches since it started, by where from: store (in process, from a partition this node leads) or nats (batched direct gets).", "from")
	descReplays  = desc("qxd_writer_replay_batches_total", "Stored batches the partition writers read when they loaded (the batches after their checkpoint, the last batch) since the node started, by where from: store (in process, from a partition this node leads) or nats (the stream leader's message gets).", "from")
	descLookups  = desc("qxd_writer_load_lookups_total", "Reads of their stream's state, stored checkpoint and abort markers the partition writers made when they loaded since the node started, by where from: store (in process, from a partition this node leads) or nats (JetStream API requests to the stream's leader).", "from")
	descFSEvict  = desc("qxd_kafka_fetch_session_evictions_total", "Fetch sessions the Kafka listener evicted to make room for new ones since it started (Kafka's IncrementalFetchSessionEvictionsPerSec).")
	descRepairs  = desc("qxd_partition_repairs_total", "Partition repairs this node ran since it started, asked for or automatic, by result: rebuilt (a damaged copy rebuilt and read back intact), restored (a partition short of replicas scaled back up), refused (nothing changed: the partition was not fit for it), failed.", "result")
	descScrubB   = desc("qxd_scrub_bytes_total", "Bytes the scrub read back from this node's partition copies since the node started.")
	descScrubD   = desc("qxd_scrub_damage_found_total", "Damaged stretches (a batch failing its checks, stream sequences the store did not return) the scrub found in this node's partition copies since the node started; each is recorded as a read's report is.")
	descScrubP   = desc("qxd_scrub_passes_total", "Scrub passes over all this node's partition copies completed since the node started.")
	descOver     = desc("qxd_metrics_partitions_over_limit", "Partitions (and group partitions) without series of their own, past the HTTP port's limit of partition series: their counters and sizes are in the series labelled (other).", "kind")
)

// partCounters are one partition's counters, kept so that an append costs no label
// lookup.
type partCounters struct {
	records, bytes, batches prometheus.Counter
	latency                 prometheus.Observer
}

type partKey struct {
	topic string
	p     int32
}

type reqKey struct {
	api  string
	code int16
}

// fetchCounters are one partition's fetch counters.
type fetchCounters struct {
	records, bytes prometheus.Counter
}

// metrics is the node's metrics: a server.Observer for the counters and a
// prometheus.Collector for all of them.
type metrics struct {
	h       server.Host
	bridges bridgeAdmin // the bridges' definitions and reports

	maxParts int // partitions with series of their own

	records, bytes, batches  *prometheus.CounterVec
	latency                  *prometheus.HistogramVec
	requests, kafkaRequests  *prometheus.CounterVec
	fetchRecords, fetchBytes *prometheus.CounterVec
	parts                    sync.Map // partKey → *partCounters
	fetches                  sync.Map // partKey → *fetchCounters
	reqs, kafkaReqs          sync.Map // reqKey → prometheus.Counter
	labelled, over           sync.Map // partKey → struct{}: partitions with series of their own, and past the limit
	nLabelled, nOver         atomic.Int64

	mu   sync.Mutex // one state read at a time
	last *snapshot
}

var (
	_ server.Observer      = (*metrics)(nil)
	_ prometheus.Collector = (*metrics)(nil)
)

func newMetrics(h server.Host, maxParts int) *metrics {
	pl := []string{"topic", "partition"}
	return &metrics{
		h: h, maxParts: maxParts,
		fetchRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_fetched_records_total",
			Help: "Records in the batches this node's fetch service returned (Kafka clients' Fetch, the console's records)."}, pl),
		fetchBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_fetched_bytes_total",
			Help: "Bytes of record batches this node's fetch service returned."}, pl),
		kafkaRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_kafka_requests_total",
			Help: "Requests this node's Kafka listener answered, by Kafka API and the first error name of the answer (NONE: success)."}, []string{"api", "error"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_appended_records_total",
			Help: "Records this node's partition writers stored."}, pl),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_appended_bytes_total",
			Help: "Bytes of record batches this node's partition writers stored."}, pl),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_appended_batches_total",
			Help: "Record batches this node's partition writers stored."}, pl),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "qxd_append_latency_seconds",
			Help: "Time from a writer's append to JetStream's ack (stored, and synced as --sync says), per topic.", Buckets: latencyBuckets}, []string{"topic"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qxd_requests_total",
			Help: "Requests this node answered, by API and Kafka error name (NONE: success)."}, []string{"api", "error"}),
	}
}

// labels returns the topic and partition labels of partition p of topic: its own
// while fewer than maxParts partitions have series, else otherLabel; the second
// result is false for the latter.
func (m *metrics) labels(topic string, p int32) (string, string, bool) {
	k := partKey{topic, p}
	if _, ok := m.labelled.Load(k); ok {
		return topic, strconv.Itoa(int(p)), true
	}
	if m.nLabelled.Add(1) > int64(m.maxParts) {
		m.nLabelled.Add(-1)
		if _, loaded := m.over.LoadOrStore(k, struct{}{}); !loaded {
			m.nOver.Add(1)
		}
		return otherLabel, otherLabel, false
	}
	if _, loaded := m.labelled.LoadOrStore(k, struct{}{}); loaded {
		m.nLabelled.Add(-1)
	}
	return topic, strconv.Itoa(int(p)), true
}

// Appended counts one stored batch.
func (m *metrics) Appended(topic string, p int32, records int64, bytes int, latency time.Duration) {
	k := partKey{topic, p}
	v, ok := m.parts.Load(k)
	if !ok {
		t, ps, _ := m.labels(topic, p)
		v, _ = m.parts.LoadOrStore(k, &partCounters{
			records: m.records.WithLabelValues(t, ps), bytes: m.bytes.WithLabelValues(t, ps),
			batches: m.batches.WithLabelValues(t, ps), latency: m.latency.WithLabelValues(t),
		})
	}
	c := v.(*partCounters)
	c.records.Add(float64(records))
	c.bytes.Add(float64(bytes))
	c.batches.Inc()
	c.latency.Observe(latency.Seconds())
}

// Fetched counts one fetch's batches.
func (m *metrics) Fetched(topic string, p int32, records int64, bytes int) {
	k := partKey{topic, p}
	v, ok := m.fetches.Load(k)
	if !ok {
		t, ps, _ := m.labels(topic, p)
		v, _ = m.fetches.LoadOrStore(k, &fetchCounters{records: m.fetchRecords.WithLabelValues(t, ps), bytes: m.fetchBytes.WithLabelValues(t, ps)})
	}
	c := v.(*fetchCounters)
	c.records.Add(float64(records))
	c.bytes.Add(float64(bytes))
}

// Answered counts one request a NATS door answered.
func (m *metrics) Answered(api string, code int16) {
	count(&m.reqs, m.requests, api, code)
}

// KafkaAnswered counts one request the Kafka listener answered.
func (m *metrics) KafkaAnswered(api string, code int16) {
	count(&m.kafkaReqs, m.kafkaRequests, api, code)
}

func count(cache *sync.Map, vec *prometheus.CounterVec, api string, code int16) {
	k := reqKey{api, code}
	v, ok := cache.Load(k)
	if !ok {
		v, _ = cache.LoadOrStore(k, vec.WithLabelValues(api, errorName(code)))
	}
	v.(prometheus.Counter).Inc()
}

// errorName is Kafka's name of an error code; NONE for 0, as Kafka names it.
func errorName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	var e *semantics.Error
	if errors.As(semantics.FromCode(code, ""), &e) {
		return e.Name
	}
	return "UNKNOWN_SERVER_ERROR"
}

// Describe sends the descriptions of every metric.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.records.Describe(ch)
	m.bytes.Describe(ch)
	m.batches.Describe(ch)
	m.latency.Describe(ch)
	m.requests.Describe(ch)
	m.kafkaRequests.Describe(ch)
	m.fetchRecords.Describe(ch)
	m.fetchBytes.Describe(ch)
	ch <- descFReads
	ch <- descReplays
	ch <- descLookups
	for _, d := range []*prometheus.Desc{descFSess, descFSParts, descFSEvict, descRepairs, descScrubB, descScrubD, descScrubP, descGTotal, descOver, descBMsgs, descBFailed, descBBacklog, descBRunning, descLogStart, descHWM, descLSO, descStored, descBatches, descLed, descReady, descJS,
		descSync, descMetaLead, descNodes, descParts, descUnder, descNoLeader, descBehind, descRepLag, descCoord, descGState, descGMembers,
		descGGen, descGOffset, descGLag, descErrors} {
		ch <- d
	}
}

// Collect sends every metric: the counters, and the state of the node as last read.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.records.Collect(ch)
	m.bytes.Collect(ch)
	m.batches.Collect(ch)
	m.latency.Collect(ch)
	m.requests.Collect(ch)
	m.kafkaRequests.Collect(ch)
	m.fetchRecords.Collect(ch)
	m.fetchBytes.Collect(ch)
	if fs, ok := m.h.KafkaFetchSessions(); ok {
		// Read at every scrape: the listener keeps them at hand.
		gauge(ch, descFSess, float64(fs.Sessions))
		gauge(ch, descFSParts, float64(fs.Partitions))
		ch <- prometheus.MustNewConstMetric(descFSEvict, prometheus.CounterValue, float64(fs.Evictions))
	}
	if fr, ok := m.h.KafkaFetchReads(); ok {
		ch <- prometheus.MustNewConstMetric(descFReads, prometheus.CounterValue, float64(fr.Store), "store")
		ch <- prometheus.MustNewConstMetric(descFReads, prometheus.CounterValue, float64(fr.NATS), "nats")
	}
	wr := m.h.WriterReplays()
	ch <- prometheus.MustNewConstMetric(descReplays, prometheus.CounterValue, float64(wr.Store), "store")
	ch <- prometheus.MustNewConstMetric(descReplays, prometheus.CounterValue, float64(wr.NATS), "nats")
	wl := m.h.WriterLoadLookups()
	ch <- prometheus.MustNewConstMetric(descLookups, prometheus.CounterValue, float64(wl.Store), "store")
	ch <- prometheus.MustNewConstMetric(descLookups, prometheus.CounterValue, float64(wl.NATS), "nats")
	if a := m.h.Admin(); a != nil {
		counts := a.RepairCounts()
		for _, r := range []string{server.RepairRebuilt, server.RepairRestored, server.RepairRefused, server.RepairFailed} {
			ch <- prometheus.MustNewConstMetric(descRepairs, prometheus.CounterValue, float64(counts[r]), r)
		}
		sc := a.ScrubStats()
		ch <- prometheus.MustNewConstMetric(descScrubB, prometheus.CounterValue, float64(sc.Bytes))
		ch <- prometheus.MustNewConstMetric(descScrubD, prometheus.CounterValue, float64(sc.Damage))
		ch <- prometheus.MustNewConstMetric(descScrubP, prometheus.CounterValue, float64(sc.Passes))
	}
	m.collectState(ch, m.state())
}

// state returns the node's state, read again when the last read is older than
// stateTTL. Scrapes that come meanwhile wait for the read under way.
func (m *metrics) state() *snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last != nil && time.Since(m.last.at) < stateTTL {
		return m.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	m.last = readState(ctx, m.h)
	if m.bridges != nil {
		m.last.readBridges(ctx, m.h, m.bridges)
	}
	return m.last
}

// snapshot is the node's state at one time, as the gauges show it.
type snapshot struct {
	at     time.Time
	errors int

	ready, jetstream bool
	sync             time.Duration
	led              []partState

	cluster     bool // the cluster part was read
	metaLeader  bool
	nodesUp     int
	nodesDown   int
	partitions  int
	underRep    int
	noLeader    int
	replicas    []replicaState // per node, partition replicas behind their leaders
	coordinator bool
	groups      []groupState
	bridges     []bridgeState // on the node running the bridges
}

// replicaState is how far behind their leaders a node's partition replicas are,
// as cluster info reports it.
type replicaState struct {
	node   string
	behind int    // replicas not current
	lag    uint64 // RAFT entries behind, summed
}

// readBridges reads the bridges' reports when this node runs them, so that one
// node of the cluster exports them.
func (s *snapshot) readBridges(ctx context.Context, h server.Host, a bridgeAdmin) {
	bs, runner, err := a.ListBridges(ctx)
	if errors.Is(err, semantics.ErrInvalidRequest) {
		return // the node hosts no bridges (an embedder without bridge.Service)
	}
	if err != nil {
		s.errors++
		return
	}
	if runner != h.Name() {
		return
	}
	for _, b := range bs {
		st := bridgeState{name: b.Name, kind: b.Kind, topic: b.Topic}
		d, err := a.DescribeBridge(ctx, b.Name)
		if err != nil {
			s.errors++
		} else if d.Status != nil {
			st.running = true
			st.messages, st.failed, st.backlog = float64(d.Status.Messages), float64(d.Status.Failed), float64(d.Status.Backlog)
		}
		s.bridges = append(s.bridges, st)
	}
}

type bridgeState struct {
	name, kind, topic         string
	running                   bool
	messages, failed, backlog float64
}

type partState struct {
	topic    string
	p        int32
	logStart int64
	hwm      int64
	lso      int64 // last stable offset
	bytes    uint64
	batches  uint64
}

type groupState struct {
	name       string
	state      string
	members    int
	generation int32
	offsets    []offsetState
}

type offsetState struct {
	topic     string
	p         int32
	committed int64
	lag       int64 // -1: the high watermark could not be read
}

// readState reads the node's state through its services. Its cost: one stream
// info (and a read of the last batch) per partition this node leads, the cluster
// info (one stream info per partition, which the admin service asks the leaders
// for), and on the coordinating node the groups' descriptions and commits, with
// one offset read per committed partition another node leads.
func readState(ctx context.Context, h server.Host) *snapshot {
	s := &snapshot{at: time.Now(), sync: h.Sync()}
	s.ready = len(h.Ready()) == 0
	if _, err := h.JetStream().AccountInfo(ctx); err == nil {
		s.jetstream = true
	}
	topics, err := h.Admin().ListTopics(ctx)
	if err != nil {
		s.errors++
	}
	metas := map[string]semantics.TopicMeta{}
	hwms := map[partKey]int64{}
	for _, t := range topics {
		if t.State != semantics.TopicReady {
			continue
		}
		metas[t.Name] = t
		for p := int32(0); p < t.Config.Partitions; p++ {
			if !h.IsStreamLeader(semantics.StreamName(t.Name, p)) {
				continue
			}
			o, err := readOffsets(ctx, h, t, p)
			if err != nil {
				s.errors++
				continue
			}
			lso := o.HighWatermark
			if l, _, err := h.Writers().Stable(t.Name, p, o.HighWatermark, o.LogStart); err == nil {
				lso = min(l, o.HighWatermark)
			}
			s.led = append(s.led, partState{topic: t.Name, p: p, logStart: o.LogStart, hwm: o.HighWatermark, lso: lso, bytes: o.Bytes, batches: o.Msgs})
			hwms[partKey{t.Name, p}] = o.HighWatermark
		}
	}
	if ci, err := h.Admin().ClusterInfo(ctx); err != nil {
		s.errors++
	} else {
		s.cluster = true
		s.metaLeader = ci.MetaLeader == h.Name() || !h.Clustered()
		behind := map[string]int{}
		for _, u := range ci.UnderReplicated {
			for _, r := range u.OutOfSync {
				behind[r]++
			}
		}
		for _, n := range ci.Nodes {
			if n.Up {
				s.nodesUp++
			} else {
				s.nodesDown++
			}
			s.replicas = append(s.replicas, replicaState{node: n.Name, behind: behind[n.Name], lag: n.Lag})
		}
		if !h.Clustered() && len(ci.Nodes) == 0 {
			s.nodesUp = 1
		}
		s.partitions, s.underRep = ci.Partitions, len(ci.UnderReplicated)
		for _, u := range ci.UnderReplicated {
			if u.Leader == "" {
				s.noLeader++
			}
		}
	}
	s.readGroups(ctx, h, metas, hwms)
	return s
}

// readGroups reads the groups when this node coordinates them.
func (s *snapshot) readGroups(ctx context.Context, h server.Host, metas map[string]semantics.TopicMeta, hwms map[partKey]int64) {
	gs, err := h.Groups().ListGroups(ctx)
	if errors.Is(err, semantics.ErrNotCoordinator) {
		return
	}
	if err != nil {
		s.errors++
		return
	}
	s.coordinator = true
	for _, g := range gs {
		gst := groupState{name: g.Group, state: string(g.State), members: g.Members}
		if d, err := h.Groups().DescribeGroup(ctx, g.Group); err == nil {
			gst.state, gst.members, gst.generation = string(d.State), len(d.Members), d.Generation
		} else {
			s.errors++
		}
		offs, err := h.Groups().FetchOffsets(ctx, groups.FetchRequest{Group: g.Group})
		if err != nil {
			s.errors++
		}
		for _, o := range offs {
			if o.Offset < 0 {
				continue // nothing committed
			}
			k := partKey{o.Topic, o.Partition}
			hwm, ok := hwms[k]
			if !ok {
				if t, known := metas[o.Topic]; known {
					if off, err := readOffsets(ctx, h, t, o.Partition); err == nil {
						hwm, ok = off.HighWatermark, true
						hwms[k] = hwm
					}
				}
			}
			lag := int64(-1)
			if ok {
				lag = max(0, hwm-o.Offset)
			} else {
				s.errors++
			}
			gst.offsets = append(gst.offsets, offsetState{topic: o.Topic, p: o.Partition, committed: o.Offset, lag: lag})
		}
		slices.SortFunc(gst.offsets, func(a, b offsetState) int {
			if c := strings.Compare(a.topic, b.topic); c != 0 {
				return c
			}
			return int(a.p - b.p)
		})
		s.groups = append(s.groups, gst)
	}
	// Sorted, so that the group partitions with series of their own stay the same.
	slices.SortFunc(s.groups, func(a, b groupState) int { return strings.Compare(a.name, b.name) })
}

// readOffsets reads partition p of t's log start and high watermark.
func readOffsets(ctx context.Context, h server.Host, t semantics.TopicMeta, p int32) (partition.Offsets, error) {
	r := partition.NewReader(h.Conn(), t.Name, p, false)
	return r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) { return h.Checkpoint(ctx, t.ID, p) })
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectState sends the gauges of s: per partition for those with series of
// their own (m.labels), summed under otherLabel for the rest.
func (m *metrics) collectState(ch chan<- prometheus.Metric, s *snapshot) {
	gauge(ch, descReady, boolf(s.ready))
	gauge(ch, descJS, boolf(s.jetstream))
	gauge(ch, descSync, s.sync.Seconds())
	gauge(ch, descLed, float64(len(s.led)))
	gauge(ch, descErrors, float64(s.errors))
	var otherBytes, otherBatches uint64
	others := false
	for _, p := range s.led {
		t, ps, own := m.labels(p.topic, p.p)
		if !own {
			otherBytes += p.bytes
			otherBatches += p.batches
			others = true
			continue
		}
		gauge(ch, descLogStart, float64(p.logStart), t, ps)
		gauge(ch, descHWM, float64(p.hwm), t, ps)
		gauge(ch, descLSO, float64(p.lso), t, ps)
		gauge(ch, descStored, float64(p.bytes), t, ps)
		gauge(ch, descBatches, float64(p.batches), t, ps)
	}
	if others {
		gauge(ch, descStored, float64(otherBytes), otherLabel, otherLabel)
		gauge(ch, descBatches, float64(otherBatches), otherLabel, otherLabel)
	}
	gauge(ch, descOver, float64(m.nOver.Load()), "partition")
	if s.cluster {
		gauge(ch, descMetaLead, boolf(s.metaLeader))
		gauge(ch, descNodes, float64(s.nodesUp), "true")
		gauge(ch, descNodes, float64(s.nodesDown), "false")
		gauge(ch, descParts, float64(s.partitions))
		gauge(ch, descUnder, float64(s.underRep))
		gauge(ch, descNoLeader, float64(s.noLeader))
		for _, r := range s.replicas {
			gauge(ch, descBehind, float64(r.behind), r.node)
			gauge(ch, descRepLag, float64(r.lag), r.node)
		}
	}
	gauge(ch, descCoord, boolf(s.coordinator))
	groupParts, groupOver := 0, 0
	for _, g := range s.groups {
		for _, st := range []groups.State{groups.Empty, groups.PreparingRebalance, groups.CompletingRebalance, groups.Stable, groups.Dead} {
			gauge(ch, descGState, boolf(g.state == string(st)), g.name, string(st))
		}
		gauge(ch, descGMembers, float64(g.members), g.name)
		gauge(ch, descGGen, float64(g.generation), g.name)
		total := int64(0)
		for _, o := range g.offsets {
			if o.lag > 0 {
				total += o.lag
			}
			if groupParts >= m.maxParts {
				groupOver++
				continue
			}
			groupParts++
			ps := strconv.Itoa(int(o.p))
			gauge(ch, descGOffset, float64(o.committed), g.name, o.topic, ps)
			if o.lag >= 0 {
				gauge(ch, descGLag, float64(o.lag), g.name, o.topic, ps)
			}
		}
		gauge(ch, descGTotal, float64(total), g.name)
	}
	if s.coordinator {
		gauge(ch, descOver, float64(groupOver), "group_partition")
	}
	for _, b := range s.bridges {
		gauge(ch, descBRunning, boolf(b.running), b.name, b.kind, b.topic)
		if b.running {
			ch <- prometheus.MustNewConstMetric(descBMsgs, prometheus.CounterValue, b.messages, b.name, b.kind, b.topic)
			ch <- prometheus.MustNewConstMetric(descBFailed, prometheus.CounterValue, b.failed, b.name, b.kind, b.topic)
			gauge(ch, descBBacklog, b.backlog, b.name, b.kind, b.topic)
		}
	}
}
