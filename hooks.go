// Hooks: values the application passes with Hooks that the client calls at
// events worth counting or tracing (kgo's hooks). A hook implements any of the
// Hook* interfaces; the client calls each method of each hook that implements it,
// in the order the hooks were given, on the goroutine where the event happens:
// a hook must be quick and safe for concurrent use.

package qxd

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Hook is a value given to Hooks. It implements one or more of
// HookBrokerConnect, HookBrokerDisconnect, HookProduceBatchWritten and
// HookFetchBatchRead; a hook that implements none is refused.
type Hook any

// BrokerMetadata names the node a client is connected to: its NATS server name
// and the URL the client reached it at (credentials removed).
type BrokerMetadata struct {
	Node string
	URL  string
}

// HookBrokerConnect is called when Connect's connection is made, or fails (err
// set; Node empty), and each time it reconnects. dialTime is how long Connect
// took, 0 for a reconnect. Clients made with NewClient on a connection of the
// application's do not call it.
type HookBrokerConnect interface {
	OnBrokerConnect(meta BrokerMetadata, dialTime time.Duration, err error)
}

// HookBrokerDisconnect is called when Connect's connection is lost (it
// reconnects on its own) or closed. Clients made with NewClient do not call it.
type HookBrokerDisconnect interface {
	OnBrokerDisconnect(meta BrokerMetadata, err error)
}

// ProduceBatchMetrics describes one batch a partition writer acknowledged.
type ProduceBatchMetrics struct {
	NumRecords  int
	RecordBytes int64 // the records' keys, values and headers, as buffered
	BatchBytes  int   // the batch as sent, compressed if it was
	Compression Compression
	BaseOffset  int64         // -1 when unknown (a resent batch stored before)
	Latency     time.Duration // from sending the batch to its acknowledgement
}

// HookProduceBatchWritten is called for each batch a producer has had
// acknowledged, before the records' callbacks.
type HookProduceBatchWritten interface {
	OnProduceBatchWritten(topic string, partition int32, m ProduceBatchMetrics)
}

// FetchBatchMetrics describes one batch a consumer read from a partition.
type FetchBatchMetrics struct {
	NumRecords  int
	BatchBytes  int   // the batch as stored, compressed if it is
	FirstOffset int64 // the offset of its first record
}

// HookFetchBatchRead is called for each batch a consumer reads and decodes, as
// it is read (before Poll returns its records).
type HookFetchBatchRead interface {
	OnFetchBatchRead(topic string, partition int32, m FetchBatchMetrics)
}

// hooks are a client's hooks, by kind.
type hooks struct {
	connect    []HookBrokerConnect
	disconnect []HookBrokerDisconnect
	written    []HookProduceBatchWritten
	read       []HookFetchBatchRead
}

// add sorts h into its kinds, reporting whether it is of any.
func (hs *hooks) add(h Hook) bool {
	any := false
	if x, ok := h.(HookBrokerConnect); ok {
		hs.connect, any = append(hs.connect, x), true
	}
	if x, ok := h.(HookBrokerDisconnect); ok {
		hs.disconnect, any = append(hs.disconnect, x), true
	}
	if x, ok := h.(HookProduceBatchWritten); ok {
		hs.written, any = append(hs.written, x), true
	}
	if x, ok := h.(HookFetchBatchRead); ok {
		hs.read, any = append(hs.read, x), true
	}
	return any
}

func brokerOf(nc *nats.Conn) BrokerMetadata {
	return BrokerMetadata{Node: nc.ConnectedServerName(), URL: nc.ConnectedUrlRedacted()}
}

func (hs *hooks) connected(meta BrokerMetadata, d time.Duration, err error) {
	for _, h := range hs.connect {
		h.OnBrokerConnect(meta, d, err)
	}
}

func (hs *hooks) disconnected(meta BrokerMetadata, err error) {
	for _, h := range hs.disconnect {
		h.OnBrokerDisconnect(meta, err)
	}
}

func (hs *hooks) batchWritten(topic string, p int32, m ProduceBatchMetrics) {
	for _, h := range hs.written {
		h.OnProduceBatchWritten(topic, p, m)
	}
}

func (hs *hooks) batchRead(topic string, p int32, m FetchBatchMetrics) {
	for _, h := range hs.read {
		h.OnFetchBatchRead(topic, p, m)
	}
}
