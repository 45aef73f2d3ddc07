package kafka_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestFetchRefusesBatchFailingCRC stores, after an intact batch, a batch whose
// Kafka CRC-32C does not match its contents (one bit of a value flipped after the
// CRC was computed; the batch otherwise well formed and JetStream's own checksum
// intact, so only qxd's check can see it), on a single node. A Kafka fetch from
// the start returns the intact batch alone; a fetch from the damaged batch fails
// with CORRUPT_MESSAGE, so no Kafka client is handed its bytes, whether or not it
// checks CRCs itself; describe then shows the damage at those offsets on the node.
func TestFetchRefusesBatchFailingCRC(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "crc", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var rs []*qxd.Record
	for i := range 3 {
		rs = append(rs, &qxd.Record{Topic: "crc", Partition: 0, Value: fmt.Appendf(nil, "value-%d", i)})
	}
	if err := p.ProduceSync(ctx, rs...); err != nil {
		t.Fatal(err)
	}
	fr, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: "crc", MaxBytes: 1 << 20})
	if err != nil || len(fr.Batches) != 1 {
		t.Fatalf("fetch the stored batch: %d batches, %v; want 1", len(fr.Batches), err)
	}
	batch := fr.Batches[0]
	// The stored batch again, as offsets 3 to 5 (the base offset is outside the
	// CRC), with one bit of a value flipped.
	damaged := append([]byte{}, batch...)
	binary.BigEndian.PutUint64(damaged, 3)
	i := bytes.LastIndex(damaged, []byte("value-2"))
	if i < 0 {
		t.Fatalf("the stored batch does not hold value-2 uncompressed: % x", batch)
	}
	damaged[i] ^= 0x20 // "Value-2"
	if _, err := qxdtest.JetStream(t, n).Publish(ctx, semantics.BatchSubject("crc", 0), damaged); err != nil {
		t.Fatal(err)
	}

	rp := fetchFrom(t, ctx, n, "crc", 0)
	if rp.ErrorCode != 0 || !bytes.Equal(rp.RecordBatches, batch) {
		t.Errorf("fetch from offset 0: code %d, %d bytes; want 0 and the intact batch alone (%d bytes)", rp.ErrorCode, len(rp.RecordBatches), len(batch))
	}
	rp = fetchFrom(t, ctx, n, "crc", 3)
	if rp.ErrorCode != kerr.CorruptMessage.Code || len(rp.RecordBatches) != 0 {
		t.Errorf("fetch from offset 3: code %d, %d bytes; want CORRUPT_MESSAGE (%d) and none", rp.ErrorCode, len(rp.RecordBatches), kerr.CorruptMessage.Code)
	}

	for {
		desc, err := c.Admin().DescribeTopic(ctx, "crc")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range desc.Partitions[0].Damaged {
			if d.FromOffset == 3 && d.ToOffset == 5 && d.Node == n.Name() {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("describe does not show offsets 3 to 5 damaged on node %s: %+v", n.Name(), desc.Partitions[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
