package kvscan_test

import (
	"fmt"
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

// BenchmarkScanAll reads every key of a bucket of 1,000 keys (each a 300-byte
// value, about a stored group's size) on one node: with a watcher (Scan, a
// consumer on any replica), with LeaderScan (the leader's last revision, then a
// watcher that reaches it) and with the walk LeaderScan falls back to when a
// watcher's replica is behind (one leader's message get per stored message):
// what a coordinator's start costs.
func BenchmarkScanAll(b *testing.B) {
	n := qxdtest.StartNode(b)
	js := qxdtest.JetStream(b, n)
	ctx := qxdtest.Context(b, 5*time.Minute)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "benchscan", History: 1})
	if err != nil {
		b.Fatal(err)
	}
	const keys = 1000
	value := make([]byte, 300)
	for i := range keys {
		if _, err := kv.Put(ctx, fmt.Sprintf("g%04d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("watcher", func(b *testing.B) {
		for b.Loop() {
			got := 0
			if err := kvscan.Scan(ctx, kv, jetstream.AllKeys, func() { got = 0 }, func(jetstream.KeyValueEntry) error {
				got++
				return nil
			}); err != nil || got != keys {
				b.Fatalf("%d keys, %v", got, err)
			}
		}
	})
	b.Run("leader", func(b *testing.B) {
		for b.Loop() {
			got := 0
			if err := kvscan.LeaderScan(ctx, js.Conn(), kv, jetstream.AllKeys, func(kvscan.Entry) error {
				got++
				return nil
			}); err != nil || got != keys {
				b.Fatalf("%d keys, %v", got, err)
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if got, err := kvscan.LeaderWalk(ctx, js.Conn(), "benchscan", jetstream.AllKeys); err != nil || len(got) != keys {
				b.Fatalf("%d keys, %v", len(got), err)
			}
		}
	})
}
