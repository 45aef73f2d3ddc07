package partition

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A direct get ($JS.API.DIRECT.GET.<stream>) goes to one member of a queue group
// that every replica of the stream joins, picked at random by the NATS servers.
// A node that is paused or cut off keeps its members in that group on the other
// nodes until they drop its route (route pings: 6–8 s), so a direct get sent
// meanwhile may reach a replica that never answers, and waits out its whole
// timeout. DirectRead sends it again after DirectAttempt instead.

// DirectAttempt is how long DirectRead waits for a read to begin answering before
// it sends the read again. A healthy replica answers a direct get in about a
// millisecond, and in tens of milliseconds on a machine stalled by load or
// garbage collection (TestDirectReadsPastAPausedReplica logs the figures: in
// 200 gets with -race on 2 cores at load 5–13, a median of 0.3–0.8 ms and a
// slowest of 0.8–24 ms in 10 runs): half a second is past that by an order of
// magnitude or more, so a
// healthy answer seldom costs a second request, and an answer slower still
// costs one DirectAttempt more at most (from the second read on, the earlier
// reads keep waiting). A silent replica costs half a second, not the whole
// timeout.
const DirectAttempt = 500 * time.Millisecond

// directAttempts bounds the reads DirectRead sends: ten are DirectAttempt × 10 =
// 5 s, the timeout one direct get had alone (requestTimeout); past them it waits
// for those it sent.
const directAttempts = 10

// DirectRead runs read, a read of a stream that any replica may answer (a
// direct get), until ctx ends. Sending it again changes nothing its caller
// relies on: one request was handed to a replica at random as well, and the
// answer taken is one replica's, as it was. A read that has
// not begun to answer within DirectAttempt is sent again: the first read runs on
// the caller's goroutine and is cancelled then (most answer within a
// millisecond, and starting no goroutine keeps them cheap); from then on a read
// is started every DirectAttempt while none has begun, up to directAttempts in
// flight, keeping those already sent, so a slow but healthy answer to any of
// them still counts. A read sent to a replica that never answers costs one
// DirectAttempt. A read begins to answer when it calls begun (a batched read, at
// its first message) or returns; once one has begun, DirectRead returns its
// result (or, in the second phase, the first result of any), and cancels and
// waits for the others. read must return when its ctx ends.
func DirectRead[T any](ctx context.Context, read func(ctx context.Context, begun func()) (T, error)) (T, error) {
	const (
		waiting = iota
		began
		timedOut
	)
	var state atomic.Int32
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(DirectAttempt, func() {
		if state.CompareAndSwap(waiting, timedOut) {
			cancel()
		}
	})
	v, err := read(rctx, func() {
		if state.Load() == waiting {
			state.CompareAndSwap(waiting, began)
		}
	})
	timer.Stop()
	cancel()
	if err == nil || state.Load() != timedOut || ctx.Err() != nil {
		return v, err
	}
	return directAgain(ctx, read)
}

// directAgain is DirectRead's second phase, after the first read got no answer
// within DirectAttempt.
func directAgain[T any](ctx context.Context, read func(ctx context.Context, begun func()) (T, error)) (T, error) {
	type result struct {
		i   int
		v   T
		err error
	}
	var (
		wg      sync.WaitGroup
		cancels []context.CancelFunc
		results = make(chan result, directAttempts)
		began   = make(chan int, directAttempts)
	)
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
	}()
	start := func() {
		i := len(cancels)
		rctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		var once sync.Once
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := read(rctx, func() { once.Do(func() { began <- i }) })
			results <- result{i, v, err}
		}()
	}
	start()
	again := time.NewTimer(DirectAttempt)
	defer again.Stop()
	winner := -1
	for {
		select {
		case i := <-began:
			if winner < 0 {
				winner = i
				again.Stop()
				for j, cancel := range cancels {
					if j != i {
						cancel()
					}
				}
			}
		case res := <-results:
			if winner < 0 || res.i == winner {
				return res.v, res.err
			}
		case <-again.C:
			if winner < 0 && len(cancels) < directAttempts-1 {
				start()
				again.Reset(DirectAttempt)
			}
		}
	}
}
