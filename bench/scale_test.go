//go:build scale

package bench_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/bench"
	"github.com/qxd-io/qxd/server"
)

// The scale curves: how throughput, memory, start-up and rebalance time grow with
// partitions, record size, group members and topics. They take several minutes:
//
//	go test -tags scale -run TestScale -v -timeout 60m ./bench/
//
// Each prints a Markdown table; throughput rows are the median of three runs.

func scaleCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// warmUp runs a small produce through both sides, so the first measured run does
// not pay for connections, writers and caches starting.
func warmUp(t *testing.T, ctx context.Context, e *bench.Env, p int32) {
	if _, err := bench.Run(ctx, e, bench.Config{Mode: bench.ModeProduce, Records: 20000, Partitions: p, CompareRaw: true}); err != nil {
		t.Fatal(err)
	}
}

// scaleRuns is how many runs each throughput row takes; it prints the median one.
const scaleRuns = 3

// medianRun runs c scaleRuns times and returns the run with the median ratio: single
// runs on a shared machine swing by a third.
func medianRun(t *testing.T, ctx context.Context, e *bench.Env, c bench.Config) *bench.Result {
	t.Helper()
	var rs []*bench.Result
	for range scaleRuns {
		r, err := bench.Run(ctx, e, c)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *bench.Result) int { return cmp.Compare(a.Ratio(), b.Ratio()) })
	return rs[len(rs)/2]
}

// rss is the process's resident memory in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// heap is the Go heap in use after the garbage of earlier steps is gone.
func heap() int64 {
	time.Sleep(300 * time.Millisecond) // let closed nodes' goroutines end
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func TestScalePartitions(t *testing.T) {
	ctx := scaleCtx(t)
	fmt.Println("\n| partitions | qxd rec/s | raw rec/s | qxd ÷ raw | heap per partition (qxd) | heap per partition (raw) |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	for _, p := range []int32{1, 8, 64, 512} {
		e, err := bench.NewEnv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Memory: a topic of p partitions with one batch in each, against p raw streams
		// with one message each, measured as heap growth of the whole process (node and
		// clients) and divided by p.
		h0 := heap()
		topic := fmt.Sprintf("mem-%d", p)
		if _, err := e.Client.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: p}); err != nil {
			t.Fatal(err)
		}
		prod, err := e.Client.NewProducer(qxd.RecordPartition())
		if err != nil {
			t.Fatal(err)
		}
		for i := range p {
			if err := prod.Produce(ctx, &qxd.Record{Topic: topic, Partition: i, Value: []byte("x")}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := prod.Close(ctx); err != nil {
			t.Fatal(err)
		}
		h1 := heap()
		for i := range p {
			name := fmt.Sprintf("MEM%d_%d", p, i)
			if _, err := e.JS.CreateStream(ctx, jetstreamConfig(name)); err != nil {
				t.Fatal(err)
			}
			if _, err := e.JS.Publish(ctx, "mem."+name, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		h2 := heap()
		warmUp(t, ctx, e, p)
		r := medianRun(t, ctx, e, bench.Config{Mode: bench.ModeProduce, Records: 500000, Size: 100, Partitions: p, CompareRaw: true})
		fmt.Printf("| %d | %.0f | %.0f | %.2f× | %s | %s |\n", p, r.Qxd.PerSec(), r.Raw.PerSec(), r.Ratio(),
			kib((h1-h0)/int64(p)), kib((h2-h1)/int64(p)))
		e.Close()
	}
}

func kib(n int64) string { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }

func TestScaleRecordSize(t *testing.T) {
	ctx := scaleCtx(t)
	e, err := bench.NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	warmUp(t, ctx, e, 8)
	fmt.Println("\n| record size | qxd rec/s | qxd MB/s | raw rec/s | raw MB/s | qxd ÷ raw |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	for _, s := range []struct{ size, records int }{{100, 500000}, {1024, 250000}, {16 << 10, 16000}, {64 << 10, 5000}} {
		r := medianRun(t, ctx, e, bench.Config{Mode: bench.ModeProduce, Records: s.records, Size: s.size, Partitions: 8, CompareRaw: true})
		fmt.Printf("| %s | %.0f | %.1f | %.0f | %.1f | %.2f× |\n", bench.SizeString(s.size),
			r.Qxd.PerSec(), r.Qxd.MBPerSec(), r.Raw.PerSec(), r.Raw.MBPerSec(), r.Ratio())
	}
}

func TestScaleGroupMembers(t *testing.T) {
	ctx := scaleCtx(t)
	e, err := bench.NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fmt.Println("\n| members | partitions | rebalance (all partitions owned) | qxd rec/s | raw ordered rec/s | qxd ÷ raw |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	for _, m := range []int{1, 2, 4, 8, 16} {
		r := medianRun(t, ctx, e, bench.Config{Mode: bench.ModeGroup, Records: 500000, Size: 100, Partitions: 16, Consumers: m, CompareRaw: true})
		fmt.Printf("| %d | 16 | %v | %.0f | %.0f | %.2f× |\n", m, r.Qxd.Rebalance.Round(time.Millisecond), r.Qxd.PerSec(), r.Raw.PerSec(), r.Ratio())
	}
}

func TestScaleTopics(t *testing.T) {
	ctx := scaleCtx(t)
	fmt.Println("\n| topics (1 partition each) | create all | heap per topic | RSS per topic | node restart (to ready) |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for _, n := range []int{1, 10, 100, 1000} {
		cfg := server.DefaultConfig()
		cfg.Name, cfg.Listen, cfg.DataDir = "scale", "127.0.0.1:0", t.TempDir()
		node, err := server.Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := qxd.Connect(ctx, node.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		h0, r0 := heap(), rss()
		start := time.Now()
		for i := range n {
			if _, err := c.Admin().CreateTopic(ctx, fmt.Sprintf("t-%d", i), qxd.TopicConfig{Partitions: 1}); err != nil {
				t.Fatal(err)
			}
		}
		created := time.Since(start)
		h1, r1 := heap(), rss()
		c.Close()
		if err := node.Close(ctx); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		node, err = server.Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		restart := time.Since(start)
		if err := node.Close(ctx); err != nil {
			t.Fatal(err)
		}
		perTopic := func(d int64) string {
			if n < 100 || d < 0 {
				return "(noise)" // a few topics are lost in the collector's and the OS's own movements
			}
			return kib(d / int64(n))
		}
		fmt.Printf("| %d | %v | %s | %s | %v |\n", n, created.Round(time.Millisecond), perTopic(h1-h0), perTopic(r1-r0), restart.Round(time.Millisecond))
	}
}

func jetstreamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Subjects: []string{"mem." + name}, Storage: jetstream.FileStorage}
}
