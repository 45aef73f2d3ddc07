package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qxd-io/qxd/bench"
	"github.com/qxd-io/qxd/server"
)

// lazySync is the sync interval of the "lazy" nodes: nats-server's default, which
// is what raw JetStream users run.
const lazySync = 2 * time.Minute

// durabilityRow is one line of the durability table: produce records of size into
// 8 partitions of replicas replicas, for a fixed time per side.
type durabilityRow struct {
	size, replicas int
}

// durabilityTargets are the ratio targets of the durability table, by record size.
var durabilityTargets = map[int]string{
	100:  "qxd durable ≥ 20× raw durable, ≥ 3× raw lazy",
	1024: "qxd durable ≥ 1× raw lazy",
}

// sideFigures are one side's figures over the runs of a row.
type sideFigures struct{ rate, p50, p99 []float64 }

func (f *sideFigures) add(rate float64, p50, p99 float64) {
	f.rate, f.p50, f.p99 = append(f.rate, rate), append(f.p50, p50), append(f.p99, p99)
}

// cell is "median rec/s (p50/p99 ms)".
func (f *sideFigures) cell() string {
	return fmt.Sprintf("%8.0f (%.1f/%.1f)", median(f.rate), median(f.p50), median(f.p99))
}

// envs starts and keeps the embedded nodes the durability rows run on, by node
// count and sync mode, and closes them.
type envs map[[2]int]*bench.Env

func (es envs) get(ctx context.Context, nodes int, lazy bool) (*bench.Env, error) {
	key := [2]int{nodes, 0}
	sync := server.SyncAlways
	if lazy {
		key[1], sync = 1, lazySync
	}
	if e := es[key]; e != nil {
		return e, nil
	}
	e, err := bench.NewClusterEnv(ctx, nodes, bench.WithSync(sync))
	if err != nil {
		return nil, err
	}
	es[key] = e
	return e, nil
}

func (es envs) close() {
	for k, e := range es {
		e.Close()
		delete(es, k)
	}
}

// runDurability prints the durability table: for each record size and replication
// factor, qxd and raw JetStream on nodes that sync every append (durable), and the
// same on nodes that sync every lazySync (lazy), each side producing for perSide.
// Every run's figures are printed under the medians. only, when not empty, names
// the rows to run ("100B R3"; "e2e" for the end-to-end row). Each run also
// prints the process's CPU time per record on each side of the durable nodes, and
// with phaseProfile each side's CPU profile is written into that directory.
func runDurability(ctx context.Context, runs int, perSide time.Duration, only []string, phaseProfile string) error {
	var rows []durabilityRow
	for _, r := range []int{1, 3} {
		for _, size := range []int{100, 1024, 64 << 10} {
			row := durabilityRow{size: size, replicas: r}
			if len(only) == 0 || slices.Contains(only, row.name()) {
				rows = append(rows, row)
			}
		}
	}
	es := envs{}
	defer es.close()
	fmt.Printf("\ndurability: produce, 8 partitions, acks all, %v per side; rec/s (p50/p99 produce-to-ack ms); medians of %d runs\n", perSide, runs)
	fmt.Printf("%-12s %-26s %-26s %-26s %-26s %9s %9s  %s\n", "workload", "qxd durable", "raw durable", "raw lazy", "qxd lazy",
		"÷raw dur", "÷raw lazy", "target")
	lastR := 0
	for _, row := range rows {
		if row.replicas != lastR {
			es.close() // one set of nodes at a time: a 3-node pair is 6 nodes in this process
			lastR = row.replicas
		}
		nodes := row.replicas
		var qd, rd, rl, ql sideFigures
		var perRun []string
		for i := 0; i < runs; i++ {
			c := bench.Config{Mode: bench.ModeProduce, Duration: perSide, Size: row.size, Partitions: 8,
				Replicas: row.replicas, CompareRaw: true}
			var sums [2]bench.Summary
			var cpuNote string
			for j, lazy := range []bool{false, true} {
				e, err := es.get(ctx, nodes, lazy)
				if err != nil {
					return err
				}
				cpu := cpuPhases{}
				c.OnPhase = cpu.onPhase(phaseProfile, fmt.Sprintf("%s-sync-%s", row.name(), e.Sync), i+1)
				res, err := bench.Run(ctx, e, c)
				if err != nil {
					return fmt.Errorf("durability %s R%d (sync %s): %w", bench.SizeString(row.size), row.replicas, e.Sync, err)
				}
				sums[j] = res.Summary()
				if !lazy {
					cpuNote = cpuPerRecord(cpu, res)
				}
			}
			d, l := sums[0], sums[1]
			qd.add(d.MsgsPerSec, d.P50, d.P99)
			rd.add(d.RawMsgsPerSec, deref(d.RawP50), deref(d.RawP99))
			rl.add(l.RawMsgsPerSec, deref(l.RawP50), deref(l.RawP99))
			ql.add(l.MsgsPerSec, l.P50, l.P99)
			perRun = append(perRun, fmt.Sprintf("run %d: qxd durable %.0f (%.1f/%.1f; %s), raw durable %.0f (%.1f/%.1f), raw lazy %.0f (%.1f/%.1f), qxd lazy %.0f (%.1f/%.1f; %s)%s",
				i+1, d.MsgsPerSec, d.P50, d.P99, batchesNote(d), d.RawMsgsPerSec, deref(d.RawP50), deref(d.RawP99),
				l.RawMsgsPerSec, deref(l.RawP50), deref(l.RawP99), l.MsgsPerSec, l.P50, l.P99, batchesNote(l), cpuNote))
		}
		name := row.name()
		fmt.Printf("%-12s %-26s %-26s %-26s %-26s %8.1f× %8.1f×  %s\n", name, qd.cell(), rd.cell(), rl.cell(), ql.cell(),
			ratioMedian(qd.rate, rd.rate), ratioMedian(qd.rate, rl.rate), durabilityTargets[row.size])
		fmt.Printf("%-12s ranges: qxd durable %s, raw durable %s, raw lazy %s rec/s\n", "", rangeOf(qd.rate), rangeOf(rd.rate), rangeOf(rl.rate))
		for _, l := range perRun {
			fmt.Printf("%-12s %s\n", "", l)
		}
	}
	es.close()
	if len(only) > 0 && !slices.Contains(only, "e2e") {
		return nil
	}
	return runDurableE2E(ctx, es, runs, perSide)
}

// cpuPerRecord says what a durable run cost each side: the process's CPU time per
// record acknowledged (nodes, producers and bench together), and raw's over qxd's.
func cpuPerRecord(cpu cpuPhases, res *bench.Result) string {
	q, r := cpu["qxd"], cpu["raw"]
	if res.Raw == nil || q <= 0 || r <= 0 || res.Qxd.Records == 0 || res.Raw.Records == 0 {
		return ""
	}
	qn, rn := float64(q)/float64(res.Qxd.Records), float64(r)/float64(res.Raw.Records)
	return fmt.Sprintf("; durable CPU per record qxd %.1f µs, raw %.1f µs (%.1f×)", qn/1e3, rn/1e3, rn/qn)
}

// batchesNote says how qxd's side batched in a run: mean records per batch (one
// JetStream message each) and a batch's send-to-answer p50/p99 in ms.
func batchesNote(s bench.Summary) string {
	if s.Batches == 0 || s.BatchP50 == nil {
		return "no batches counted"
	}
	return fmt.Sprintf("%.0f rec/batch, batch %.1f/%.1f ms", s.RecordsPerBatch, *s.BatchP50, *s.BatchP99)
}

// name is the row's name in the table, such as "100B R3".
func (r durabilityRow) name() string {
	return fmt.Sprintf("%s R%d", bench.SizeString(r.size), r.replicas)
}

// runDurableE2E prints end-to-end latency at 5000 records/s with linger 0 on one
// durable node and one lazy node (target: qxd's p99 on the durable node below
// 10 ms).
func runDurableE2E(ctx context.Context, es envs, runs int, perSide time.Duration) error {
	const rate = 5000
	var qd, rd, rl, ql sideFigures
	var perRun []string
	for i := 0; i < runs; i++ {
		c := bench.Config{Mode: bench.ModeE2E, Records: max(int(rate*perSide.Seconds()), rate), Rate: rate, Linger: -1,
			Partitions: 8, CompareRaw: true}
		var sums [2]bench.Summary
		for j, lazy := range []bool{false, true} {
			e, err := es.get(ctx, 1, lazy)
			if err != nil {
				return err
			}
			res, err := bench.Run(ctx, e, c)
			if err != nil {
				return fmt.Errorf("durability e2e (sync %s): %w", e.Sync, err)
			}
			sums[j] = res.Summary()
		}
		d, l := sums[0], sums[1]
		qd.add(d.MsgsPerSec, d.P50, d.P99)
		rd.add(d.RawMsgsPerSec, deref(d.RawP50), deref(d.RawP99))
		rl.add(l.RawMsgsPerSec, deref(l.RawP50), deref(l.RawP99))
		ql.add(l.MsgsPerSec, l.P50, l.P99)
		perRun = append(perRun, fmt.Sprintf("run %d: p50/p99 ms qxd durable %.2f/%.2f (acked %.2f/%.2f; %s; %s), raw durable %.2f/%.2f, raw lazy %.2f/%.2f (acked %.2f/%.2f), qxd lazy %.2f/%.2f (acked %.2f/%.2f; %s; %s)",
			i+1, d.P50, d.P99, d.AckP50, d.AckP99, batchesNote(d), stagesNote(d), deref(d.RawP50), deref(d.RawP99), deref(l.RawP50), deref(l.RawP99),
			deref(l.RawAckP50), deref(l.RawAckP99), l.P50, l.P99, l.AckP50, l.AckP99, batchesNote(l), stagesNote(l)))
	}
	fmt.Printf("%-12s p50/p99 ms: qxd durable %.2f/%.2f, raw durable %.2f/%.2f, raw lazy %.2f/%.2f, qxd lazy %.2f/%.2f  target: qxd durable p99 < 10 ms\n",
		"e2e 5k/s l0", median(qd.p50), median(qd.p99), median(rd.p50), median(rd.p99), median(rl.p50), median(rl.p99), median(ql.p50), median(ql.p99))
	for _, l := range perRun {
		fmt.Printf("%-12s %s\n", "", l)
	}
	return nil
}

// stagesNote says where a qxd e2e run's time went (see bench.Stages), p50/p99 ms.
func stagesNote(s bench.Summary) string {
	pp := func(a, b *float64) string {
		if a == nil || b == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f/%.1f", *a, *b)
	}
	out := fmt.Sprintf("waiting in the producer %s, store %s, ack to consumer %s", pp(s.WaitP50, s.WaitP99), pp(s.StoreP50, s.StoreP99), pp(s.DeliveryP50, s.DeliveryP99))
	if s.TailE2E != nil && s.TailWait != nil && s.TailBatch != nil && s.TailDelivery != nil {
		out += fmt.Sprintf("; slowest 1%% mean %.1f = wait %.1f + batch %.1f", *s.TailE2E, *s.TailWait, *s.TailBatch)
		if s.TailStore != nil && s.TailBack != nil {
			out += fmt.Sprintf(" (store %.1f, answer back %.1f)", *s.TailStore, *s.TailBack)
		}
		out += fmt.Sprintf(" + delivery %.1f", *s.TailDelivery)
	}
	if s.SchedP99 != nil && s.GCPauseMaxMS != nil {
		out += fmt.Sprintf("; runnable goroutines p99 %.1f, longest GC pause %.1f", *s.SchedP99, *s.GCPauseMaxMS)
	}
	return out
}

// runPartitionCurve prints qxd's 100 B produce rate on durable and lazy nodes for
// 8 to 512 partitions: one fsync per batch per partition costs more as the batches
// get smaller.
func runPartitionCurve(ctx context.Context, runs int, perSide time.Duration) error {
	es := envs{}
	defer es.close()
	fmt.Printf("\npartitions: qxd produce 100B, acks all, R1, %v per run; rec/s (p50/p99 ms); medians of %d runs\n", perSide, runs)
	fmt.Printf("%-12s %-26s %-26s %12s %12s\n", "partitions", "qxd durable", "qxd lazy", "durable÷lazy", "÷ 8 durable")
	var base float64
	for _, parts := range []int32{8, 64, 512} {
		var d, l sideFigures
		var perRun []string
		for i := 0; i < runs; i++ {
			c := bench.Config{Mode: bench.ModeProduce, Duration: perSide, Size: 100, Partitions: parts}
			var sums [2]bench.Summary
			for j, lazy := range []bool{false, true} {
				e, err := es.get(ctx, 1, lazy)
				if err != nil {
					return err
				}
				res, err := bench.Run(ctx, e, c)
				if err != nil {
					return fmt.Errorf("partitions %d (sync %s): %w", parts, e.Sync, err)
				}
				sums[j] = res.Summary()
			}
			d.add(sums[0].MsgsPerSec, sums[0].P50, sums[0].P99)
			l.add(sums[1].MsgsPerSec, sums[1].P50, sums[1].P99)
			perRun = append(perRun, fmt.Sprintf("run %d: durable %.0f (%.1f/%.1f), lazy %.0f (%.1f/%.1f)", i+1,
				sums[0].MsgsPerSec, sums[0].P50, sums[0].P99, sums[1].MsgsPerSec, sums[1].P50, sums[1].P99))
		}
		if parts == 8 {
			base = median(d.rate)
		}
		fmt.Printf("%-12d %-26s %-26s %11.2f× %11.2f×\n", parts, d.cell(), l.cell(), ratioMedian(d.rate, l.rate), median(d.rate)/base)
		fmt.Printf("%-12s %s\n", "", strings.Join(perRun, "; "))
	}
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// ratioMedian is the median of the per-run ratios a[i]/b[i].
func ratioMedian(a, b []float64) float64 {
	var r []float64
	for i := range a {
		if i < len(b) && b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return median(r)
}

// rangeOf is "min–max" of v.
func rangeOf(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f–%.0f", slices.Min(v), slices.Max(v))
}
