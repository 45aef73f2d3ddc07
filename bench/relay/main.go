// Command relay measures what one extra trip through the server costs raw JetStream:
// the same messages published straight into streams, and published to a relay on
// in-process connections that republishes each into a stream and answers once it is
// stored. qxd's write path makes that trip (producer to partition writer, writer to
// stream), so the relay's ratio bounds what qxd can reach for records that fill a
// batch on their own (64 KiB). See docs/performance.md.
//
//	go run ./bench/relay -size 65536 -records 5000 -runs 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/bench"
)

const (
	partitions = 8    // streams, as a topic of 8 partitions
	window     = 4000 // unanswered messages per publisher, on both sides
)

func main() {
	size := flag.Int("size", 64<<10, "message size in bytes")
	records := flag.Int("records", 5000, "messages per run")
	runs := flag.Int("runs", 5, "runs; the median ratio is printed")
	flag.Parse()
	if err := run(*size, *records, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(size, records, runs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	e, err := bench.NewEnv(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	// The relay spreads over two in-process connections, as a node spreads its
	// partition writers.
	var relays []*nats.Conn
	for range 2 {
		nc, err := nats.Connect("", nats.InProcessServer(e.Nodes[0].NATSServer()))
		if err != nil {
			return err
		}
		defer nc.Close()
		relays = append(relays, nc)
	}
	val := make([]byte, size)
	var ratios []float64
	for i := range runs {
		raw, err := direct(ctx, e, fmt.Sprintf("direct%d", i), val, records)
		if err != nil {
			return err
		}
		hop, err := relayed(ctx, e, relays, fmt.Sprintf("relayed%d", i), val, records)
		if err != nil {
			return err
		}
		fmt.Printf("run %d: direct %.0f msg/s, through a relay %.0f msg/s: %.2f×\n", i+1, raw, hop, hop/raw)
		ratios = append(ratios, hop/raw)
	}
	slices.Sort(ratios)
	fmt.Printf("%d B messages, %d streams: through a relay ÷ direct, median of %d: %.2f× (%.2f–%.2f×)\n",
		size, partitions, runs, ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	return nil
}

// streams creates one stream per partition named after prefix and returns their
// subjects and a cleanup.
func streams(ctx context.Context, e *bench.Env, prefix string) ([]string, func(), error) {
	var subjects []string
	cleanup := func() {
		for p := range partitions {
			_ = e.JS.DeleteStream(context.Background(), fmt.Sprintf("%s_%d", prefix, p))
		}
	}
	for p := range partitions {
		subj := fmt.Sprintf("%s.store.%d", prefix, p)
		cfg := jetstream.StreamConfig{Name: fmt.Sprintf("%s_%d", prefix, p), Subjects: []string{subj}}
		if _, err := e.JS.CreateStream(ctx, cfg); err != nil {
			cleanup()
			return nil, nil, err
		}
		subjects = append(subjects, subj)
	}
	return subjects, cleanup, nil
}

// direct publishes n messages into the streams with PublishAsync, as the raw side
// of the benchmarks does, and returns messages per second.
func direct(ctx context.Context, e *bench.Env, prefix string, val []byte, n int) (float64, error) {
	subjects, cleanup, err := streams(ctx, e, prefix)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	js, err := jetstream.New(e.NC, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range n {
		if _, err := js.PublishAsync(subjects[i%partitions], val); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// relayed sends n messages as requests to the relay, which republishes each into
// its stream and answers once JetStream has stored it, and returns messages per
// second.
func relayed(ctx context.Context, e *bench.Env, relays []*nats.Conn, prefix string, val []byte, n int) (float64, error) {
	subjects, cleanup, err := streams(ctx, e, prefix)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	var failed atomic.Int64
	for p, target := range subjects {
		rc := relays[p%len(relays)]
		js, err := jetstream.New(rc, jetstream.WithPublishAsyncMaxPending(window))
		if err != nil {
			return 0, err
		}
		sub, err := rc.Subscribe(fmt.Sprintf("%s.in.%d", prefix, p), func(m *nats.Msg) {
			f, err := js.PublishAsync(target, m.Data)
			if err != nil {
				failed.Add(1)
				return
			}
			go func() {
				select {
				case <-f.Ok():
					_ = rc.Publish(m.Reply, nil)
				case <-f.Err():
					failed.Add(1)
				}
			}()
		})
		if err != nil {
			return 0, err
		}
		defer sub.Unsubscribe()
		if err := rc.Flush(); err != nil {
			return 0, err
		}
	}
	inbox := nats.NewInbox()
	var answered atomic.Int64
	done := make(chan struct{})
	room := make(chan struct{}, window)
	rsub, err := e.NC.Subscribe(inbox, func(*nats.Msg) {
		<-room
		if answered.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer rsub.Unsubscribe()
	if err := e.NC.Flush(); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range n {
		room <- struct{}{}
		m := &nats.Msg{Subject: fmt.Sprintf("%s.in.%d", prefix, i%partitions), Reply: inbox, Data: val}
		if err := e.NC.PublishMsg(m); err != nil {
			return 0, err
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("%d of %d answered (%d failed in the relay): %w", answered.Load(), n, failed.Load(), ctx.Err())
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
