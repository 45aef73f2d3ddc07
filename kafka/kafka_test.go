package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// startNode starts a node with a Kafka listener on a free port and returns it with
// a qxd SDK client.
func startNode(t *testing.T) (*server.Node, *qxd.Client) {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	n := qxdtest.StartNodeWith(t, cfg)
	return n, qxdtest.Connect(t, n)
}

// kafkaClient returns a franz-go client of n's Kafka listener, closed at cleanup.
func kafkaClient(t *testing.T, n *server.Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr()), kgo.RetryTimeout(20 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pollSDK reads want records with the SDK from the start of every partition of topic.
func pollSDK(t *testing.T, c *qxd.Client, topic string, partitions int32, want int) []qxd.Record {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	cons := c.NewConsumer()
	defer cons.Close()
	var as []qxd.Assignment
	for p := range partitions {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	var out []qxd.Record
	for len(out) < want {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", len(out), want, err)
		}
		out = append(out, rs...)
	}
	return out
}

type rec struct {
	key, value string
	partition  int32
	offset     int64
}

func (r rec) String() string {
	return fmt.Sprintf("%s=%s@%d/%d", r.key, r.value, r.partition, r.offset)
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
