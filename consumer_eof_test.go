package qxd_test

import (
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestEndOfPartition reads an empty partition and one with records: PollFetches
// reports each at its end once, the one with records only with or after its last
// record, and again after more records are produced and read. Poll, which returns
// records only, does not return empty-handed for it.
func TestEndOfPartition(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "eof", qxd.TopicConfig{Partitions: 2})
	p, err := c.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	produce := func(n int) { // in one call: one batch, stored at once
		t.Helper()
		var rs []*qxd.Record
		for range n {
			rs = append(rs, &qxd.Record{Topic: "eof", Partition: 0, Value: []byte("v")})
		}
		if err := p.ProduceSync(ctx, rs...); err != nil {
			t.Fatal(err)
		}
	}
	produce(3)
	cons := qxdtest.NewConsumer(t, c, qxd.MaxPollRecords(1))
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "eof", Partition: 0, Offset: qxd.AtStart()},
		qxd.Assignment{Topic: "eof", Partition: 1, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	p0 := qxd.TopicPartition{Topic: "eof", Partition: 0}
	p1 := qxd.TopicPartition{Topic: "eof", Partition: 1}
	// readToEnd polls until both partitions were reported at their end, checking
	// p0 is reported only once it has returned through offset last.
	readToEnd := func(last int64, want ...qxd.TopicPartition) {
		t.Helper()
		ends := map[qxd.TopicPartition]int{}
		var next int64 = -1
		deadline := time.Now().Add(10 * time.Second)
		for len(ends) < len(want) {
			if time.Now().After(deadline) {
				t.Fatalf("ends reported %v, want %v", ends, want)
			}
			f, err := cons.PollFetches(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range f.Records {
				next = r.Offset + 1
			}
			for _, tp := range f.EndOfPartition {
				ends[tp]++
				if !slices.Contains(want, tp) || ends[tp] > 1 {
					t.Fatalf("end of %v reported (%d times), want ends of %v once", tp, ends[tp], want)
				}
				if tp == p0 && next != last+1 {
					t.Fatalf("end of %v reported after offset %d, before its last record %d was returned", tp, next-1, last)
				}
			}
		}
	}
	readToEnd(2, p0, p1)
	produce(2)
	readToEnd(4, p0)

	// Poll returns records only: with nothing new it waits rather than returning
	// nothing for a partition at its end.
	produce(1)
	recs, err := cons.Poll(ctx)
	if err != nil || len(recs) != 1 || recs[0].Offset != 5 {
		t.Fatalf("Poll: %v %v, want offset 5", recs, err)
	}
}
