package qxd_test

import (
	"fmt"
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
			p, err := c.NewProducer(qxd.Linger(0), qxd.MaxInFlight(inFlight))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			if err := p.ProduceSync(ctx, &qxd.Record{Topic: "room", Value: []byte("first")}); err != nil {
				t.Fatal(err)
			}
			// Paced, so that records keep arriving while batches are in flight.
			acked, failed, cb := countResults()
			const records = 500
			for i := range records {
				if err := p.Produce(ctx, &qxd.Record{Topic: "room", Value: []byte(fmt.Sprint(i))}, cb); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Microsecond)
			}
			deadline := time.Now().Add(10 * time.Second)
			for acked.Load()+failed.Load() < records && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if acked.Load() != records || failed.Load() != 0 {
				t.Fatalf("10 s after producing %d records without Flush, one every 100 µs: %d acked, %d failed, %d still buffered",
					records, acked.Load(), failed.Load(), p.BufferedRecords())
			}
		})
	}
}
