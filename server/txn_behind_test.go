package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestTxnReadAgainPastAReplicaLeftBehind has another coordinator bump a
// transactional id's epoch behind a coordinator's back, round after round, while
// a member of the transactions bucket's direct-get queue group holds only the
// id's first record (qxdtest.HoldBucketBehind). The coordinator's store then fails, and it
// reads the record again: the next InitProducerId must fence the other's epoch
// (answer one past it). Read from that replica, the record read again was the
// first one, and about half the rounds' second InitProducerId failed again with
// NOT_COORDINATOR, or would have answered an epoch already given.
func TestTxnReadAgainPastAReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "txn_behind", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, "txn_behind", 1)
	c := server.NewTxnCoordinator(js.Conn(), kv)
	pid, epoch, err := c.InitProducerID(ctx, "t", time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	qxdtest.WaitHeld(ctx, t, mirror, 1)
	key := semantics.TxnKey("t")
	for round := range 20 {
		// Another coordinator's write: the epoch ten past this one's.
		v, rev, err := kvscan.LeaderGet(ctx, js.Conn(), "txn_behind", key)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber() // the producer id is past a float64's precision
		if err := d.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		other := epoch + 10
		rec["epoch"] = other
		b, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, key, b, rev); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.InitProducerID(ctx, "t", time.Minute, pid, epoch); !errors.Is(err, semantics.ErrNotCoordinator) {
			t.Fatalf("round %d: InitProducerId over another coordinator's write: %v, want NOT_COORDINATOR", round, err)
		}
		gotPID, got, err := c.InitProducerID(ctx, "t", time.Minute, -1, -1)
		if err != nil || gotPID != pid || got != other+1 {
			t.Fatalf("round %d: InitProducerId again: producer %d epoch %d, %v; want producer %d epoch %d (past the other's %d)",
				round, gotPID, got, err, pid, other+1, other)
		}
		epoch = got
	}
}
