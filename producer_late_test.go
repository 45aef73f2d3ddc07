package qxd_test

import (
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestProducerFencesLateBatchesAfterTimeout: a record whose delivery timed out
// while its requests sat in a dead link (outcome unknown) may still be stored
// when the link delivers them after all, but never behind a record of its key
// produced after the timeout. After such a timeout the producer moves to the
// next epoch of its producer id, whose older epoch the writer then refuses, as
// Kafka's producer and broker do; under a new producer id the writer took the
// late requests and stored the record behind the newer one.
func TestProducerFencesLateBatchesAfterTimeout(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 60*time.Second)
	r, c := relayedClient(ctx, t)
	const topic = "late"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.RequestTimeout(150*time.Millisecond), qxd.DeliveryTimeout(500*time.Millisecond))
	key := []byte("k")
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: key, Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}

	r.hold()
	err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: key, Value: []byte("timed-out")})
	if !errors.Is(err, qxd.ErrRecordTimeout) {
		t.Fatalf("record produced into the dead link: %v, want a delivery timeout", err)
	}
	// The client leaves the silent link for the node itself.
	for c.Conn().ConnectedAddr() == r.addr() || !c.Conn().IsConnected() {
		if ctx.Err() != nil {
			t.Fatal("the client did not leave the silent link")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: key, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	r.release()
	// The writer has the late requests in well under a second.
	time.Sleep(time.Second)

	d, err := c.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw := d.Partitions[0].HighWatermark
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for int64(len(got)) < hw {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			got = append(got, string(rec.Value))
		}
	}
	t.Logf("stored, in order: %v", got)
	after := -1
	for i, v := range got {
		switch v {
		case "after":
			after = i
		case "timed-out":
			if after >= 0 {
				t.Errorf("the record that timed out was stored after a later record of its key: %v", got)
			}
		}
	}
	if after < 0 {
		t.Errorf("the record produced after the timeout is not stored: %v", got)
	}
}
