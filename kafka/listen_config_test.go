package kafka_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// A Kafka listen address in use stops the node from starting, with an error that
// names the address and the flag, before anything starts.
func TestKafkaListenInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = busy.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := server.Start(ctx, cfg)
	if err == nil {
		n.Close(ctx)
		t.Fatal("node started on a Kafka address in use")
	}
	if msg := err.Error(); !strings.Contains(msg, busy.Addr().String()) || !strings.Contains(msg, "--kafka-listen") {
		t.Fatalf("error %q: want the address and --kafka-listen named", msg)
	}
}

// Metadata gives the advertised address, not the one bound.
func TestKafkaAdvertise(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen, cfg.KafkaAdvertise = "127.0.0.1:0", "kafka.example.com:19092"
	n := qxdtest.StartNodeWith(t, cfg)
	resp := roundTrip(t, n.KafkaAddr(), kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse)
	if len(resp.Brokers) != 1 || resp.Brokers[0].Host != "kafka.example.com" || resp.Brokers[0].Port != 19092 {
		t.Fatalf("brokers %+v, want kafka.example.com:19092", resp.Brokers)
	}
}
