package kafka_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// A consumer reading a partition through has its batches loaded from the store
// into the buffers of the answers it was sent before, not into fresh memory for
// every fetch: the node allocates a small part of the bytes it answers. The
// fetches go over a plain connection read into one buffer, so that the test's
// own reading allocates next to nothing; the answers are checked byte for byte
// against the batches stored. Not parallel: it counts the process's allocations.
func TestFetchReusesStoreReadBuffers(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "reused", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	const batches, perBatch = 96, 60
	// Lingering, so that each ProduceSync's records go as one batch: at franz-go's
	// default of none, the first record can leave alone while the others are
	// still being added (97 batches stored once in CI).
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("reused"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(50*time.Millisecond))
	value := bytes.Repeat([]byte("v"), 1024)
	for range batches {
		rs := make([]*kgo.Record, perBatch)
		for j := range rs {
			rs[j] = &kgo.Record{Value: value}
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Under load a ProduceSync can still leave in two batches (its linger passes
	// while the records are added): at least one batch per call is stored.
	stored, err := n.Fetcher().Fetch(ctx, serverFetch("reused"))
	if err != nil || len(stored.Batches) < batches {
		t.Fatalf("%d batches stored (%v), want at least %d", len(stored.Batches), err, batches)
	}
	want := bytes.Join(stored.Batches, nil)
	largest := 0
	for _, b := range stored.Batches {
		largest = max(largest, len(b))
	}

	nc, err := net.Dial("tcp", n.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	buf := make([]byte, 4<<20)
	got := make([]byte, 0, len(want))
	offset, fetches := int64(0), 0
	var before, after runtime.MemStats
	answered := 0
	for offset < batches*perBatch {
		if fetches == 4 {
			// The first fetches fill the pool.
			runtime.ReadMemStats(&before)
		}
		rec := fetchPlain(t, nc, buf, int32(fetches), "reused", offset, 4*largest+largest/2)
		if len(rec) == 0 {
			t.Fatalf("fetch %d from offset %d answered no batches", fetches, offset)
		}
		if fetches >= 4 {
			answered += len(rec)
		}
		got = append(got, rec...)
		// The offset after the answer's last batch.
		for b := rec; len(b) > 0; {
			h, err := semantics.PeekBatchHeader(b)
			if err != nil {
				t.Fatalf("fetch %d: %v", fetches, err)
			}
			offset = h.LastOffset() + 1
			b = b[12+binary.BigEndian.Uint32(b[8:12]):]
		}
		fetches++
	}
	runtime.ReadMemStats(&after)
	if !bytes.Equal(got, want) {
		t.Fatalf("%d fetches answered %d bytes, not the %d bytes stored", fetches, len(got), len(want))
	}
	if fetches < 10 {
		t.Fatalf("%d fetches, want at least 10", fetches)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	bound := 0.5
	if raceDetector {
		bound = 0.75
	}
	if ratio := float64(allocated) / float64(answered); ratio > bound {
		t.Errorf("fetches 5 to %d answered %d bytes of batches and the process allocated %d bytes meanwhile (%.2f a byte answered); want under %.2f",
			fetches, answered, allocated, ratio, bound)
	} else {
		t.Logf("%.3f bytes allocated a byte answered", ratio)
	}
}

// fetchPlain sends one Fetch v11 of partition 0 of topic from offset, with
// partMax bytes, on nc, reads its answer into buf, and returns the partition's
// records.
func fetchPlain(t *testing.T, nc net.Conn, buf []byte, corr int32, topic string, offset int64, partMax int) []byte {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 11, -1, 0, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset, rp.CurrentLeaderEpoch = offset, int32(partMax), -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	out := binary.BigEndian.AppendUint32(buf[:0], 0)
	out = binary.BigEndian.AppendUint16(out, uint16(req.Key()))
	out = binary.BigEndian.AppendUint16(out, uint16(req.Version))
	out = binary.BigEndian.AppendUint32(out, uint32(corr))
	out = binary.BigEndian.AppendUint16(out, 1)
	out = append(out, 't')
	out = req.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, buf[:8]); err != nil {
		t.Fatal(err)
	}
	size := int(binary.BigEndian.Uint32(buf))
	if got := int32(binary.BigEndian.Uint32(buf[4:])); got != corr || size > len(buf) {
		t.Fatalf("answer of %d bytes to request %d, want one to %d within %d bytes", size, got, corr, len(buf))
	}
	body := buf[:size-4]
	if _, err := io.ReadFull(nc, body); err != nil {
		t.Fatal(err)
	}
	// v11: throttle, error code, session id, then one topic of one partition:
	// name, partition, error code, high watermark, last stable offset, log
	// start, aborted transactions (array), preferred replica, records.
	b := body[4+2+4+4:]
	nameLen := int(binary.BigEndian.Uint16(b))
	if string(b[2:2+nameLen]) != topic {
		t.Fatalf("answer for topic %q, want %q", b[2:2+nameLen], topic)
	}
	b = b[2+nameLen+4:]
	if code := int16(binary.BigEndian.Uint16(b[4:])); code != 0 {
		t.Fatalf("fetch from offset %d: error code %d", offset, code)
	}
	b = b[4+2+8+8+8:]
	if aborted := int32(binary.BigEndian.Uint32(b)); aborted > 0 {
		t.Fatalf("fetch from offset %d: %d aborted transactions", offset, aborted)
	}
	b = b[4+4:]
	n := int(binary.BigEndian.Uint32(b))
	return b[4 : 4+n]
}

func serverFetch(topic string) server.FetchRequest {
	return server.FetchRequest{Topic: topic, Partition: 0, MaxBytes: 64 << 20}
}
