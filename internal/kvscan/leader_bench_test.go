package kvscan_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// BenchmarkKeyRead reads one key of a bucket on one node: with a direct get
// (Get, any replica), from the leader (LeaderGet, the JetStream API's message
// get) and with GetFresh (the leader, bounded): what reading a topic record or
// checkpoint from the leader costs against a replica's copy.
func BenchmarkKeyRead(b *testing.B) {
	n := qxdtest.StartNode(b)
	js := qxdtest.JetStream(b, n)
	ctx := qxdtest.Context(b, 5*time.Minute)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "k", `{"name":"orders","partitions":12}`); err != nil {
		b.Fatal(err)
	}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := kvscan.Get(ctx, kv, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("leader", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := kvscan.LeaderGet(ctx, js.Conn(), "bench", "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := kvscan.GetFresh(ctx, js.Conn(), kv, "k", time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}
