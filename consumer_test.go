package qxd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// fill produces n records with values "0".."n-1" to partition 0 of topic, in batches
// of batch records, and returns their timestamps.
func fill(t *testing.T, c *qxd.Client, topic string, n, batch int) {
	t.Helper()
	ctx := qxdtest.Context(t, 30*time.Second)
	p, err := c.NewProducer(qxd.RecordPartition(), qxd.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < n; i += batch {
		var rs []*qxd.Record
		for j := i; j < min(i+batch, n); j++ {
			rs = append(rs, &qxd.Record{Topic: topic, Value: []byte(fmt.Sprint(j)), Timestamp: base.Add(time.Duration(j) * time.Second)})
		}
		if err := p.ProduceSync(t.Context(), rs...); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsumerStartPositions(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "pos", qxd.TopicConfig{})
	fill(t, c, "pos", 100, 7) // batches of 7: offsets 0-6, 7-13, ...
	base := time.UnixMilli(1_700_000_000_000)

	cases := []struct {
		name  string
		off   qxd.Offset
		first int64
	}{
		{"start", qxd.AtStart(), 0},
		{"middle of a batch", qxd.At(45), 45},
		{"first of a batch", qxd.At(49), 49},
		{"last record", qxd.At(99), 99},
		{"timestamp", qxd.AtTime(base.Add(30 * time.Second)), 30},
		{"timestamp between records", qxd.AtTime(base.Add(30*time.Second + time.Millisecond)), 31},
		{"timestamp before everything", qxd.AtTime(base.Add(-time.Hour)), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := qxdtest.Context(t, 20*time.Second)
			cons := qxdtest.NewConsumer(t, c)
			defer cons.Close(context.Background())
			if err := cons.Assign(ctx, qxd.Assignment{Topic: "pos", Offset: tc.off}); err != nil {
				t.Fatal(err)
			}
			recs, err := cons.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if recs[0].Offset != tc.first || string(recs[0].Value) != fmt.Sprint(tc.first) {
				t.Fatalf("first record offset %d value %s, want %d", recs[0].Offset, recs[0].Value, tc.first)
			}
			if !recs[0].Timestamp.Equal(base.Add(time.Duration(tc.first) * time.Second)) {
				t.Fatalf("timestamp %v", recs[0].Timestamp)
			}
		})
	}

	t.Run("end waits for new records", func(t *testing.T) {
		ctx := qxdtest.Context(t, 20*time.Second)
		cons := qxdtest.NewConsumer(t, c)
		defer cons.Close(context.Background())
		if err := cons.Assign(ctx, qxd.Assignment{Topic: "pos", Offset: qxd.AtEnd()}); err != nil {
			t.Fatal(err)
		}
		if pos, _ := cons.Position("pos", 0); pos != 100 {
			t.Fatalf("position at end %d, want 100", pos)
		}
		p, _ := c.NewProducer()
		defer p.Close(ctx)
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "pos", Value: []byte("new")}); err != nil {
			t.Fatal(err)
		}
		recs, err := cons.Poll(ctx)
		if err != nil || len(recs) != 1 || recs[0].Offset != 100 {
			t.Fatalf("records after end: %v %v", recs, err)
		}
	})

	t.Run("reset policies", func(t *testing.T) {
		ctx := qxdtest.Context(t, 20*time.Second)
		for _, tc := range []struct {
			policy qxd.ResetPolicy
			want   int64
		}{{qxd.ResetEarliest, 0}, {qxd.ResetLatest, 101}} {
			cons := qxdtest.NewConsumer(t, c, qxd.AutoOffsetReset(tc.policy))
			if err := cons.Assign(ctx, qxd.Assignment{Topic: "pos", Offset: qxd.At(5000)}); err != nil {
				t.Fatal(err)
			}
			if pos, _ := cons.Position("pos", 0); pos != tc.want {
				t.Errorf("policy %d: position %d, want %d", tc.policy, pos, tc.want)
			}
			cons.Close(context.Background())
		}
	})
}

func TestConsumerSeekPauseResume(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "sp", qxd.TopicConfig{Partitions: 2})
	fill(t, c, "sp", 50, 10)
	cons := qxdtest.NewConsumer(t, c, qxd.MaxPollRecords(5))
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "sp", Partition: 0}, qxd.Assignment{Topic: "sp", Partition: 1}); err != nil {
		t.Fatal(err)
	}
	recs, err := cons.Poll(ctx)
	if err != nil || recs[0].Offset != 0 {
		t.Fatalf("%v %v", recs, err)
	}
	if err := cons.Seek(ctx, "sp", 0, qxd.At(42)); err != nil {
		t.Fatal(err)
	}
	recs, err = cons.Poll(ctx)
	if err != nil || recs[0].Offset != 42 {
		t.Fatalf("after seek: first offset %v, %v", recs, err)
	}
	at := recs[len(recs)-1].Offset + 1
	cons.Pause(qxd.TopicPartition{Topic: "sp", Partition: 0})
	short := qxdtest.Context(t, 300*time.Millisecond)
	if recs, err := cons.Poll(short); !errors.Is(err, short.Err()) || len(recs) != 0 {
		t.Fatalf("a paused partition returned %d records (%v)", len(recs), err)
	}
	if err := cons.Resume(ctx, qxd.TopicPartition{Topic: "sp", Partition: 0}); err != nil {
		t.Fatal(err)
	}
	recs, err = cons.Poll(ctx)
	if err != nil || recs[0].Offset != at {
		t.Fatalf("after resume: %v %v, want offset %d", recs, err, at)
	}
	if err := cons.Seek(ctx, "other", 0, qxd.AtStart()); !errors.Is(err, semantics.ErrInvalidRequest) {
		t.Fatalf("seek of an unassigned partition: %v", err)
	}
}

func TestProducerOptions(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "opts", qxd.TopicConfig{Partitions: 3})
	cases := []struct {
		name string
		opts []qxd.ProducerOption
	}{
		{"gzip", []qxd.ProducerOption{qxd.BatchCompression(qxd.CompressionGzip)}},
		{"snappy", []qxd.ProducerOption{qxd.BatchCompression(qxd.CompressionSnappy)}},
		{"lz4", []qxd.ProducerOption{qxd.BatchCompression(qxd.CompressionLZ4)}},
		{"zstd", []qxd.ProducerOption{qxd.BatchCompression(qxd.CompressionZstd)}},
		{"linger 0, tiny batches", []qxd.ProducerOption{qxd.Linger(0), qxd.BatchBytes(1024)}},
		{"not idempotent", []qxd.ProducerOption{qxd.Idempotent(false)}},
		{"acks leader", []qxd.ProducerOption{qxd.RequiredAcks(qxd.AcksLeader)}},
		{"acks none", []qxd.ProducerOption{qxd.RequiredAcks(qxd.AcksNone)}},
	}
	total := 0
	for _, tc := range cases {
		ctx := qxdtest.Context(t, 30*time.Second)
		p, err := c.NewProducer(tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var rs []*qxd.Record
		for i := 0; i < 500; i++ {
			rs = append(rs, &qxd.Record{Topic: "opts", Key: []byte(fmt.Sprint(i)), Value: []byte(tc.name)})
		}
		if err := p.ProduceSync(ctx, rs...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		total += len(rs)
	}
	ctx := qxdtest.Context(t, 30*time.Second)
	// acks none returns before the writer stored the records; wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := c.Admin().DescribeTopic(ctx, "opts")
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, pi := range d.Partitions {
			sum += pi.HighWatermark
		}
		if sum == int64(total) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %d records, want %d", sum, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	cons.Assign(ctx, qxd.Assignment{Topic: "opts", Partition: 0}, qxd.Assignment{Topic: "opts", Partition: 1}, qxd.Assignment{Topic: "opts", Partition: 2})
	perCase := map[string]int{}
	for got := 0; got < total; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			perCase[string(r.Value)]++
		}
		got += len(recs)
	}
	for _, tc := range cases {
		if perCase[tc.name] != 500 {
			t.Errorf("%s: read %d records, want 500", tc.name, perCase[tc.name])
		}
	}
	if _, err := c.NewProducer(qxd.MaxInFlight(10)); !errors.Is(err, semantics.ErrInvalidConfig) {
		t.Errorf("max in flight 10 with idempotence: %v", err)
	}
}

func TestConcurrentProducersDenseOffsets(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "busy", qxd.TopicConfig{Partitions: 2})
	const producers, each = 4, 2000
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for i := 0; i < producers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := c.NewProducer(qxd.Linger(time.Millisecond), qxd.BatchBytes(4096))
			defer p.Close(ctx)
			var rs []*qxd.Record
			for j := 0; j < each; j++ {
				rs = append(rs, &qxd.Record{Topic: "busy", Key: []byte(fmt.Sprintf("p%d", i)), Value: []byte(fmt.Sprintf("%d", j))})
			}
			errs <- p.ProduceSync(ctx, rs...)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	cons.Assign(ctx, qxd.Assignment{Topic: "busy", Partition: 0}, qxd.Assignment{Topic: "busy", Partition: 1})
	next := map[int32]int64{}
	last := map[string]int{}
	for got := 0; got < producers*each; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			var v int
			fmt.Sscan(string(r.Value), &v)
			if prev, ok := last[string(r.Key)]; ok && v != prev+1 {
				t.Fatalf("producer %s: %d after %d", r.Key, v, prev)
			}
			last[string(r.Key)] = v
		}
		got += len(recs)
	}
}
