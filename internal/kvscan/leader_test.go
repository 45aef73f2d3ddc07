package kvscan_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestLeaderGet reads keys of a bucket on a real node from its leader: a key's
// latest value and revision, and jetstream.ErrKeyNotFound for a key never
// written, one deleted and one purged; GetFresh reads the same.
func TestLeaderGet(t *testing.T) {
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leader"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	rev, err := kv.PutString(ctx, "k", "new")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"del", "purged"} {
		if _, err := kv.PutString(ctx, key, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, "del"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "purged"); err != nil {
		t.Fatal(err)
	}
	v, r, err := kvscan.LeaderGet(ctx, js.Conn(), "leader", "k")
	if err != nil || string(v) != "new" || r != rev {
		t.Fatalf("LeaderGet of k: %q revision %d, %v; want \"new\" revision %d", v, r, err, rev)
	}
	v, r, err = kvscan.GetFresh(ctx, js.Conn(), kv, "k", time.Second)
	if err != nil || string(v) != "new" || r != rev {
		t.Fatalf("GetFresh of k: %q revision %d, %v; want \"new\" revision %d", v, r, err, rev)
	}
	for _, key := range []string{"never", "del", "purged"} {
		if v, r, err := kvscan.LeaderGet(ctx, js.Conn(), "leader", key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("LeaderGet of %s: %q revision %d, %v; want jetstream.ErrKeyNotFound", key, v, r, err)
		}
	}
}
