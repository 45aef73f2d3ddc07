package partition_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/qxd-io/qxd/internal/partition"
)

// TestDirectRead checks DirectRead's timing on a fake clock: a read that never
// answers costs one DirectAttempt; a slow answer to an earlier read still
// counts; a read that has begun answering is not sent again, and its result is
// the one returned even when a later read would finish first.
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
		{name: "slow first answers before the second", answer: []time.Duration{700 * time.Millisecond, time.Second}, want: 0,
			wantTook: 700 * time.Millisecond, wantSent: 2},
		{name: "begun first is not sent again", answer: []time.Duration{2 * time.Second},
			begin: []time.Duration{100 * time.Millisecond}, want: 0, wantTook: 2 * time.Second, wantSent: 1},
		{name: "the one that began wins", answer: []time.Duration{2 * time.Second, 550 * time.Millisecond},
			begin: []time.Duration{600 * time.Millisecond, -1}, want: 0, wantTook: 2 * time.Second, wantSent: 2},
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
