package qxd_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
)

// produceTrickle writes a record (values r0, r1, …) to topic through prod every
// 20 ms until the test ends, each call given 5 s and its error dropped: records
// keep coming through whatever the test does to the cluster.
func produceTrickle(ctx context.Context, t *testing.T, prod *qxd.Producer, topic string) {
	t.Helper()
	untilEnd(t, func(stop <-chan struct{}) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = prod.ProduceSync(pctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "r%d", i)})
			cancel()
		}
	})
}

// pollUntilEnd polls cons (each poll given 200 ms, its error dropped) until the
// test ends, handing the records of each poll that returned some to got (nil:
// they are dropped).
func pollUntilEnd(ctx context.Context, t *testing.T, cons *qxd.Consumer, got func([]qxd.Record)) {
	t.Helper()
	untilEnd(t, func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			recs, _ := cons.Poll(pctx)
			cancel()
			if len(recs) > 0 && got != nil {
				got(recs)
			}
		}
	})
}

// untilEnd runs loop in a goroutine until the test ends: its cleanup closes
// stop and waits for loop to return (before the cleanups registered earlier,
// such as the client's close, run).
func untilEnd(t *testing.T, loop func(stop <-chan struct{})) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { loop(stop) })
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
}
