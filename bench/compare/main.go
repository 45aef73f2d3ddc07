// Command compare runs qxd's produce and consume workloads and the raw JetStream
// equivalents in one process, several times, and prints medians and ratios.
//
//	go run ./bench/compare [-runs 3] [-records 200000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/qxd-io/qxd/bench"
)

func main() {
	runs := flag.Int("runs", 3, "runs per workload; medians are printed")
	records := flag.Int("records", 200000, "records per run for 100 B records (1 KiB runs use half)")
	flag.Parse()
	if err := run(*runs, *records); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(runs, records int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env, err := bench.NewEnv(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	workloads := []bench.Workload{
		{Records: records, Size: 100, Partitions: 8, RawWindow: 4000},
		{Records: records / 2, Size: 1024, Partitions: 8, RawWindow: 4000},
	}
	fmt.Printf("%-36s %-8s %14s %14s %8s\n", "workload", "path", "raw rec/s", "qxd rec/s", "qxd/raw")
	for _, w := range workloads {
		var prod, cons [][2]float64
		for i := 0; i < runs; i++ {
			p, c, err := env.ProduceAndConsume(ctx, w)
			if err != nil {
				return fmt.Errorf("%s: %w", w, err)
			}
			prod = append(prod, [2]float64{p.Raw.PerSec(), p.Qxd.PerSec()})
			cons = append(cons, [2]float64{c.Raw.PerSec(), c.Qxd.PerSec()})
		}
		for _, row := range []struct {
			path string
			vals [][2]float64
		}{{"produce", prod}, {"consume", cons}} {
			raw, q, ratio := medians(row.vals)
			fmt.Printf("%-36s %-8s %14.0f %14.0f %7.2fx\n", w.String(), row.path, raw, q, ratio)
		}
	}
	fmt.Printf("medians of %d runs; produce: keyed, acks all, replicas 1, raw window %d; consume: ordered consumers vs qxd consumer\n", runs, 4000)
	return nil
}

func medians(vals [][2]float64) (raw, q, ratio float64) {
	var rs, qs, ratios []float64
	for _, v := range vals {
		rs, qs, ratios = append(rs, v[0]), append(qs, v[1]), append(ratios, v[1]/v[0])
	}
	return median(rs), median(qs), median(ratios)
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
