package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Summary is a Result as one flat JSON object: qxd's figures, raw's prefixed with
// raw_, and their ratio.
type Summary struct {
	Mode        Mode    `json:"mode"`
	Records     int64   `json:"records"`
	Size        int     `json:"size"`
	Partitions  int32   `json:"partitions"`
	Replicas    int     `json:"replicas"`
	Producers   int     `json:"producers"`
	Consumers   int     `json:"consumers"`
	Rate        int     `json:"rate"`
	Acks        string  `json:"acks"`
	LingerMS    float64 `json:"linger_ms"`
	BatchBytes  int     `json:"batch_bytes"`
	Compression string  `json:"compression"`
	Sync        string  `json:"sync"`
	Seconds     float64 `json:"seconds"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	P999        float64 `json:"p999_ms"`
	Max         float64 `json:"max_ms"`
	// AckP50 and AckP99 are e2e's produce-to-acknowledgement latencies (the rest of
	// P50 and P99 is delivery to the consumer).
	AckP50      float64 `json:"ack_p50_ms,omitempty"`
	AckP99      float64 `json:"ack_p99_ms,omitempty"`
	StoredBytes int64   `json:"stored_bytes"`
	// Batches is how many record batches (JetStream messages) qxd's producers had
	// acknowledged in a produce or e2e run, RecordsPerBatch their mean size, and
	// BatchP50/BatchP99 a batch's time from send to answer.
	Batches         int64    `json:"batches,omitempty"`
	RecordsPerBatch float64  `json:"records_per_batch,omitempty"`
	BatchP50        *float64 `json:"batch_p50_ms,omitempty"`
	BatchP99        *float64 `json:"batch_p99_ms,omitempty"`
	// e2e's stages (see Stages): a record's wait in the producer, a batch's store
	// as the embedded nodes' writers time it, a record's time from its ack to its
	// consumer, and the share of records consumed before their ack.
	WaitP50          *float64 `json:"wait_p50_ms,omitempty"`
	WaitP99          *float64 `json:"wait_p99_ms,omitempty"`
	StoreP50         *float64 `json:"store_p50_ms,omitempty"`
	StoreP99         *float64 `json:"store_p99_ms,omitempty"`
	DeliveryP50      *float64 `json:"delivery_p50_ms,omitempty"`
	DeliveryP99      *float64 `json:"delivery_p99_ms,omitempty"`
	ConsumedFirstPct *float64 `json:"consumed_first_pct,omitempty"`
	// The slowest 1% of e2e's records (see TailStages): how many, and their
	// mean produce-to-consume time split into the same parts.
	TailRecords  int      `json:"tail_records,omitempty"`
	TailE2E      *float64 `json:"tail_e2e_ms,omitempty"`
	TailWait     *float64 `json:"tail_wait_ms,omitempty"`
	TailBatch    *float64 `json:"tail_batch_ms,omitempty"`
	TailDelivery *float64 `json:"tail_delivery_ms,omitempty"`
	// TailStore is the stream's store within TailBatch, and TailStoreBatch the
	// batch time over the same records (those whose append was matched).
	TailStore      *float64 `json:"tail_store_ms,omitempty"`
	TailStoreBatch *float64 `json:"tail_store_batch_ms,omitempty"`
	// TailBack is the part of TailStoreBatch from the writer having the stream's
	// ack to the producer's sender settling the batch.
	TailBack *float64 `json:"tail_back_ms,omitempty"`
	// What the Go runtime saw of the whole process in e2e's timed part (see
	// SchedStats): a runnable goroutine's wait for a thread, p50/p99, and the
	// collector's cycles and stop-the-world pauses (raw_ likewise for raw's part).
	SchedP50       *float64 `json:"sched_p50_ms,omitempty"`
	SchedP99       *float64 `json:"sched_p99_ms,omitempty"`
	GCCycles       *uint64  `json:"gc_cycles,omitempty"`
	GCPauses       *uint64  `json:"gc_pauses,omitempty"`
	GCPauseTotalMS *float64 `json:"gc_pause_total_ms,omitempty"`
	GCPauseMaxMS   *float64 `json:"gc_pause_max_ms,omitempty"`
	RawSchedP99    *float64 `json:"raw_sched_p99_ms,omitempty"`
	RawGCPauseMax  *float64 `json:"raw_gc_pause_max_ms,omitempty"`
	RebalanceMS    float64  `json:"rebalance_ms,omitempty"`
	// CPUNsPerRecord is the process's CPU time per record read during the timed
	// part, embedded nodes included (consume mode; kafka_ and raw_ likewise).
	CPUNsPerRecord float64 `json:"cpu_ns_per_record,omitempty"`
	IntervalMS     float64 `json:"interval_ms"`
	Series         []int64 `json:"series"`

	RawRecords    int64    `json:"raw_records,omitempty"`
	RawMsgsPerSec float64  `json:"raw_msgs_per_sec,omitempty"`
	RawMBPerSec   float64  `json:"raw_mb_per_sec,omitempty"`
	RawP50        *float64 `json:"raw_p50_ms,omitempty"`
	RawP99        *float64 `json:"raw_p99_ms,omitempty"`
	RawP999       *float64 `json:"raw_p999_ms,omitempty"`
	RawMax        *float64 `json:"raw_max_ms,omitempty"`
	RawAckP50     *float64 `json:"raw_ack_p50_ms,omitempty"`
	RawAckP99     *float64 `json:"raw_ack_p99_ms,omitempty"`
	// P99Ratio is e2e's p99 qxd ÷ raw (lower is better).
	P99Ratio       float64  `json:"p99_ratio,omitempty"`
	RawStoredBytes int64    `json:"raw_stored_bytes,omitempty"`
	RawCPUNs       float64  `json:"raw_cpu_ns_per_record,omitempty"`
	RawPullPerSec  float64  `json:"raw_pull_msgs_per_sec,omitempty"`
	TxnIntervalMS  float64  `json:"txn_interval_ms,omitempty"`
	TxnRecords     int      `json:"txn_records,omitempty"`
	TxnMsgsPerSec  float64  `json:"txn_msgs_per_sec,omitempty"`
	TxnMBPerSec    float64  `json:"txn_mb_per_sec,omitempty"`
	TxnP50         *float64 `json:"txn_p50_ms,omitempty"`
	TxnP99         *float64 `json:"txn_p99_ms,omitempty"`
	TxnRatio       float64  `json:"txn_ratio,omitempty"`
	TxnOverheadPct *float64 `json:"txn_overhead_pct,omitempty"`
	TxnCommits     uint64   `json:"txn_commits,omitempty"`
	TxnCommitP50   *float64 `json:"txn_commit_p50_ms,omitempty"`
	TxnCommitP99   *float64 `json:"txn_commit_p99_ms,omitempty"`
	TxnCommitMax   *float64 `json:"txn_commit_max_ms,omitempty"`
	KafkaPerSec    float64  `json:"kafka_msgs_per_sec,omitempty"`
	KafkaMBPerSec  float64  `json:"kafka_mb_per_sec,omitempty"`
	KafkaP50       *float64 `json:"kafka_p50_ms,omitempty"`
	KafkaP99       *float64 `json:"kafka_p99_ms,omitempty"`
	KafkaRatio     float64  `json:"kafka_ratio,omitempty"`
	KafkaSDKRatio  float64  `json:"kafka_sdk_ratio,omitempty"`
	KafkaCPUNs     float64  `json:"kafka_cpu_ns_per_record,omitempty"`
	// KafkaFetchWaitShare is the part of the Kafka side's read its clients
	// spent waiting for fetch answers (Measure.FetchWait ÷ its elapsed time).
	KafkaFetchWaitShare float64 `json:"kafka_fetch_wait_share,omitempty"`
	Ratio               float64 `json:"ratio,omitempty"`
	PullRatio           float64 `json:"pull_ratio,omitempty"`
}

// Summary flattens r.
func (r *Result) Summary() Summary {
	c := r.Config
	q := r.Qxd
	s := Summary{
		Mode: c.Mode, Records: q.Records, Size: c.Size, Partitions: c.Partitions, Replicas: c.Replicas,
		Producers: c.Producers, Consumers: c.Consumers, Rate: c.Rate, Acks: c.Acks,
		LingerMS: ms(c.Linger), BatchBytes: c.BatchBytes, Compression: c.Compression.String(), Sync: r.Sync,
		Seconds: q.Elapsed.Seconds(), MsgsPerSec: round(q.PerSec()), MBPerSec: round(q.MBPerSec()),
		StoredBytes: q.StoredBytes, RebalanceMS: round(ms(q.Rebalance)),
		IntervalMS: ms(q.Interval), Series: q.Series, CPUNsPerRecord: math.Round(q.CPUPerRecord()),
	}
	if q.Latency != nil {
		l := q.Latency.Summary()
		s.P50, s.P99, s.P999, s.Max = round(l.P50), round(l.P99), round(l.P999), round(l.Max)
	}
	if q.AckLatency != nil && q.AckLatency.Count() > 0 {
		l := q.AckLatency.Summary()
		s.AckP50, s.AckP99 = round(l.P50), round(l.P99)
	}
	if q.Batches > 0 {
		s.Batches, s.RecordsPerBatch = q.Batches, round(q.RecordsPerBatch())
		if q.BatchLatency != nil {
			l := q.BatchLatency.Summary()
			p50, p99 := round(l.P50), round(l.P99)
			s.BatchP50, s.BatchP99 = &p50, &p99
		}
	}
	if st := q.Stages; st != nil {
		s.WaitP50, s.WaitP99 = quantiles(st.InProducer)
		s.StoreP50, s.StoreP99 = quantiles(st.Stored)
		s.DeliveryP50, s.DeliveryP99 = quantiles(st.Delivered)
		if n := st.Delivered.Count(); n > 0 {
			pct := round(100 * float64(st.ConsumedFirst) / float64(n))
			s.ConsumedFirstPct = &pct
		}
		if t := st.Tail; t.Records > 0 {
			s.TailRecords = t.Records
			s.TailE2E, s.TailWait, s.TailBatch, s.TailDelivery = msPtr(t.E2E), msPtr(t.InProducer), msPtr(t.Batch), msPtr(t.Delivery)
			if t.StoredRecords > 0 {
				s.TailStore, s.TailStoreBatch, s.TailBack = msPtr(t.Stored), msPtr(t.StoredBatch), msPtr(t.Back)
			}
		}
	}
	if rs := q.Sched; rs != nil {
		s.SchedP50, s.SchedP99 = msPtr(rs.SchedP50), msPtr(rs.SchedP99)
		cycles, pauses := rs.GCCycles, rs.GCPauses
		s.GCCycles, s.GCPauses = &cycles, &pauses
		s.GCPauseTotalMS, s.GCPauseMaxMS = msPtr(rs.GCPauseTotal), msPtr(rs.GCPauseMax)
	}
	if r.Raw != nil && r.Raw.Sched != nil {
		s.RawSchedP99, s.RawGCPauseMax = msPtr(r.Raw.Sched.SchedP99), msPtr(r.Raw.Sched.GCPauseMax)
	}
	if raw := r.Raw; raw != nil {
		s.RawRecords, s.RawMsgsPerSec, s.RawMBPerSec = raw.Records, round(raw.PerSec()), round(raw.MBPerSec())
		s.RawStoredBytes = raw.StoredBytes
		s.RawCPUNs = math.Round(raw.CPUPerRecord())
		s.Ratio = round(r.Ratio())
		if raw.Latency != nil {
			l := raw.Latency.Summary()
			p50, p99, p999, mx := round(l.P50), round(l.P99), round(l.P999), round(l.Max)
			s.RawP50, s.RawP99, s.RawP999, s.RawMax = &p50, &p99, &p999, &mx
		}
		if raw.AckLatency != nil && raw.AckLatency.Count() > 0 {
			l := raw.AckLatency.Summary()
			p50, p99 := round(l.P50), round(l.P99)
			s.RawAckP50, s.RawAckP99 = &p50, &p99
		}
		if c.Mode == ModeE2E {
			s.P99Ratio = round(r.P99Ratio())
		}
	}
	if t := r.Txn; t != nil {
		s.TxnIntervalMS, s.TxnRecords = ms(c.TxnInterval), c.TxnRecords
		s.TxnMsgsPerSec, s.TxnMBPerSec = round(t.PerSec()), round(t.MBPerSec())
		s.TxnRatio = round(r.TxnRatio())
		over := round(r.TxnOverhead())
		s.TxnOverheadPct = &over
		if t.Latency != nil {
			l := t.Latency.Summary()
			p50, p99 := round(l.P50), round(l.P99)
			s.TxnP50, s.TxnP99 = &p50, &p99
		}
		if t.Commits != nil && t.Commits.Count() > 0 {
			l := t.Commits.Summary()
			p50, p99, mx := round(l.P50), round(l.P99), round(l.Max)
			s.TxnCommits, s.TxnCommitP50, s.TxnCommitP99, s.TxnCommitMax = t.Commits.Count(), &p50, &p99, &mx
		}
	}
	if k := r.Kafka; k != nil {
		s.KafkaPerSec, s.KafkaMBPerSec = round(k.PerSec()), round(k.MBPerSec())
		s.KafkaRatio, s.KafkaSDKRatio = round(r.KafkaRatio()), round(r.KafkaSDKRatio())
		s.KafkaCPUNs = math.Round(k.CPUPerRecord())
		s.KafkaFetchWaitShare = round(k.FetchWaitShare())
		if k.Latency != nil {
			l := k.Latency.Summary()
			p50, p99 := round(l.P50), round(l.P99)
			s.KafkaP50, s.KafkaP99 = &p50, &p99
		}
	}
	if r.RawPull != nil && r.RawPull.PerSec() > 0 {
		s.RawPullPerSec = round(r.RawPull.PerSec())
		s.PullRatio = round(q.PerSec() / r.RawPull.PerSec())
	}
	return s
}

// quantiles are h's p50 and p99 in ms, nil when h is empty.
// msPtr is d in milliseconds, rounded as the report rounds.
func msPtr(d time.Duration) *float64 {
	v := round(float64(d) / float64(time.Millisecond))
	return &v
}

func quantiles(h *Histogram) (p50, p99 *float64) {
	if h == nil || h.Count() == 0 {
		return nil, nil
	}
	l := h.Summary()
	a, b := round(l.P50), round(l.P99)
	return &a, &b
}

// round keeps three decimals, so JSON stays readable.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// WriteText prints r as a person reads it: the workload, then one line per side with
// records/s, MB/s and latency, then the ratio.
func (r *Result) WriteText(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "%s: %d records of %s, %d partitions, replicas %d, %d producer(s), %d consumer(s), acks %s, linger %v, compression %s",
		c.Mode, r.Qxd.Records, SizeString(c.Size), c.Partitions, c.Replicas, c.Producers, c.Consumers, c.Acks, c.Linger, c.Compression)
	if c.Rate > 0 {
		fmt.Fprintf(w, ", rate %d/s", c.Rate)
	}
	if r.Sync != "" {
		fmt.Fprintf(w, ", sync %s", r.Sync)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-9s %12s %10s %10s %10s %10s %10s %14s\n", "", "records/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "stored bytes")
	for _, m := range []*Measure{r.Qxd, r.Txn, r.Kafka, r.Raw, r.RawPull} {
		if m == nil {
			continue
		}
		lat := []string{"-", "-", "-", "-"}
		if m.Latency != nil && m.Latency.Count() > 0 {
			l := m.Latency.Summary()
			for i, v := range []float64{l.P50, l.P99, l.P999, l.Max} {
				lat[i] = fmt.Sprintf("%.3f", v)
			}
		}
		fmt.Fprintf(w, "%-9s %12.0f %10.1f %10s %10s %10s %10s %14d\n", m.System, m.PerSec(), m.MBPerSec(),
			lat[0], lat[1], lat[2], lat[3], m.StoredBytes)
	}
	for _, m := range []*Measure{r.Qxd, r.Txn} {
		if m == nil || m.Batches == 0 {
			continue
		}
		fmt.Fprintf(w, "%s batches: %d (%.0f/s), %.1f records per batch", m.System, m.Batches,
			float64(m.Batches)/m.Elapsed.Seconds(), m.RecordsPerBatch())
		if m.BatchLatency != nil && m.BatchLatency.Count() > 0 {
			l := m.BatchLatency.Summary()
			fmt.Fprintf(w, ", send to answer p50 %.3f ms, p99 %.3f ms", l.P50, l.P99)
		}
		fmt.Fprintln(w)
	}
	if r.Qxd.Rebalance > 0 {
		fmt.Fprintf(w, "group stable (every partition assigned) after %v\n", r.Qxd.Rebalance.Round(1e6))
	}
	if r.Raw != nil {
		fmt.Fprintf(w, "qxd ÷ raw: %.2f×", r.Ratio())
		if c.Mode == ModeE2E && r.P99Ratio() > 0 {
			fmt.Fprintf(w, " (records/s); p99 latency qxd ÷ raw: %.2f× (lower is better)", r.P99Ratio())
		}
		if r.RawPull != nil && r.RawPull.PerSec() > 0 {
			fmt.Fprintf(w, " (÷ raw pull: %.2f×)", r.Qxd.PerSec()/r.RawPull.PerSec())
		}
		fmt.Fprintln(w)
	}
	if t := r.Txn; t != nil {
		fmt.Fprintf(w, "transactional ÷ plain: %.2f× (overhead %.1f%%), committing every %s",
			r.TxnRatio(), r.TxnOverhead(), txnEvery(c))
		if t.Commits != nil && t.Commits.Count() > 0 {
			l := t.Commits.Summary()
			fmt.Fprintf(w, "; %d commits, p50 %.3f ms, p99 %.3f ms, max %.3f ms", t.Commits.Count(), l.P50, l.P99, l.Max)
		}
		fmt.Fprintln(w)
	}
	if r.Kafka != nil {
		fmt.Fprintf(w, "kafka ÷ qxd: %.2f×", r.KafkaSDKRatio())
		if r.Raw != nil {
			fmt.Fprintf(w, ", kafka ÷ raw: %.2f×", r.KafkaRatio())
		}
		if share := r.Kafka.FetchWaitShare(); share > 0 {
			fmt.Fprintf(w, "; kafka clients waited for fetch answers %.0f%% of their read", 100*share)
		}
		fmt.Fprintln(w)
	}
	var cpu []string
	for _, m := range []*Measure{r.Qxd, r.Kafka, r.Raw} {
		if ns := m.CPUPerRecord(); ns > 0 {
			cpu = append(cpu, fmt.Sprintf("%s %.0f ns", m.System, ns))
		}
	}
	if len(cpu) > 0 {
		fmt.Fprintf(w, "CPU per record read (the whole process, embedded nodes included): %s\n", strings.Join(cpu, ", "))
	}
	var notes []string
	switch c.Mode {
	case ModeProduce:
		notes = append(notes, "latency: produce to acknowledgement")
		if r.Txn != nil {
			notes = append(notes, "qxd-txn: transactional producers on a topic of their own, after the plain idempotent run (qxd); a commit is CommitTransaction: sending what the producer buffered, then ending the transaction")
		}
		if r.Kafka != nil {
			notes = append(notes, "kafka: franz-go through the nodes' Kafka listeners, same acks, linger, batch size (at most 1MiB) and codec")
		}
	case ModeConsume, ModeGroup:
		notes = append(notes, "records were stored before the timed read; raw: one ordered consumer per stream, raw-pull: durable pull consumers acking every 1000")
		if r.Kafka != nil {
			notes = append(notes, "kafka: franz-go consumers assigned the partitions, through the nodes' Kafka listeners")
		}
	case ModeE2E:
		notes = append(notes, "latency: from produce to consume of each record")
		if st := r.Qxd.Stages; st != nil {
			notes = append(notes, stagesNote(st))
			if t := st.Tail; t.Records > 0 {
				notes = append(notes, tailNote(t))
			}
		}
		for _, m := range []*Measure{r.Qxd, r.Raw} {
			if m != nil && m.Sched != nil {
				notes = append(notes, schedNote(m.System, m.Sched))
			}
		}
		for _, m := range []*Measure{r.Qxd, r.Raw} {
			if m != nil && m.AckLatency != nil && m.AckLatency.Count() > 0 {
				l := m.AckLatency.Summary()
				notes = append(notes, fmt.Sprintf("%s: produce to acknowledgement p50 %.3f ms, p99 %.3f ms", m.System, l.P50, l.P99))
			}
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

// txnEvery says when a transactional run commits: "100ms", "1000 records" or
// "100ms or 1000 records".
func txnEvery(c Config) string {
	var parts []string
	if c.TxnInterval > 0 {
		parts = append(parts, c.TxnInterval.String())
	}
	if c.TxnRecords > 0 {
		parts = append(parts, fmt.Sprintf("%d records", c.TxnRecords))
	}
	return strings.Join(parts, " or ")
}

// SizeString writes a byte count as 100B, 1KiB or 64KiB.
func SizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// FormatProgress is a progress line for a terminal.
func FormatProgress(p Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.System, p.Mode)
	if p.Phase == "fill" {
		b.WriteString(" (storing records first)")
	}
	fmt.Fprintf(&b, ": %d records in %v, %.0f records/s, %.1f MB/s", p.Records, p.Elapsed.Round(1e8), p.PerSec, p.MBPerSec)
	return b.String()
}

// stagesNote is a line with e2e's stages on qxd's side.
func stagesNote(st *Stages) string {
	pp := func(h *Histogram) string {
		if h == nil || h.Count() == 0 {
			return "-"
		}
		l := h.Summary()
		return fmt.Sprintf("%.3f/%.3f", l.P50, l.P99)
	}
	s := fmt.Sprintf("qxd stages, p50/p99 ms: in the producer %s, the stream's store %s (writer to JetStream ack, per batch), ack to consumer %s",
		pp(st.InProducer), pp(st.Stored), pp(st.Delivered))
	if n := st.Delivered.Count(); n > 0 {
		s += fmt.Sprintf(" (%.0f%% consumed before their ack)", 100*float64(st.ConsumedFirst)/float64(n))
	}
	return s
}

// tailNote is a line with where e2e's slowest records spent their time.
func tailNote(t TailStages) string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	out := fmt.Sprintf("qxd's slowest 1%% (%d records), mean ms: %.3f produce to consume = in the producer %.3f + batch send to answer %.3f + ack to consumer %.3f",
		t.Records, ms(t.E2E), ms(t.InProducer), ms(t.Batch), ms(t.Delivery))
	if t.StoredRecords > 0 {
		out += fmt.Sprintf("; of a batch's %.3f, to the writer and its append %.3f, the stream's store %.3f, the answer back to the producer's sender %.3f (%d records matched)",
			ms(t.StoredBatch), ms(t.StoredBatch-t.Stored-t.Back), ms(t.Stored), ms(t.Back), t.StoredRecords)
	}
	return out
}

// schedNote is a line with what the Go runtime saw of the process in a side's
// timed part.
func schedNote(system string, st *SchedStats) string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("%s: process runtime: runnable goroutines waited p50 %.3f ms, p99 %.3f ms; %d GC cycles, %d stop-the-world pauses, %.1f ms in all, longest %.1f ms",
		system, ms(st.SchedP50), ms(st.SchedP99), st.GCCycles, st.GCPauses, ms(st.GCPauseTotal), ms(st.GCPauseMax))
}
