package server_test

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestKafkaSuspendResetsRequestsInFlight: a node that counts itself cut off
// suspends its Kafka listener, ending the requests in flight on it. A request
// that is the first on its connection (franz-go opens one for each Metadata
// read after its idle connections are reaped) must end as a network error the
// client retries, not as an orderly close: franz-go takes an EOF before the
// first answer on a connection for a broker that wants authentication, and
// gives the request up (ErrFirstReadEOF). In a cut drill that failed records
// the producer held, and made it read the metadata again only 5 s later.
//
// Here a fetch waits on an empty partition, the first request on a new
// connection, while the listener is suspended and resumed 50 ms later: franz-go
// must retry it (after its 250 ms backoff) and get its answer.
func TestKafkaSuspendResetsRequestsInFlight(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "suspend-in-flight"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	meta, err := c.Admin().Topic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	id, err := base64.RawURLEncoding.DecodeString(meta.ID)
	if err != nil || len(id) != 16 {
		t.Fatalf("topic id %q: %v", meta.ID, err)
	}
	var topicID [16]byte
	copy(topicID[:], id)

	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 2000
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	done := make(chan error, 1)
	go func() {
		_, err := cl.Request(ctx, req)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the fetch waits on the node
	n.KafkaCutOff(true)
	time.Sleep(50 * time.Millisecond)
	n.KafkaCutOff(false)
	select {
	case err := <-done:
		var first *kgo.ErrFirstReadEOF
		if errors.As(err, &first) {
			t.Fatalf("the fetch in flight when the listener was suspended failed for good: %v", err)
		}
		if err != nil {
			t.Fatalf("the fetch in flight when the listener was suspended: %v, want it retried and answered", err)
		}
	case <-ctx.Done():
		t.Fatal("the fetch was not answered")
	}
}
