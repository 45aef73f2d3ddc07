package qxd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestConsumerRefusesBatchFailingCRC stores, after an intact batch, a batch whose
// Kafka CRC-32C does not match its contents: one bit of a value flipped after the
// CRC was computed, the batch otherwise well formed and JetStream's own checksum
// intact, so only qxd's CRC check can see it. On a single node a consumer reads
// the intact batch's records, then fails with CORRUPT_MESSAGE naming the topic,
// the partition, the offsets and the node, and never hands out a record of the
// damaged batch (docs/architecture.md, invariant 7); describe and cluster info
// then show the partition damaged there.
func TestConsumerRefusesBatchFailingCRC(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
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

	// The stored batch again, as offsets 3 to 5 (the base offset is outside the
	// CRC), with a bit of its last record flipped.
	js := qxdtest.JetStream(t, n)
	stream, err := js.Stream(ctx, semantics.StreamName("crc", 0))
	if err != nil {
		t.Fatal(err)
	}
	var batch []byte
	for seq := uint64(1); batch == nil; seq++ {
		m, err := stream.GetMsg(ctx, seq) // the writer may store a checkpoint first
		if err != nil {
			t.Fatalf("read the stored batch: %v", err)
		}
		if _, err := semantics.ParseBatchHeader(m.Data); err == nil {
			batch = m.Data
		}
	}
	damaged := append([]byte{}, batch...)
	binary.BigEndian.PutUint64(damaged, 3)
	i := bytes.LastIndex(damaged, []byte("value-2"))
	if i < 0 {
		t.Fatalf("the stored batch does not hold value-2 uncompressed: % x", batch)
	}
	damaged[i] ^= 0x20 // "Value-2": a well-formed batch whose CRC-32C fails
	if _, err := semantics.ParseBatchHeader(damaged); !errors.Is(err, semantics.ErrCorruptMessage) {
		t.Fatalf("the damaged batch parses with %v; want a CRC mismatch", err)
	}
	if _, err := js.Publish(ctx, semantics.BatchSubject("crc", 0), damaged); err != nil {
		t.Fatal(err)
	}

	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "crc", Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		recs, err := cons.Poll(ctx)
		for _, r := range recs {
			if r.Offset >= 3 || string(r.Value) != fmt.Sprintf("value-%d", r.Offset) {
				t.Fatalf("the consumer handed out offset %d (value %q) from the batch that fails its CRC-32C", r.Offset, r.Value)
			}
			got = append(got, string(r.Value))
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, qxd.ErrCorruptMessage) {
			t.Fatalf("after %d records the read ended with %v; want CORRUPT_MESSAGE", len(got), err)
		}
		t.Logf("the read ended with: %v", err)
		for _, want := range []string{"crc/0", "offsets 3 to 5", "node " + n.Name()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the read's error %q does not name %q", err, want)
			}
		}
		break
	}
	if len(got) != 3 {
		t.Errorf("read %d records of the intact batch before the error, want 3", len(got))
	}

	// The consumer reports what it found: describe and cluster info show the
	// partition damaged at those offsets on the node.
	found := func(ds []qxd.BatchDamage) bool {
		for _, d := range ds {
			if d.FromOffset == 3 && d.ToOffset == 5 && d.Node == n.Name() {
				return true
			}
		}
		return false
	}
	var desc qxd.TopicDescription
	var info qxd.ClusterInfo
	for {
		if desc, err = c.Admin().DescribeTopic(ctx, "crc"); err != nil {
			t.Fatal(err)
		}
		if info, err = c.Admin().ClusterInfo(ctx); err != nil {
			t.Fatal(err)
		}
		if found(desc.Partitions[0].Damaged) && len(info.Damaged) == 1 && found(info.Damaged[0].Damaged) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("describe and cluster info do not show offsets 3 to 5 damaged on node %s: %+v; %+v", n.Name(), desc.Partitions[0], info.Damaged)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
