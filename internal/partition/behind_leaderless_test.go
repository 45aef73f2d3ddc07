package partition_test

import (
	"encoding/binary"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestOffsetsBehindWithoutTheLeadersLastBatch reads a partition's offsets with a
// direct reader while a member of the stream's direct-get queue group holds only
// its first batches (a mirror that refuses messages past them, as a follower cut
// from its leader answers with what it held at the cut) and the leader's message
// get does not answer the reader (its user may not send it: as for a reader whose
// stream leader is cut off or between leaders). The high watermark then comes
// from that replica and may be behind the leader's; ReadOffsets must say so
// (Offsets.Behind). A consumer given a high watermark from a replica behind as
// the partition's sent an offset its group had committed past it back to the
// reset policy's start, and read the partition again from offset 0 (the pair-cut
// drill).
func TestOffsetsBehindWithoutTheLeadersLastBatch(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 3*time.Minute)
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*natsserver.User{
			{Username: "writer", Password: "w"},
			{Username: "reader", Password: "r", Permissions: &natsserver.Permissions{
				Publish: &natsserver.SubjectPermission{Allow: []string{">"}, Deny: []string{semantics.JSStreamMsgGetPrefix + ".>"}},
			}},
		},
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	wc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("writer", "w"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	rc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("reader", "r"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	js, err := jetstream.New(wc)
	if err != nil {
		t.Fatal(err)
	}

	const topic = "behind-leaderless"
	stream := semantics.StreamName(topic, 0)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{semantics.StreamSubject(topic, 0)}, AllowDirect: true, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	const held, batches = 3, 8
	mirror, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream + "_behind", Mirror: &jetstream.StreamSource{Name: stream}, MirrorDirect: true,
		MaxMsgs: held, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	subject := semantics.BatchSubject(topic, 0)
	for i := range int64(batches) {
		b := semantics.BuildControlBatch(1, 0, true, 0, time.Now())
		binary.BigEndian.PutUint64(b, uint64(i)) // base offset i, one record each
		if _, err := js.Publish(ctx, subject, b); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(ctx, t, mirror, func(s jetstream.StreamState) bool { return s.Msgs == held })

	// Each direct get reaches the mirror with probability 1/2: 30 rounds miss
	// it with probability 2^-30. A round that reaches it waits out the refused
	// leader get (5 s): two such rounds suffice.
	direct := partition.NewReader(rc, topic, 0, true)
	short := 0
	for round := 0; round < 30 && short < 2; round++ {
		got, err := direct.ReadOffsets(ctx, nil)
		if err != nil {
			t.Fatalf("round %d: ReadOffsets through a direct reader: %v", round, err)
		}
		if got.HighWatermark < batches {
			short++
			if !got.Behind {
				t.Fatalf("round %d: high watermark %d (last batch at sequence %d of %d) read from a replica behind, not marked Behind; the leader's is %d",
					round, got.HighWatermark, got.LastBatchSeq, got.LastSeq, batches)
			}
		} else if got.Behind {
			t.Fatalf("round %d: the leader's high watermark %d marked Behind", round, got.HighWatermark)
		}
	}
	if short == 0 {
		t.Fatal("no read reached the replica held behind (or the leader's message get was not refused)")
	}
}
