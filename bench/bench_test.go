package bench_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/bench"
)

// The benchmarks run raw JetStream and qxd on the same workload in this process, one
// Run per iteration, and report records/s of both and their ratio. Run them with
// -benchtime 1x -count 3 (or more) and compare medians, or use ./bench/compare:
//
//	go test -run '^$' -bench . -benchtime 1x -count 3 ./bench/

func env(b *testing.B, nodes int) *bench.Env {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := bench.NewClusterEnv(ctx, nodes)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	return e
}

func runBench(b *testing.B, e *bench.Env, c bench.Config) {
	b.Helper()
	c.CompareRaw = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var qxdRate, rawRate, ratio, p99, rawP99 float64
	for i := 0; i < b.N; i++ {
		r, err := bench.Run(ctx, e, c)
		if err != nil {
			b.Fatal(err)
		}
		s := r.Summary()
		qxdRate += s.MsgsPerSec
		rawRate += s.RawMsgsPerSec
		ratio += s.Ratio
		p99 += s.P99
		if s.RawP99 != nil {
			rawP99 += *s.RawP99
		}
	}
	n := float64(b.N)
	b.ReportMetric(qxdRate/n, "qxd-rec/s")
	b.ReportMetric(rawRate/n, "raw-rec/s")
	b.ReportMetric(ratio/n, "x-raw")
	if c.Mode == bench.ModeE2E {
		b.ReportMetric(p99/n, "qxd-p99-ms")
		b.ReportMetric(rawP99/n, "raw-p99-ms")
	}
}

var sizes = []struct {
	name    string
	size    int
	records int
}{
	{"100B", 100, 500000},
	{"1KiB", 1024, 250000},
	{"64KiB", 64 << 10, 5000},
}

// BenchmarkProduce: keyed records, 8 partitions, acks all, replicas 1.
func BenchmarkProduce(b *testing.B) {
	e := env(b, 1)
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			runBench(b, e, bench.Config{Mode: bench.ModeProduce, Records: s.records, Size: s.size, Partitions: 8})
		})
	}
}

// BenchmarkConsume: consumers assigned the partitions against ordered consumers.
func BenchmarkConsume(b *testing.B) {
	e := env(b, 1)
	for _, s := range sizes[:2] {
		b.Run(s.name, func(b *testing.B) {
			runBench(b, e, bench.Config{Mode: bench.ModeConsume, Records: s.records, Size: s.size, Partitions: 8})
		})
	}
}

// BenchmarkGroup: one group member with auto-commit against ordered consumers.
func BenchmarkGroup(b *testing.B) {
	e := env(b, 1)
	for _, s := range sizes[:2] {
		b.Run(s.name, func(b *testing.B) {
			runBench(b, e, bench.Config{Mode: bench.ModeGroup, Records: s.records, Size: s.size, Partitions: 8})
		})
	}
}

// BenchmarkE2E: latency at a fixed rate, linger 0 and the default linger.
func BenchmarkE2E(b *testing.B) {
	e := env(b, 1)
	for _, rate := range []int{5000, 20000} {
		for _, l := range []struct {
			name   string
			linger time.Duration
		}{{"linger0", -1}, {"linger5ms", qxd.DefaultLinger}} {
			b.Run(fmt.Sprintf("%dk-%s", rate/1000, l.name), func(b *testing.B) {
				runBench(b, e, bench.Config{Mode: bench.ModeE2E, Records: rate * 5, Rate: rate, Linger: l.linger, Partitions: 8})
			})
		}
	}
}

// BenchmarkProduceR3: 100 B records into 3 replicas on a 3-node cluster in this
// process.
func BenchmarkProduceR3(b *testing.B) {
	e := env(b, 3)
	runBench(b, e, bench.Config{Mode: bench.ModeProduce, Records: 250000, Size: 100, Partitions: 8, Replicas: 3})
}

// BenchmarkCompression: 1 KiB of text-like values with lz4 and zstd.
func BenchmarkCompression(b *testing.B) {
	e := env(b, 1)
	for _, codec := range []qxd.Compression{qxd.CompressionLZ4, qxd.CompressionZstd} {
		b.Run(codec.String(), func(b *testing.B) {
			c := bench.Config{Mode: bench.ModeProduce, Records: 250000, Size: 1024, Partitions: 8, Compression: codec, CompareRaw: true}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for i := 0; i < b.N; i++ {
				r, err := bench.Run(ctx, e, c)
				if err != nil {
					b.Fatal(err)
				}
				s := r.Summary()
				b.ReportMetric(s.MBPerSec, "qxd-MB/s")
				b.ReportMetric(s.Ratio, "x-raw")
				b.ReportMetric(float64(s.StoredBytes), "qxd-stored-B")
				b.ReportMetric(float64(s.RawStoredBytes), "raw-stored-B")
			}
		})
	}
}

// TestRunModes runs every mode on a tiny workload with the raw side: the counts
// match, the figures are positive, and the ratio is qxd's rate over raw's.
// testEnv starts an Env on one node, closed at cleanup, and a context that ends
// after d.
func testEnv(t *testing.T, d time.Duration) (context.Context, *bench.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	e, err := bench.NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return ctx, e
}

func TestRunModes(t *testing.T) {
	ctx, e := testEnv(t, 2*time.Minute)
	for _, c := range []bench.Config{
		{Mode: bench.ModeProduce, Records: 3000, Partitions: 3, Producers: 2},
		{Mode: bench.ModeConsume, Records: 3000, Partitions: 3, Consumers: 2},
		{Mode: bench.ModeGroup, Records: 3000, Partitions: 3, Consumers: 2},
		{Mode: bench.ModeE2E, Records: 1000, Partitions: 2, Rate: 10000, Linger: -1},
		{Mode: bench.ModeProduce, Records: 2000, Size: 1024, Partitions: 2, Compression: qxd.CompressionZstd},
	} {
		t.Run(string(c.Mode)+"-"+c.Compression.String(), func(t *testing.T) {
			c.CompareRaw = true
			var progress int
			c.Progress = func(bench.Progress) { progress++ }
			r, err := bench.Run(ctx, e, c)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Summary()
			if s.Records != int64(c.Records) || s.RawRecords != int64(c.Records) {
				t.Errorf("records: qxd %d, raw %d, want %d", s.Records, s.RawRecords, c.Records)
			}
			if s.MsgsPerSec <= 0 || s.MBPerSec <= 0 || s.RawMsgsPerSec <= 0 || s.RawMBPerSec <= 0 {
				t.Errorf("rates not positive: %+v", s)
			}
			if want := s.MsgsPerSec / s.RawMsgsPerSec; math.Abs(s.Ratio-want) > 0.01*want {
				t.Errorf("ratio %v, want msgs_per_sec/raw_msgs_per_sec = %v", s.Ratio, want)
			}
			if s.StoredBytes <= 0 {
				t.Errorf("stored bytes %d", s.StoredBytes)
			}
			var sum int64
			for _, n := range s.Series {
				sum += n
			}
			if sum != s.Records {
				t.Errorf("series adds up to %d, want %d", sum, s.Records)
			}
			switch c.Mode {
			case bench.ModeProduce, bench.ModeE2E:
				if !(s.P50 > 0 && s.P50 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
					t.Errorf("latency p50 %v p99 %v p99.9 %v max %v: want 0 < p50 <= p99 <= p99.9 <= max", s.P50, s.P99, s.P999, s.Max)
				}
			case bench.ModeConsume, bench.ModeGroup:
				if s.RawPullPerSec <= 0 {
					t.Errorf("raw pull rate %v", s.RawPullPerSec)
				}
			}
			if c.Mode == bench.ModeE2E && (s.RawP99 == nil || *s.RawP99 <= 0) {
				t.Errorf("raw e2e p99 missing: %v", s.RawP99)
			}
			if c.Mode == bench.ModeE2E && (s.AckP50 <= 0 || s.AckP99 < s.AckP50 || s.RawAckP99 == nil || *s.RawAckP99 <= 0) {
				t.Errorf("e2e produce-to-ack latency: qxd p50 %v p99 %v, raw p99 %v: want both sides' figures", s.AckP50, s.AckP99, s.RawAckP99)
			}
			if c.Mode == bench.ModeE2E {
				if s.WaitP99 == nil || s.StoreP50 == nil || *s.StoreP50 <= 0 || s.DeliveryP99 == nil || s.ConsumedFirstPct == nil {
					t.Errorf("e2e stages: wait %v, store %v, delivery %v, consumed first %v: want each (the nodes are embedded)",
						s.WaitP99, s.StoreP50, s.DeliveryP99, s.ConsumedFirstPct)
				}
				if s.TailRecords == 0 || s.TailE2E == nil || s.TailWait == nil || s.TailBatch == nil || s.TailStore == nil || *s.TailStore <= 0 || s.TailBack == nil ||
					s.SchedP99 == nil || s.GCCycles == nil || s.RawSchedP99 == nil {
					t.Errorf("e2e slowest records: %d records, e2e %s wait %s batch %s store %s; runtime: sched p99 %s, gc cycles %v, raw sched p99 %s: want each",
						s.TailRecords, show(s.TailE2E), show(s.TailWait), show(s.TailBatch), show(s.TailStore), show(s.SchedP99), s.GCCycles != nil, show(s.RawSchedP99))
				}
				// The report rounds the ratio to three decimals.
				if want := s.P99 / *s.RawP99; math.Abs(s.P99Ratio-want) > max(0.01*want, 0.0005) {
					t.Errorf("p99 ratio %v, want p99_ms/raw_p99_ms = %v", s.P99Ratio, want)
				}
			}
			if c.Mode == bench.ModeGroup && s.RebalanceMS <= 0 {
				t.Errorf("rebalance_ms %v", s.RebalanceMS)
			}
			if c.Compression == qxd.CompressionZstd && s.StoredBytes*2 > s.RawStoredBytes {
				t.Errorf("zstd stored %d bytes, raw %d: want well under half", s.StoredBytes, s.RawStoredBytes)
			}
		})
	}
}

// TestRunDuration produces for a duration instead of a count.
func TestRunDuration(t *testing.T) {
	ctx, e := testEnv(t, time.Minute)
	start := time.Now()
	r, err := bench.Run(ctx, e, bench.Config{Mode: bench.ModeProduce, Duration: 300 * time.Millisecond, Rate: 2000, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	// 2000/s for 0.3s: about 600 records.
	if n := r.Qxd.Records; n < 300 || n > 900 {
		t.Errorf("%d records at 2000/s for 300ms", n)
	}
}

// TestProduceTimesAWarmTopic: a produce run on a new topic starts its clock once
// every partition has taken a record on both sides, so a short run times producing,
// not the topic's start-up (the partitions' writers) or the raw streams' first
// message.
func TestProduceTimesAWarmTopic(t *testing.T) {
	ctx, e := testEnv(t, 2*time.Minute)
	const parts = 4
	topic := "warm-start"
	empty := map[string][]string{} // side → partitions or streams without a record at its start
	onPhase := func(system, phase string) func() {
		if phase != "run" {
			return nil
		}
		switch system {
		case "qxd":
			d, err := e.Client.Admin().DescribeTopic(ctx, topic)
			if err != nil {
				t.Errorf("describe %s: %v", topic, err)
				return nil
			}
			for _, p := range d.Partitions {
				if p.HighWatermark == 0 {
					empty[system] = append(empty[system], fmt.Sprint(p.Partition))
				}
			}
		case "raw":
			for name := range e.JS.StreamNames(ctx).Name() {
				s, err := e.JS.Stream(ctx, name)
				if err != nil {
					t.Errorf("stream %s: %v", name, err)
					continue
				}
				if strings.HasPrefix(name, "RAW") && s.CachedInfo().State.Msgs == 0 {
					empty[system] = append(empty[system], name)
				}
			}
		}
		return nil
	}
	r, err := bench.Run(ctx, e, bench.Config{Mode: bench.ModeProduce, Records: 2000, Partitions: parts,
		Topic: topic, CompareRaw: true, OnPhase: onPhase})
	if err != nil {
		t.Fatal(err)
	}
	for side, ps := range empty {
		t.Errorf("%s: the clock started with nothing stored in %v", side, ps)
	}
	if r.Qxd.Records != 2000 || r.Raw.Records != 2000 {
		t.Errorf("timed records: qxd %d, raw %d, want 2000 each (warm-up records not counted)", r.Qxd.Records, r.Raw.Records)
	}
}

// TestRunKafkaSide: with CompareKafka, produce and consume also run through the
// node's Kafka listener with franz-go, moving every record, and the ratios are the
// Kafka side's rate over raw's and over the SDK's; other modes refuse it.
func TestRunKafkaSide(t *testing.T) {
	ctx, e := testEnv(t, 2*time.Minute)
	for _, c := range []bench.Config{
		{Mode: bench.ModeProduce, Records: 3000, Partitions: 3, Producers: 2, Compression: qxd.CompressionLZ4},
		{Mode: bench.ModeConsume, Records: 3000, Partitions: 3, Consumers: 2},
	} {
		t.Run(string(c.Mode), func(t *testing.T) {
			c.CompareRaw, c.CompareKafka = true, true
			r, err := bench.Run(ctx, e, c)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Summary()
			if r.Kafka == nil || r.Kafka.Records != int64(c.Records) {
				t.Fatalf("kafka side moved %+v records, want %d", r.Kafka, c.Records)
			}
			// Ratios are rounded to three decimals: a small one is off by up to 0.0005.
			near := func(got, want float64) bool { return math.Abs(got-want) <= max(0.01*want, 0.0005) }
			if want := s.KafkaPerSec / s.RawMsgsPerSec; s.KafkaPerSec <= 0 || !near(s.KafkaRatio, want) {
				t.Errorf("kafka ratio %v, want kafka_msgs_per_sec/raw_msgs_per_sec = %v", s.KafkaRatio, want)
			}
			if want := s.KafkaPerSec / s.MsgsPerSec; !near(s.KafkaSDKRatio, want) {
				t.Errorf("kafka/sdk ratio %v, want %v", s.KafkaSDKRatio, want)
			}
			var out strings.Builder
			r.WriteText(&out)
			if !strings.Contains(out.String(), "kafka ÷ qxd") {
				t.Errorf("summary has no kafka line:\n%s", out.String())
			}
			if c.Mode == bench.ModeConsume && runtime.GOOS != "windows" {
				// Each side's CPU per record: what a loaded machine does not swing.
				if s.CPUNsPerRecord <= 0 || s.KafkaCPUNs <= 0 || s.RawCPUNs <= 0 {
					t.Errorf("CPU per record: qxd %v, kafka %v, raw %v ns; want each above 0", s.CPUNsPerRecord, s.KafkaCPUNs, s.RawCPUNs)
				}
				if !strings.Contains(out.String(), "CPU per record read") {
					t.Errorf("summary has no CPU line:\n%s", out.String())
				}
			}
			if c.Mode == bench.ModeConsume {
				// The clients' wait for fetch answers: a part of their read.
				if s.KafkaFetchWaitShare <= 0 || s.KafkaFetchWaitShare > 1 {
					t.Errorf("kafka fetch wait share %v, want in (0, 1]", s.KafkaFetchWaitShare)
				}
				if !strings.Contains(out.String(), "waited for fetch answers") {
					t.Errorf("summary has no fetch wait:\n%s", out.String())
				}
			}
		})
	}
	if _, err := bench.Run(ctx, e, bench.Config{Mode: bench.ModeGroup, Records: 10, CompareKafka: true}); err == nil {
		t.Error("group mode ran a Kafka side: want an error saying it runs in produce and consume modes")
	}
}

// TestKafkaConsumeClockStartsFirst: the Kafka consume side's clock starts before
// its franz-go clients exist, as the SDK side's starts before its consumers: a
// client made earlier starts fetching at once, and would read records off the
// clock while the meter collects the heap.
func TestKafkaConsumeClockStartsFirst(t *testing.T) {
	ctx, e := testEnv(t, 2*time.Minute)
	var early int
	onPhase := func(system, phase string) func() {
		if system != "kafka" || phase != "run" {
			return nil
		}
		// A client made already has a fetch session on the node within moments.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if st, ok := e.Nodes[0].KafkaFetchSessions(); ok && st.Sessions > 0 {
				early = st.Sessions
				break
			}
		}
		return nil
	}
	r, err := bench.Run(ctx, e, bench.Config{Mode: bench.ModeConsume, Records: 2000, Partitions: 2,
		CompareKafka: true, OnPhase: onPhase})
	if err != nil {
		t.Fatal(err)
	}
	if early > 0 {
		t.Errorf("%d fetch sessions on the node before the Kafka side's clock started: its clients fetched off the clock", early)
	}
	if r.Kafka == nil || r.Kafka.Records != 2000 {
		t.Fatalf("kafka side moved %+v records, want 2000", r.Kafka)
	}
}

// TestRunTransactional: a transactional produce run also runs transactional
// producers after the plain ones, moves every record through each, commits when a
// transaction is due (here every 500 records), and reports its ratio to the plain
// side and the commits' latency; the settings that do not fit are refused.
func TestRunTransactional(t *testing.T) {
	ctx, e := testEnv(t, 2*time.Minute)
	c := bench.Config{Mode: bench.ModeProduce, Records: 3000, Partitions: 3, Producers: 2,
		Transactional: true, TxnRecords: 500, CompareRaw: true}
	r, err := bench.Run(ctx, e, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Qxd.Records != 3000 || r.Txn == nil || r.Txn.Records != 3000 || r.Raw.Records != 3000 {
		t.Fatalf("records: plain %d, transactional %+v, raw %d, want 3000 each", r.Qxd.Records, r.Txn, r.Raw.Records)
	}
	s := r.Summary()
	if want := s.TxnMsgsPerSec / s.MsgsPerSec; s.TxnMsgsPerSec <= 0 || math.Abs(s.TxnRatio-want) > 0.01*want {
		t.Errorf("txn ratio %v, want txn_msgs_per_sec/msgs_per_sec = %v", s.TxnRatio, want)
	}
	if s.TxnOverheadPct == nil || math.Abs(*s.TxnOverheadPct-(1-s.TxnRatio)*100) > 0.2 {
		t.Errorf("txn overhead %v%%, want (1 - %v) × 100", s.TxnOverheadPct, s.TxnRatio)
	}
	// Each producer sends 1500 records: three transactions of 500.
	if s.TxnCommits != 6 {
		t.Errorf("%d commits timed, want 6 (two producers, 1500 records each, every 500)", s.TxnCommits)
	}
	if s.TxnCommitP50 == nil || !(*s.TxnCommitP50 > 0 && *s.TxnCommitP50 <= *s.TxnCommitP99 && *s.TxnCommitP99 <= *s.TxnCommitMax) {
		t.Errorf("commit latency p50 %v p99 %v max %v", s.TxnCommitP50, s.TxnCommitP99, s.TxnCommitMax)
	}
	if s.TxnRecords != 500 || s.TxnIntervalMS != 0 {
		t.Errorf("txn_records %d txn_interval_ms %v, want 500 and 0", s.TxnRecords, s.TxnIntervalMS)
	}
	var out strings.Builder
	r.WriteText(&out)
	for _, want := range []string{"qxd-txn", "transactional ÷ plain", "every 500 records", "6 commits"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}

	// By time: 2000 records at 4000/s take half a second, committed every 100 ms
	// (the default) by one producer.
	r, err = bench.Run(ctx, e, bench.Config{Mode: bench.ModeProduce, Records: 2000, Rate: 4000, Partitions: 2, Transactional: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.TxnIntervalMS != 100 || s.TxnCommits < 3 || s.TxnCommits > 8 {
		t.Errorf("txn_interval_ms %v, %d commits of a half-second run: want 100 and about 5", s.TxnIntervalMS, s.TxnCommits)
	}

	for _, bad := range []bench.Config{
		{Mode: bench.ModeConsume, Records: 10, Transactional: true},
		{Mode: bench.ModeProduce, Records: 10, Transactional: true, Acks: "leader"},
		{Mode: bench.ModeProduce, Records: 10, TxnRecords: 5},
		{Mode: bench.ModeProduce, Records: 10, Transactional: true, TxnInterval: -time.Second},
	} {
		if _, err := bench.Run(ctx, e, bad); err == nil {
			t.Errorf("%+v ran: want an error", bad)
		}
	}
}

// TestRunCountsBatches checks the batch figures of the qxd side: every record timed
// is counted in exactly one acknowledged batch, and the warm-up records sent before
// the clock starts are not.
func TestRunCountsBatches(t *testing.T) {
	ctx, e := testEnv(t, 2*time.Minute)
	for _, c := range []bench.Config{
		{Mode: bench.ModeProduce, Records: 3000, Partitions: 4},
		{Mode: bench.ModeE2E, Records: 500, Partitions: 4, Rate: 5000},
	} {
		t.Run(string(c.Mode), func(t *testing.T) {
			r, err := bench.Run(ctx, e, c)
			if err != nil {
				t.Fatal(err)
			}
			q := r.Qxd
			if q.Batches <= 0 || q.Batches > q.Records {
				t.Fatalf("batches = %d for %d records: want 1 to %d", q.Batches, q.Records, q.Records)
			}
			if q.BatchRecords != q.Records {
				t.Errorf("records in counted batches = %d, want the %d records timed", q.BatchRecords, q.Records)
			}
			if q.BatchLatency == nil || q.BatchLatency.Count() != uint64(q.Batches) {
				t.Errorf("batch latencies recorded: %v, want %d", q.BatchLatency, q.Batches)
			}
			s := r.Summary()
			if want := float64(q.Records) / float64(q.Batches); s.Batches != q.Batches || math.Abs(s.RecordsPerBatch-want) > 0.001 || s.BatchP99 == nil {
				t.Errorf("summary batches %d, records per batch %v, batch p99 %v; want %d, %.3f and a p99", s.Batches, s.RecordsPerBatch, s.BatchP99, q.Batches, want)
			}
		})
	}
}

// show prints an optional figure of a Summary.
func show(v *float64) string {
	if v == nil {
		return "missing"
	}
	return fmt.Sprint(*v)
}
