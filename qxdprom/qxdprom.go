// Package qxdprom exports the events of a qxd client as Prometheus metrics: a
// Metrics is a hook to give the client (qxd.Hooks) and a collector to
// register (prometheus.Registerer.Register), as franz-go's kprom is for kgo.
//
//	m := qxdprom.New("myapp")
//	prometheus.MustRegister(m)
//	client, err := qxd.Connect(ctx, url, qxd.Hooks(m))
//
// Its metrics, each prefixed with the namespace given to New and "qxd_":
//
//	connects_total{node}               connections made, reconnections included
//	connect_errors_total               connections that failed
//	disconnects_total{node}            connections lost or closed
//	produce_batches_total{topic}       batches acknowledged by partition writers
//	produce_records_total{topic}       records in them
//	produce_bytes_total{topic}         their bytes as sent (compressed if they were)
//	produce_latency_seconds{topic}     from sending a batch to its acknowledgement
//	fetch_batches_total{topic}         batches consumers read
//	fetch_records_total{topic}         records in them
//	fetch_bytes_total{topic}           their bytes as stored
package qxdprom

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qxd-io/qxd"
)

// Metrics counts a client's connections and batches. One Metrics may serve
// several clients; their counts add up.
type Metrics struct {
	connects, disconnects                        *prometheus.CounterVec
	connectErrors                                prometheus.Counter
	produceBatches, produceRecords, produceBytes *prometheus.CounterVec
	produceLatency                               *prometheus.HistogramVec
	fetchBatches, fetchRecords, fetchBytes       *prometheus.CounterVec
}

var (
	_ qxd.HookBrokerConnect       = (*Metrics)(nil)
	_ qxd.HookBrokerDisconnect    = (*Metrics)(nil)
	_ qxd.HookProduceBatchWritten = (*Metrics)(nil)
	_ qxd.HookFetchBatchRead      = (*Metrics)(nil)
	_ prometheus.Collector        = (*Metrics)(nil)
)

// New returns metrics named namespace_qxd_… ("qxd_…" when namespace is empty).
func New(namespace string) *Metrics {
	name := func(n string) string {
		return strings.TrimPrefix(namespace+"_qxd_"+n, "_")
	}
	counter := func(n, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name(n), Help: help}, labels)
	}
	return &Metrics{
		connects:       counter("connects_total", "Connections to a qxd node made, reconnections included.", "node"),
		disconnects:    counter("disconnects_total", "Connections to a qxd node lost or closed.", "node"),
		connectErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: name("connect_errors_total"), Help: "Connections to a qxd node that failed."}),
		produceBatches: counter("produce_batches_total", "Record batches acknowledged by partition writers.", "topic"),
		produceRecords: counter("produce_records_total", "Records in the batches acknowledged.", "topic"),
		produceBytes:   counter("produce_bytes_total", "Bytes of the batches acknowledged, as sent (compressed if they were).", "topic"),
		produceLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("produce_latency_seconds"),
			Help: "Time from sending a batch to its acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"topic"}),
		fetchBatches: counter("fetch_batches_total", "Record batches consumers read.", "topic"),
		fetchRecords: counter("fetch_records_total", "Records in the batches read.", "topic"),
		fetchBytes:   counter("fetch_bytes_total", "Bytes of the batches read, as stored.", "topic"),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connects, m.disconnects, m.connectErrors, m.produceBatches, m.produceRecords,
		m.produceBytes, m.produceLatency, m.fetchBatches, m.fetchRecords, m.fetchBytes}
}

// Describe is prometheus.Collector's.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect is prometheus.Collector's.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

// OnBrokerConnect is qxd.HookBrokerConnect's.
func (m *Metrics) OnBrokerConnect(meta qxd.BrokerMetadata, _ time.Duration, err error) {
	if err != nil {
		m.connectErrors.Inc()
		return
	}
	m.connects.WithLabelValues(meta.Node).Inc()
}

// OnBrokerDisconnect is qxd.HookBrokerDisconnect's.
func (m *Metrics) OnBrokerDisconnect(meta qxd.BrokerMetadata, _ error) {
	m.disconnects.WithLabelValues(meta.Node).Inc()
}

// OnProduceBatchWritten is qxd.HookProduceBatchWritten's.
func (m *Metrics) OnProduceBatchWritten(topic string, _ int32, b qxd.ProduceBatchMetrics) {
	m.produceBatches.WithLabelValues(topic).Inc()
	m.produceRecords.WithLabelValues(topic).Add(float64(b.NumRecords))
	m.produceBytes.WithLabelValues(topic).Add(float64(b.BatchBytes))
	m.produceLatency.WithLabelValues(topic).Observe(b.Latency.Seconds())
}

// OnFetchBatchRead is qxd.HookFetchBatchRead's.
func (m *Metrics) OnFetchBatchRead(topic string, _ int32, b qxd.FetchBatchMetrics) {
	m.fetchBatches.WithLabelValues(topic).Inc()
	m.fetchRecords.WithLabelValues(topic).Add(float64(b.NumRecords))
	m.fetchBytes.WithLabelValues(topic).Add(float64(b.BatchBytes))
}
