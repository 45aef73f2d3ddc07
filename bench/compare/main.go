// Command compare runs qxd's workloads and the raw JetStream equivalents in one
// process, several times, and prints medians of records/s and of the ratio against
// the targets.
//
//	go run ./bench/compare [-runs 3] [-records 200000] [-only produce,consume,group,e2e,r3,compression,durability]
//
// The nodes sync every append to disk before acknowledging it (qxd server's default,
// --sync always), and both sides run on them. The durability family adds a table of
// qxd and raw JetStream on such nodes and raw JetStream on nodes that sync every two
// minutes (nats-server's default), for 100 B, 1 KiB and 64 KiB records, one and
// three replicas, each side producing for -side. The partitions family (not run
// unless named) prints qxd's rate with 8, 64 and 512 partitions on both kinds of
// nodes.
//
// -only also takes single rows by name ("produce 1KiB"); -cpuprofile and -memprofile
// write pprof profiles of the whole run, and -raw=false leaves out the raw side, for
// profiling qxd alone. -phaseprofile DIR writes a CPU profile of each side's timed
// phase alone, one file per row, side and run (DIR/consume-1KiB-qxd-1.prof,
// …-raw-1.prof, …-raw-pull-1.prof), leaving out storing the records; give several
// files of one side to `go tool pprof` to merge them. Before the first row on new
// nodes, one untimed run of it warms the process (-warmup=false leaves it out). Each
// row prints every run's ratio under its medians, and the CPU ratio of each run:
// raw's CPU time per record over qxd's, steadier than the rates on a busy machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/bench"
)

func main() {
	runs := flag.Int("runs", 3, "runs per workload; medians are printed")
	records := flag.Int("records", 500000, "records per run for 100 B records (1 KiB runs use half, 64 KiB runs a hundredth)")
	only := flag.String("only", "produce,consume,group,e2e,r3,compression,durability", "comma-separated workload families to run (also: partitions)")
	side := flag.Duration("side", 3*time.Second, "how long each side produces in the durability and partitions tables")
	durRows := flag.String("durability-rows", "", "comma-separated rows of the durability table to run, as the table names them ('100B R3'), or e2e (default: all)")
	withRaw := flag.Bool("raw", true, "also run the raw JetStream side (ratios need it)")
	warmup := flag.Bool("warmup", true, "run the first row once, untimed, on each new set of nodes")
	batchBytes := flag.Int("batch-bytes", 0, "qxd producer batch size in bytes (default: the producer's)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the run to this file")
	phaseProfile := flag.String("phaseprofile", "", "write CPU profiles of each side's timed phase into this directory")
	flag.Parse()
	if *cpuProfile != "" && *phaseProfile != "" {
		fmt.Fprintln(os.Stderr, "compare: -cpuprofile and -phaseprofile both profile the CPU: give one of them")
		os.Exit(2)
	}
	if *phaseProfile != "" {
		if err := os.MkdirAll(*phaseProfile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
	}
	families := strings.Split(*only, ",")
	err := run(*runs, *records, families, *withRaw, *warmup, *batchBytes, *phaseProfile)
	if err == nil && slices.Contains(families, "durability") {
		err = runDurability(context.Background(), *runs, *side, splitList(*durRows), *phaseProfile)
	}
	if err == nil && slices.Contains(families, "partitions") {
		err = runPartitionCurve(context.Background(), *runs, *side)
	}
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err == nil && *memProfile != "" {
		err = writeHeapProfile(*memProfile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

type row struct {
	name   string
	nodes  int
	c      bench.Config
	target string
	// latency rows compare p99s instead of rates.
	latency bool
}

func rows(records int) []row {
	r100, r1k := records, records/2
	var out []row
	p := func(size, n int, target string) row {
		return row{name: fmt.Sprintf("produce %s", bench.SizeString(size)), nodes: 1, target: target,
			c: bench.Config{Mode: bench.ModeProduce, Records: n, Size: size, Partitions: 8}}
	}
	out = append(out, p(100, r100, "≥ 5×"), p(1024, r1k, "≥ 2×"), p(64<<10, max(records/100, 1000), "≥ 0.9×"))
	for _, m := range []bench.Mode{bench.ModeConsume, bench.ModeGroup} {
		out = append(out,
			row{name: fmt.Sprintf("%s 100B", m), nodes: 1, target: "≥ 3×", c: bench.Config{Mode: m, Records: r100, Size: 100, Partitions: 8}},
			row{name: fmt.Sprintf("%s 1KiB", m), nodes: 1, target: "≥ 1.5×", c: bench.Config{Mode: m, Records: r1k, Size: 1024, Partitions: 8}})
	}
	for _, rate := range []int{5000, 20000} {
		out = append(out,
			row{name: fmt.Sprintf("e2e %dk/s linger 0", rate/1000), nodes: 1, latency: true, target: "p99 ≤ 2× raw",
				c: bench.Config{Mode: bench.ModeE2E, Records: rate * 5, Rate: rate, Linger: -1, Partitions: 8}},
			row{name: fmt.Sprintf("e2e %dk/s linger 5ms", rate/1000), nodes: 1, latency: true, target: "(report)",
				c: bench.Config{Mode: bench.ModeE2E, Records: rate * 5, Rate: rate, Partitions: 8}})
	}
	out = append(out, row{name: "produce 100B R3 (3 nodes)", nodes: 3, target: "≥ 3×",
		c: bench.Config{Mode: bench.ModeProduce, Records: r1k, Size: 100, Partitions: 8, Replicas: 3}})
	for _, codec := range []qxd.Compression{qxd.CompressionLZ4, qxd.CompressionZstd} {
		out = append(out, row{name: "produce 1KiB " + codec.String(), nodes: 1, target: "(report)",
			c: bench.Config{Mode: bench.ModeProduce, Records: r1k, Size: 1024, Partitions: 8, Compression: codec}})
	}
	return out
}

func family(r row) string {
	switch {
	case r.nodes == 3:
		return "r3"
	case r.c.Compression != qxd.CompressionNone:
		return "compression"
	}
	return string(r.c.Mode)
}

func run(runs, records int, only []string, withRaw, warmup bool, batchBytes int, phaseProfile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	envs := map[int]*bench.Env{}
	defer func() {
		for _, e := range envs {
			e.Close()
		}
	}()
	header := false
	for _, r := range rows(records) {
		if !slices.Contains(only, family(r)) && !slices.Contains(only, r.name) {
			continue
		}
		if !header {
			fmt.Printf("%-28s %12s %12s %9s %-13s %-14s %s\n", "workload", "raw rec/s", "qxd rec/s", "qxd/raw", "range", "target", "notes")
			header = true
		}
		e := envs[r.nodes]
		if e == nil {
			var err error
			if e, err = bench.NewClusterEnv(ctx, r.nodes); err != nil {
				return err
			}
			envs[r.nodes] = e
			// The first run in a new process pays for growing its heap (page faults
			// on fresh memory), and only the side that runs first (qxd) pays it: one
			// untimed run of the first row, both sides, before any is timed.
			if warmup {
				c := r.c
				c.CompareRaw = withRaw
				c.BatchBytes = batchBytes
				res, err := bench.Run(ctx, e, c)
				if err != nil {
					return fmt.Errorf("%s: warm-up: %w", r.name, err)
				}
				fmt.Printf("%-28s warm-up run, not counted: %.2f×\n", "("+r.name+")", res.Ratio())
			}
		}
		var raw, q, ratio, p50, p99, p999, rp50, rp99, rp999, stored, rawStored, pull, cpuRatio []float64
		for i := 0; i < runs; i++ {
			c := r.c
			c.CompareRaw = withRaw
			c.BatchBytes = batchBytes
			cpu := cpuPhases{}
			c.OnPhase = cpu.onPhase(phaseProfile, r.name, i+1)
			res, err := bench.Run(ctx, e, c)
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			s := res.Summary()
			raw, q, ratio = append(raw, s.RawMsgsPerSec), append(q, s.MsgsPerSec), append(ratio, s.Ratio)
			p50, p99, p999 = append(p50, s.P50), append(p99, s.P99), append(p999, s.P999)
			if s.RawP99 != nil {
				rp50, rp99, rp999 = append(rp50, *s.RawP50), append(rp99, *s.RawP99), append(rp999, *s.RawP999)
			}
			stored, rawStored = append(stored, float64(s.StoredBytes)), append(rawStored, float64(s.RawStoredBytes))
			pull = append(pull, s.PullRatio)
			cpuRatio = append(cpuRatio, cpu.ratio(res))
		}
		notes, rng := "", spread(ratio)
		switch {
		case r.latency:
			rng = ""
			notes = fmt.Sprintf("p50/p99/p99.9 ms: qxd %.2f/%.2f/%.2f, raw %.2f/%.2f/%.2f; p99 qxd÷raw %.2f×",
				median(p50), median(p99), median(p999), median(rp50), median(rp99), median(rp999), median(p99)/median(rp99))
		case r.c.Compression != qxd.CompressionNone:
			notes = fmt.Sprintf("stored %.1f MB vs raw %.1f MB (%.1f× smaller)", median(stored)/1e6, median(rawStored)/1e6, median(rawStored)/median(stored))
		case r.c.Mode == bench.ModeConsume || r.c.Mode == bench.ModeGroup:
			notes = fmt.Sprintf("÷ raw pull consumer: %.2f×", median(pull))
		}
		fmt.Printf("%-28s %12.0f %12.0f %8.2f× %-13s %-14s %s\n", r.name, median(raw), median(q), median(ratio), rng, r.target, notes)
		if withRaw && !r.latency && runs > 1 {
			fmt.Printf("%-28s %s\n", "", eachRun(ratio, pull, cpuRatio, r.c.Mode == bench.ModeConsume || r.c.Mode == bench.ModeGroup))
		}
	}
	if header {
		fmt.Printf("medians of %d runs, same process, same node(s), syncing every append; keyed records, 8 partitions, acks all, raw window 4000\n", runs)
	}
	return nil
}

// profilePhase returns a bench.Config.OnPhase that writes a CPU profile of each
// side's timed phase into dir.
func profilePhase(dir, row string, run int) func(system, phase string) func() {
	return func(system, phase string) func() {
		if phase != "run" {
			return nil
		}
		path := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.prof", strings.ReplaceAll(row, " ", "-"), system, run))
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare: phase profile:", err)
			return nil
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "compare: phase profile:", err)
			f.Close()
			return nil
		}
		return func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
}

// eachRun lists every run's ratio in run order; with pull the ratio against the raw
// pull consumer too; and the CPU ratio of every run, when measured: "runs: 1.62×
// 2.10× 1.95×; ÷ pull 1.40× 1.77× 1.81×; CPU 1.70× 1.90× 1.85×".
func eachRun(ratio, pullRatio, cpuRatio []float64, pull bool) string {
	var b strings.Builder
	list := func(name string, v []float64) {
		b.WriteString(name)
		for _, r := range v {
			fmt.Fprintf(&b, " %.2f×", r)
		}
	}
	list("runs:", ratio)
	if pull {
		list("; ÷ pull", pullRatio)
	}
	if slices.Max(cpuRatio) > 0 {
		list("; CPU", cpuRatio)
	}
	return b.String()
}

// cpuPhases is the process's CPU time during each side's timed phase of one run.
type cpuPhases map[string]time.Duration

func (p cpuPhases) start(system, phase string) (end func()) {
	if phase != "run" {
		return func() {}
	}
	t0 := processCPU()
	return func() { p[system] = processCPU() - t0 }
}

// onPhase returns a bench.Config.OnPhase that measures each side's timed phase
// into p and, with dir set, writes its CPU profile there (profilePhase).
func (p cpuPhases) onPhase(dir, row string, run int) func(system, phase string) func() {
	var profile func(system, phase string) func()
	if dir != "" {
		profile = profilePhase(dir, row, run)
	}
	return func(system, phase string) func() {
		var end func()
		if profile != nil {
			end = profile(system, phase)
		}
		endCPU := p.start(system, phase)
		return func() {
			endCPU()
			if end != nil {
				end()
			}
		}
	}
}

// ratio is raw's CPU time per record over qxd's (above 1: qxd spends less), or 0.
// The process holds the node(s) and both clients, so it counts the server's work
// too; with other work on the machine it moves less than the rates.
func (p cpuPhases) ratio(res *bench.Result) float64 {
	q, r := p["qxd"], p["raw"]
	if res.Raw == nil || q <= 0 || r <= 0 || res.Qxd.Records == 0 || res.Raw.Records == 0 {
		return 0
	}
	return (float64(r) / float64(res.Raw.Records)) / (float64(q) / float64(res.Qxd.Records))
}

// spread is the lowest and highest of v, as "1.80–2.20×".
func spread(v []float64) string {
	if len(v) == 0 || slices.Max(v) == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f–%.2f×", slices.Min(v), slices.Max(v))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// splitList is s's comma-separated items, trimmed; none for "".
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
