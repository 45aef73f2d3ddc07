package partition_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestDirectRead checks DirectRead's timing on a fake clock: a read that never
// answers costs one DirectAttempt; the first read is cancelled then, and a slow
// answer to a later one still counts; a read that has begun answering is not
// sent again, and its result is the one returned even when a later read would
// finish first.
func TestDirectRead(t *testing.T) {
	t.Parallel()
	never := func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }
	cases := []struct {
		name     string
		answer   []time.Duration // per read, by the order they were sent; -1: never
		begin    []time.Duration // per read, when it calls begun; -1: never
		want     int             // the read whose result is returned
		wantTook time.Duration
		wantSent int
	}{
		{name: "answers at once", answer: []time.Duration{10 * time.Millisecond}, want: 0,
			wantTook: 10 * time.Millisecond, wantSent: 1},
		{name: "first silent", answer: []time.Duration{-1, 10 * time.Millisecond}, want: 1,
			wantTook: partition.DirectAttempt + 10*time.Millisecond, wantSent: 2},
		{name: "two silent", answer: []time.Duration{-1, -1, 10 * time.Millisecond}, want: 2,
			wantTook: 2*partition.DirectAttempt + 10*time.Millisecond, wantSent: 3},
		{name: "slow first is sent again", answer: []time.Duration{700 * time.Millisecond, 10 * time.Millisecond}, want: 1,
			wantTook: partition.DirectAttempt + 10*time.Millisecond, wantSent: 2},
		{name: "slow answer past the first still counts", answer: []time.Duration{-1, 700 * time.Millisecond, time.Second}, want: 1,
			wantTook: partition.DirectAttempt + 700*time.Millisecond, wantSent: 3},
		{name: "begun first is not sent again", answer: []time.Duration{2 * time.Second},
			begin: []time.Duration{100 * time.Millisecond}, want: 0, wantTook: 2 * time.Second, wantSent: 1},
		{name: "the one that began wins", answer: []time.Duration{-1, 2 * time.Second, 550 * time.Millisecond},
			begin: []time.Duration{-1, 600 * time.Millisecond, -1}, want: 1, wantTook: partition.DirectAttempt + 2*time.Second, wantSent: 3},
		{name: "all silent until the deadline", answer: []time.Duration{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
			want: -1, wantTook: 6 * time.Second, wantSent: 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
				defer cancel()
				var sent atomic.Int32
				start := time.Now()
				got, err := partition.DirectRead(ctx, func(ctx context.Context, begun func()) (int, error) {
					i := int(sent.Add(1)) - 1
					if i < len(tc.begin) && tc.begin[i] >= 0 {
						time.AfterFunc(tc.begin[i], begun)
					}
					if tc.answer[i] < 0 {
						return never(ctx)
					}
					select {
					case <-ctx.Done():
						return 0, ctx.Err()
					case <-time.After(tc.answer[i]):
						return i, nil
					}
				})
				took := time.Since(start)
				if tc.want < 0 {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("got read %d, %v; want the deadline", got, err)
					}
				} else if err != nil || got != tc.want {
					t.Fatalf("got read %d, %v; want read %d", got, err, tc.want)
				}
				if took != tc.wantTook || int(sent.Load()) != tc.wantSent {
					t.Fatalf("took %v with %d sent; want %v with %d", took, sent.Load(), tc.wantTook, tc.wantSent)
				}
			})
		})
	}
}

// BenchmarkDirectGet measures what DirectRead adds to a direct get that is
// answered at once: a plain request beside the same request through DirectRead,
// on one node.
func BenchmarkDirectGet(b *testing.B) {
	n := qxdtest.StartNode(b)
	c := qxdtest.Connect(b, n)
	ctx := qxdtest.Context(b, time.Minute)
	const topic = "bdirect"
	qxdtest.CreateTopic(b, c, topic, qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(b, c)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("v")}); err != nil {
		b.Fatal(err)
	}
	nc := c.Conn()
	subject := semantics.Subject(semantics.JSDirectGetPrefix, semantics.StreamName(topic, 0))
	req := []byte(`{"seq":1}`)
	get := func(ctx context.Context, _ func()) (*nats.Msg, error) {
		return nc.RequestWithContext(ctx, subject, req)
	}
	b.Run("request", func(b *testing.B) {
		for b.Loop() {
			if _, err := get(ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DirectRead", func(b *testing.B) {
		for b.Loop() {
			if _, err := partition.DirectRead(ctx, get); err != nil {
				b.Fatal(err)
			}
		}
	})
}
