//go:build chaos

package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestWriterReplayMeasure measures how long a partition writer's load takes, and
// how much of it is the replay of the batches stored after its checkpoint, for
// tails of several lengths: each round stores a tail of idempotent batches
// without a checkpoint behind the writer's back (as an older writer could leave
// it), restarts the writer and reads its "writer loaded" log line.
// QXD_WR_BATCHES lists the tail lengths (default 100,1000,5000), QXD_WR_VALUE
// the bytes of each batch's one record (default 100), QXD_WR_ROUNDS the rounds
// per length (default 3).
func TestWriterReplayMeasure(t *testing.T) {
	tails := []int{100, 1000, 5000}
	if v := os.Getenv("QXD_WR_BATCHES"); v != "" {
		tails = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("QXD_WR_BATCHES=%q: %v", v, err)
			}
			tails = append(tails, n)
		}
	}
	size, rounds := 100, 3
	if v, err := strconv.Atoi(os.Getenv("QXD_WR_VALUE")); err == nil {
		size = v
	}
	if v, err := strconv.Atoi(os.Getenv("QXD_WR_ROUNDS")); err == nil {
		rounds = v
	}
	logs := &lockedBuffer{}
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Sync = time.Minute // the tails are stored fast; the load is what is measured
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 10*time.Minute)
	ws := n.Writers()
	value := bytes.Repeat([]byte("v"), size)
	for _, tail := range tails {
		for round := range rounds {
			topic := fmt.Sprintf("wr%d-%d", tail, round)
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
			pi := semantics.ProducerInfo{ID: 7, Epoch: 0}
			if _, err := appendRetrying(ctx, ws, topic, 0, batchOf(t, pi, value)); err != nil {
				t.Fatal(err)
			}
			var acks []jetstream.PubAckFuture
			for i := range tail {
				pi.BaseSequence = int32(1 + i)
				batch := batchOf(t, pi, value)
				semantics.SetBaseOffset(batch, int64(1+i))
				a, err := js.PublishAsync(semantics.BatchSubject(topic, 0), batch)
				if err != nil {
					t.Fatal(err)
				}
				acks = append(acks, a)
				if i%1000 == 999 {
					<-js.PublishAsyncComplete()
				}
			}
			for _, a := range acks {
				select {
				case <-a.Ok():
				case err := <-a.Err():
					t.Fatal(err)
				}
			}
			since := time.Now()
			_ = n.HandOffVia(ctx, n.Name(), semantics.StreamName(topic, 0), "")
			var took, replay time.Duration
			for deadline := time.Now().Add(2 * time.Minute); took == 0; {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the writer did not load again", topic)
				}
				time.Sleep(20 * time.Millisecond)
				for _, line := range logs.lines() {
					var r struct {
						Time   time.Time `json:"time"`
						Msg    string    `json:"msg"`
						Topic  string    `json:"topic"`
						Took   int64     `json:"took"`
						Replay int64     `json:"replay"`
					}
					if json.Unmarshal(line, &r) == nil && r.Topic == topic && r.Msg == "writer loaded its partition's state" && r.Time.After(since) {
						took, replay = time.Duration(r.Took), time.Duration(r.Replay)
					}
				}
			}
			// The load must have rebuilt the tail's state: the next offset follows
			// it, and the producer's last batch is a duplicate.
			r, err := appendRetrying(ctx, ws, topic, 0, batchOf(t, semantics.ProducerInfo{ID: 7, BaseSequence: int32(tail)}, value))
			if err != nil || r.BaseOffset != int64(tail) {
				t.Fatalf("%s: the tail's last batch again: offset %d, %v (want the duplicate's %d)", topic, r.BaseOffset, err, tail)
			}
			t.Logf("RESULT batches=%d value=%dB round=%d load=%v replay=%v per_batch=%v", tail, size, round,
				took.Round(time.Microsecond), replay.Round(time.Microsecond), (replay / time.Duration(tail)).Round(time.Microsecond/10))
		}
	}
}

func batchOf(t *testing.T, pi semantics.ProducerInfo, value []byte) []byte {
	t.Helper()
	var b semantics.BatchBuilder
	b.Append(&semantics.Record{Key: []byte("k"), Value: value, Timestamp: time.UnixMilli(1700000000000)})
	out, err := b.Build(nil, pi, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
