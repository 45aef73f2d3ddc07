package qxd_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestProducerSendsWhenAnswersFreeRoom produces records faster than one partition's
// batches are answered, without Flush: the records that collect while the partition
// has no room in flight must leave as soon as an answer frees room, not wait for
// their batch to fill or for the next record.
func TestProducerSendsWhenAnswersFreeRoom(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "room", qxd.TopicConfig{})
	for _, inFlight := range []int{1, 5} {
		t.Run(fmt.Sprintf("in flight %d", inFlight), func(t *testing.T) {
			ctx := qxdtest.Context(t, 30*time.Second)
			p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.MaxInFlight(inFlight))
			const records = 500
			if acked, failed := producePaced(t, ctx, p, "room", records); acked != records || failed != 0 {
				t.Fatalf("10 s after producing %d records without Flush, one every 100 µs: %d acked, %d failed, %d still buffered",
					records, acked, failed, p.BufferedRecords())
			}
		})
	}
}

// producePaced produces one record to topic and waits for it, then produces
// records more, one every 100 µs so that they keep arriving while batches are in
// flight, without Flush (it would send the open batch at once, in flight or not),
// and waits up to 10 s for their callbacks. It returns how many were acknowledged
// and how many failed.
func producePaced(t *testing.T, ctx context.Context, p *qxd.Producer, topic string, records int) (acked, failed int64) {
	t.Helper()
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	a, f, cb := countResults()
	for i := range records {
		if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}, cb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Load()+f.Load() < int64(records) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return a.Load(), f.Load()
}

// flightHook records when each acknowledged batch was sent and answered.
type flightHook struct {
	mu      sync.Mutex
	flights [][2]time.Time // sent, answered
	records []int
}

func (h *flightHook) OnProduceBatchWritten(_ string, _ int32, m qxd.ProduceBatchMetrics) {
	now := time.Now()
	h.mu.Lock()
	h.flights = append(h.flights, [2]time.Time{now.Add(-m.Latency), now})
	h.records = append(h.records, m.NumRecords)
	h.mu.Unlock()
}

// TestProducerCollectsWhileABatchIsInFlight produces records one at a time at linger
// 0 into one partition: the records that arrive while a batch awaits its answer
// collect into the next batch, which leaves when the answer comes (Kafka's linger 0
// batches whatever queued while the sender was busy), rather than each leaving as a
// batch of its own to queue behind the others for its own fsync. Batches that are
// not full never overlap in flight at linger 0, whatever MaxInFlight allows.
func TestProducerCollectsWhileABatchIsInFlight(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	h := &flightHook{}
	c, err := qxd.Connect(ctx, n.ClientURL(), qxd.Hooks(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qxdtest.CreateTopic(t, c, "collect", qxd.TopicConfig{})
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.MaxInFlight(5))
	const records = 500
	if acked, failed := producePaced(t, ctx, p, "collect", records); acked != records || failed != 0 {
		t.Fatalf("%d acked, %d failed, want %d acked", acked, failed, records)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	overlaps := 0
	for i := 1; i < len(h.flights); i++ {
		if h.flights[i][0].Before(h.flights[i-1][1]) {
			overlaps++
		}
	}
	if overlaps > 0 {
		t.Fatalf("%d of %d batches were sent before the one ahead of them was answered (records per batch: %v)",
			overlaps, len(h.flights), h.records)
	}
}

// sendHook records when each acknowledged batch was sent and its base offset.
type sendHook struct {
	mu    sync.Mutex
	sent  []time.Time
	bases []int64
}

func (h *sendHook) OnProduceBatchWritten(_ string, _ int32, m qxd.ProduceBatchMetrics) {
	now := time.Now()
	h.mu.Lock()
	h.sent = append(h.sent, now.Add(-m.Latency))
	h.bases = append(h.bases, m.BaseOffset)
	h.mu.Unlock()
}

// TestProducerSendsBeforeRunningCallbacks produces records one at a time at linger
// 0 into one partition, with callbacks that take their time: the records collected
// while a batch was in flight must leave when its answer comes, before its records'
// callbacks run, not after them.
func TestProducerSendsBeforeRunningCallbacks(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	h := &sendHook{}
	c, err := qxd.Connect(ctx, n.ClientURL(), qxd.Hooks(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qxdtest.CreateTopic(t, c, "callbacks", qxd.TopicConfig{})
	p := qxdtest.NewProducer(t, c, qxd.Linger(0))
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "callbacks", Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	const records = 300
	var mu sync.Mutex
	called := map[int64]time.Time{} // offset → when its callback ran
	slow := func(r *qxd.Record, err error) {
		if err == nil {
			mu.Lock()
			called[r.Offset] = time.Now()
			mu.Unlock()
		}
		time.Sleep(300 * time.Microsecond)
	}
	for i := range records {
		if err := p.Produce(ctx, &qxd.Record{Topic: "callbacks", Value: []byte(fmt.Sprint(i))}, slow); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(called) != records {
		t.Fatalf("%d of %d records acknowledged", len(called), records)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// Batch 0 is the first record, produced alone; batch 1 the first paced one.
	early := 0
	for i := 2; i < len(h.sent); i++ {
		if h.sent[i].Before(called[h.bases[i-1]]) {
			early++
		}
	}
	if early == 0 {
		t.Fatalf("none of %d batches left before the callbacks of the batch ahead of it ran (base offsets: %v)",
			len(h.sent)-2, h.bases)
	}
	t.Logf("%d of %d batches left before the callbacks of the batch ahead of it ran", early, len(h.sent)-2)
}
