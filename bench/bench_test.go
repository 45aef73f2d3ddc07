package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd/bench"
)

// Each iteration runs raw JetStream and qxd on the same workload in this process and
// reports records/s of both and their ratio; run with -count 3 (or more) and compare
// medians:
//
//	go test -run '^$' -bench . -benchtime 1x -count 3 ./bench/
func BenchmarkProduceConsume(b *testing.B) {
	for _, w := range []struct {
		name string
		w    bench.Workload
	}{
		{"100B", bench.Workload{Records: 200000, Size: 100, Partitions: 8, RawWindow: 4000}},
		{"1KiB", bench.Workload{Records: 100000, Size: 1024, Partitions: 8, RawWindow: 4000}},
	} {
		b.Run(w.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			env, err := bench.NewEnv(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer env.Close()
			var prod, cons bench.Pair
			for i := 0; i < b.N; i++ {
				p, c, err := env.ProduceAndConsume(ctx, w.w)
				if err != nil {
					b.Fatal(err)
				}
				prod.Raw.Records += p.Raw.Records
				prod.Raw.Duration += p.Raw.Duration
				prod.Qxd.Records += p.Qxd.Records
				prod.Qxd.Duration += p.Qxd.Duration
				cons.Raw.Records += c.Raw.Records
				cons.Raw.Duration += c.Raw.Duration
				cons.Qxd.Records += c.Qxd.Records
				cons.Qxd.Duration += c.Qxd.Duration
			}
			b.ReportMetric(prod.Raw.PerSec(), "raw-produce-rec/s")
			b.ReportMetric(prod.Qxd.PerSec(), "qxd-produce-rec/s")
			b.ReportMetric(prod.Ratio(), "produce-x-raw")
			b.ReportMetric(cons.Raw.PerSec(), "raw-consume-rec/s")
			b.ReportMetric(cons.Qxd.PerSec(), "qxd-consume-rec/s")
			b.ReportMetric(cons.Ratio(), "consume-x-raw")
		})
	}
}

// TestHarness runs both sides on a small workload: the counts must match, so the
// benchmark compares equal work.
func TestHarness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := bench.NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	w := bench.Workload{Records: 5000, Size: 100, Partitions: 4, RawWindow: 1000}
	p, c, err := env.ProduceAndConsume(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]bench.Result{"raw produce": p.Raw, "qxd produce": p.Qxd, "raw consume": c.Raw, "qxd consume": c.Qxd} {
		if r.Records != w.Records || r.Bytes != int64(w.Records*w.Size) || r.Duration <= 0 {
			t.Errorf("%s: %+v, want %d records of %d bytes", name, r, w.Records, w.Size)
		}
	}
}
