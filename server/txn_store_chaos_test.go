//go:build chaos

package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// TestTxnStoreAcrossLeaderChange: the transaction coordinator's writes race a
// leader change of the transactions bucket's stream, as they do after a
// coordinator's failover. A write the stream drops in the change is never
// answered; the coordinator must give it up within its attempt bound and answer
// (an error the client retries), not wait out the request's whole deadline,
// which held a timed-out transaction Ongoing for 30 s after a failover. A
// stepdown asked for together with the write dropped it in 4 of 20 rounds in
// one run here, in 1 of 2 in another; the test passes without a drop too.
func TestTxnStoreAcrossLeaderChange(t *testing.T) {
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	js := qxdtest.JetStream(t, nodes[0])
	ctx := qxdtest.Context(t, 5*time.Minute)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "txn_store", Replicas: 3, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := server.NewTxnCoordinator(kv)
	for i := range 8 {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = js.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN.KV_txn_store", nil, 2*time.Second)
		}()
		rctx, cancel := context.WithTimeout(ctx, 25*time.Second)
		start := time.Now()
		_, _, err := c.InitProducerID(rctx, "t", time.Minute, -1, -1)
		took := time.Since(start)
		cancel()
		wg.Wait()
		t.Logf("round %d: %v, %v", i, took.Round(time.Millisecond), err)
		if took > 15*time.Second {
			t.Fatalf("round %d: InitProducerId answered after %v (%v), want within two store attempts", i, took, err)
		}
		time.Sleep(300 * time.Millisecond) // the stream's new leader settles
	}
}
