// Package bench measures qxd against raw JetStream doing the same work in the same
// run: qxd's batching producer against per-record PublishAsync into one stream per
// partition (qxd's layout) with the same window, qxd's consumer and consumer groups
// against ordered and pull consumers, and end-to-end latency at a fixed rate through
// both. A Result holds records per second, megabytes per second, a latency histogram
// and a throughput time series for each side, and qxd's throughput as a ratio of raw.
// Both `go test -bench` in this directory and `qxd bench` run these workloads.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/server"
)

// Env is what a benchmark runs against: a qxd client and a plain NATS connection for
// the raw side, to embedded nodes it started (removed on Close) or to a running
// cluster.
type Env struct {
	Nodes []*server.Node // embedded nodes; empty against a running cluster
	// KafkaAddrs are the nodes' Kafka listener addresses, for the Kafka-protocol
	// side (Config.CompareKafka); embedded nodes listen on free loopback ports.
	KafkaAddrs []string
	Client     *qxd.Client
	NC         *nats.Conn
	JS         jetstream.JetStream
	// Sync is the nodes' sync mode as cluster info reports it: "always", an
	// interval such as "2m", or each node's when they differ ("n1 always, n2 1s").
	// Both sides of a run use the same nodes, so the same mode.
	Sync string
	dirs []string
	// batches counts the batches Client's producers have acknowledged in a timed
	// produce (see batchStats).
	batches *batchStats
	// appends times the embedded nodes' appends for e2e's stages; nil against a
	// running cluster.
	appends *appendStats
	// kafkaRecords is the Kafka side's franz-go consumers' pool of record slices.
	kafkaRecords recordPool
}

// EnvOption changes the configuration of the nodes NewClusterEnv starts.
type EnvOption func(*server.Config)

// WithSync sets the embedded nodes' sync mode (server.Config.Sync): server.SyncAlways,
// the default, or an interval.
func WithSync(d time.Duration) EnvOption { return func(c *server.Config) { c.Sync = d } }

// WithKafkaFetchMaxBytes sets the embedded nodes' bound on a Kafka fetch answer
// (server.Config.KafkaFetchMaxBytes, default kafka.DefaultFetchMaxBytes).
func WithKafkaFetchMaxBytes(n int) EnvOption {
	return func(c *server.Config) { c.KafkaFetchMaxBytes = n }
}

// NewEnv starts one embedded node with its data in a temporary directory, listening
// on a free loopback port, and connects to it over TCP.
func NewEnv(ctx context.Context, opts ...EnvOption) (*Env, error) {
	return NewClusterEnv(ctx, 1, opts...)
}

// NewClusterEnv starts n embedded nodes (1 or 3 or more, each with its own temporary
// directory) in this process, clustered when n > 1, waits until they are ready and
// connects to all of them.
//
// The cluster ports are picked free just before the nodes bind them, so another
// process can take one in between; a start that fails so is tried again with
// new ports, up to clusterStartTries times.
func NewClusterEnv(ctx context.Context, n int, opts ...EnvOption) (*Env, error) {
	if n < 1 {
		return nil, fmt.Errorf("bench: %d nodes: start at least 1", n)
	}
	for try := 1; ; try++ {
		e, err := newClusterEnv(ctx, n, opts...)
		if err == nil || n == 1 || try == clusterStartTries || !portTaken(err) {
			return e, err
		}
	}
}

// portTaken reports whether err is a listen on a port another socket holds
// (nats-server reports its route listener's failure as text).
func portTaken(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// clusterStartTries bounds NewClusterEnv's starts when a picked cluster port was
// taken before its node bound it.
const clusterStartTries = 3

func newClusterEnv(ctx context.Context, n int, opts ...EnvOption) (*Env, error) {
	e := &Env{appends: new(appendStats)}
	cfgs := make([]server.Config, n)
	var routes []string
	for i := range cfgs {
		dir, err := os.MkdirTemp("", "qxd-bench-")
		if err != nil {
			e.Close()
			return nil, err
		}
		e.dirs = append(e.dirs, dir)
		cfg := server.DefaultConfig()
		cfg.Name = fmt.Sprintf("bench%d", i+1)
		cfg.DataDir = dir
		cfg.Listen = "127.0.0.1:0"
		cfg.KafkaListen = "127.0.0.1:0"
		if n > 1 {
			addr, err := pickClusterAddr()
			if err != nil {
				e.Close()
				return nil, err
			}
			cfg.ClusterName = "bench"
			cfg.ClusterListen = addr
			routes = append(routes, "nats://"+addr)
		}
		for _, o := range opts {
			o(&cfg)
		}
		cfg.Services = append(cfg.Services, e.appends)
		cfgs[i] = cfg
	}
	for i := range cfgs {
		cfgs[i].Peers = routes
	}
	nodes := make([]*server.Node, n)
	errs := make([]error, n)
	done := make(chan int, n)
	for i := range cfgs {
		go func() {
			nodes[i], errs[i] = server.Start(ctx, cfgs[i])
			done <- i
		}()
	}
	for range cfgs {
		<-done
	}
	for i, nd := range nodes {
		if nd != nil {
			e.Nodes = append(e.Nodes, nd)
		}
		if errs[i] != nil {
			e.Close()
			return nil, fmt.Errorf("bench: start node %s: %w", cfgs[i].Name, errs[i])
		}
	}
	var urls []string
	for _, nd := range e.Nodes {
		urls = append(urls, nd.ClientURL())
		e.KafkaAddrs = append(e.KafkaAddrs, nd.KafkaAddr())
	}
	if err := e.connect(ctx, strings.Join(urls, ",")); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Connect returns an Env for the running qxd nodes at servers (NATS URLs, comma
// separated).
func Connect(ctx context.Context, servers string) (*Env, error) {
	e := &Env{}
	if err := e.connect(ctx, servers); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) connect(ctx context.Context, servers string) error {
	e.batches = &batchStats{stores: e.appends}
	c, err := qxd.Connect(ctx, servers, qxd.WithName("qxd-bench"), qxd.Hooks(e.batches))
	if err != nil {
		return err
	}
	e.Client = c
	nc, err := nats.Connect(servers, nats.Name("qxd-bench-raw"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", servers, err)
	}
	e.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	e.JS = js
	e.Sync = syncMode(ctx, c)
	return nil
}

// syncMode is the nodes' sync mode as cluster info reports it (see Env.Sync), or
// "unknown" when the cluster does not say.
func syncMode(ctx context.Context, c *qxd.Client) string {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := c.Admin().ClusterInfo(ictx)
	if err != nil || len(info.Nodes) == 0 {
		return "unknown"
	}
	modes := map[string]bool{}
	var each []string
	for _, n := range info.Nodes {
		m := n.Sync
		if m == "" {
			m = "unknown"
		}
		modes[m] = true
		each = append(each, n.Name+" "+m)
	}
	if len(modes) == 1 {
		for m := range modes {
			return m
		}
	}
	return strings.Join(each, ", ")
}

// Close disconnects, stops the embedded nodes and removes their data.
func (e *Env) Close() {
	if e.NC != nil {
		e.NC.Close()
	}
	if e.Client != nil {
		e.Client.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan struct{}, len(e.Nodes))
	for _, n := range e.Nodes {
		go func() { _ = n.Close(ctx); done <- struct{}{} }()
	}
	for range e.Nodes {
		<-done
	}
	for _, d := range e.dirs {
		os.RemoveAll(d)
	}
}

// Mode is a benchmark's workload.
type Mode string

// The workloads.
const (
	// ModeProduce produces keyed records as fast as it can (or at Rate) and times
	// until every record is acknowledged.
	ModeProduce Mode = "produce"
	// ModeConsume stores the records first, untimed, then reads them all with
	// consumers assigned the partitions.
	ModeConsume Mode = "consume"
	// ModeGroup stores the records first, untimed, then reads them all with the
	// members of one consumer group, auto-committing.
	ModeGroup Mode = "group"
	// ModeE2E produces at a fixed rate while consumers read; latency is the time
	// from produce to consume of each record.
	ModeE2E Mode = "e2e"
)

// Modes lists the workloads.
var Modes = []Mode{ModeProduce, ModeConsume, ModeGroup, ModeE2E}

// ParseMode reads a mode's name.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("bench mode %q is not known: use produce, consume, group or e2e", s)
}

// Config is one benchmark's shape. The zero value of a field means its default.
type Config struct {
	Mode Mode
	// Records is how many records to produce; 0 with Duration set produces for
	// Duration instead. When neither is set: 256 MiB of values, at most 500000
	// records (10000 in e2e mode).
	Records int
	// Duration bounds the produce phase when Records is 0.
	Duration time.Duration
	// Size is each record's value size in bytes. Default 100.
	Size int
	// Partitions of the topic (and raw streams). Default 8.
	Partitions int32
	// Replicas per partition. Default 1.
	Replicas int
	// Producers run concurrently, each its own producer, sharing Records and Rate.
	// Default 1.
	Producers int
	// Consumers read concurrently: consumers splitting the partitions, or members of
	// the group. Default 1.
	Consumers int
	// Rate is records per second over all producers; 0 is as fast as possible.
	// Default 0, or 5000 in e2e mode.
	Rate int
	// Acks for qxd's producer: "all", "leader" or "none"; none makes the raw side
	// publish without acks too. Default "all".
	Acks string
	// Linger is qxd's producer linger; negative means 0. Default qxd.DefaultLinger.
	Linger time.Duration
	// BatchBytes is qxd's producer batch size. Default qxd.DefaultBatchBytes.
	BatchBytes int
	// Compression of qxd's batches. Default none.
	Compression qxd.Compression
	// Keys is how many distinct keys records get. Default 10000.
	Keys int
	// RawWindow is how many raw publishes may await acks. Default 4000 (nats.go's).
	RawWindow int
	// Topic to use; empty makes a fresh topic, deleted afterwards. A named topic is
	// created if missing and kept; consume modes read all of it.
	Topic string
	// CompareRaw also runs the raw JetStream equivalent, after qxd.
	CompareRaw bool
	// CompareKafka also runs the workload through the nodes' Kafka listeners with
	// franz-go (a Kafka client), after qxd: produce and consume modes.
	CompareKafka bool
	// Transactional also runs the produce with transactional producers, after the
	// plain idempotent ones, on a topic of its own, and reports its throughput as a
	// ratio of theirs and the commits' latency (produce mode, acks all). Each
	// producer commits every TxnInterval or TxnRecords records, whichever comes
	// first; with neither set, every DefaultTxnInterval.
	Transactional bool
	// TxnInterval is how long a transaction stays open at most; 0 is no limit.
	TxnInterval time.Duration
	// TxnRecords is how many records a transaction holds at most; 0 is no limit.
	TxnRecords int
	// Interval is the throughput series' resolution. Default 100ms.
	Interval time.Duration
	// Progress, when set, is called about once a second while a side runs.
	Progress func(Progress)
	// ProducerOptions are added after the ones the fields above make.
	ProducerOptions []qxd.ProducerOption
	// Warmup runs the workload once, untimed, on both sides (on a fresh topic and
	// streams) before the timed run: the first run in a new process pays for growing
	// its heap (page faults on fresh memory), and only the side that runs first, qxd,
	// would pay it.
	Warmup bool
	// OnPhase, when set, is called as a side starts a phase (system "qxd", "raw" or
	// "raw-pull"; phase "fill" while consume modes store their records, "run" for
	// the timed part), and the function it returns, if any, as the phase ends. It
	// lets a caller profile the timed phases of one side alone.
	OnPhase func(system, phase string) (end func())
}

// DefaultTxnInterval is how often transactional runs commit when neither
// Config.TxnInterval nor Config.TxnRecords is set: Kafka Streams' commit.interval.ms
// under exactly-once.
const DefaultTxnInterval = 100 * time.Millisecond

// defaultRunBytes sizes a run without Records or Duration: values of this many bytes
// in all, at most 500000 records.
const defaultRunBytes = 256 << 20

func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModeProduce
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return c, err
	}
	if c.Size == 0 {
		c.Size = 100
	}
	if c.Records == 0 && c.Duration == 0 {
		// Long enough to measure the steady state, not the filling and draining of
		// the pipeline (about 20 ms at the start and end of a run either side).
		c.Records = min(max(defaultRunBytes/c.Size, 100), 500000)
		if c.Mode == ModeE2E {
			c.Records = 10000
		}
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	c.Producers = max(c.Producers, 1)
	c.Consumers = max(c.Consumers, 1)
	if c.Rate == 0 && c.Mode == ModeE2E {
		c.Rate = 5000
	}
	if c.Acks == "" {
		c.Acks = "all"
	}
	if _, err := qxd.ParseAcks(c.Acks); err != nil {
		return c, err
	}
	if c.Linger == 0 {
		c.Linger = qxd.DefaultLinger
	} else if c.Linger < 0 {
		c.Linger = 0
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = qxd.DefaultBatchBytes
	}
	if c.Keys == 0 {
		c.Keys = 10000
	}
	if c.RawWindow == 0 {
		c.RawWindow = 4000
	}
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	switch {
	case c.Records < 0:
		return c, fmt.Errorf("bench: records %d is negative", c.Records)
	case c.Size < 0:
		return c, fmt.Errorf("bench: size %d is negative", c.Size)
	case c.Mode == ModeE2E && c.Size < 8:
		return c, fmt.Errorf("bench: e2e needs records of at least 8 bytes to carry the send time, not %d", c.Size)
	case c.Partitions < 1:
		return c, fmt.Errorf("bench: partitions %d: use at least 1", c.Partitions)
	case c.Rate < 0:
		return c, fmt.Errorf("bench: rate %d is negative", c.Rate)
	case c.CompareKafka && c.Mode != ModeProduce && c.Mode != ModeConsume:
		return c, fmt.Errorf("bench: the Kafka-protocol side runs in produce and consume modes, not %s", c.Mode)
	case c.TxnInterval < 0 || c.TxnRecords < 0:
		return c, fmt.Errorf("bench: transaction interval %v or records %d is negative", c.TxnInterval, c.TxnRecords)
	case !c.Transactional && (c.TxnInterval > 0 || c.TxnRecords > 0):
		return c, fmt.Errorf("bench: a transaction interval or record count is set but Transactional is not")
	case c.Transactional && c.Mode != ModeProduce:
		return c, fmt.Errorf("bench: transactional runs are produce runs, not %s", c.Mode)
	case c.Transactional && c.Acks != "all":
		return c, fmt.Errorf("bench: transactional producers need acks all, not %s", c.Acks)
	}
	if c.Transactional && c.TxnInterval == 0 && c.TxnRecords == 0 {
		c.TxnInterval = DefaultTxnInterval
	}
	return c, nil
}

// Measure is one side's result.
type Measure struct {
	System  string        `json:"system"` // qxd, kafka, raw (ordered consumers) or raw-pull
	Records int64         `json:"records"`
	Bytes   int64         `json:"bytes"` // value bytes moved
	Elapsed time.Duration `json:"-"`
	// Latency is per record: produce to acknowledgement in produce mode, produce to
	// consume in e2e mode; empty in consume modes, whose records were stored before.
	Latency *Histogram `json:"-"`
	// AckLatency is per record in e2e mode: produce to acknowledgement, the part of
	// Latency before the record is stored.
	AckLatency *Histogram `json:"-"`
	// Series is records per Interval, from the side's start.
	Series   []int64       `json:"-"`
	Interval time.Duration `json:"-"`
	// StoredBytes is what the partitions' streams hold after the produce phase.
	StoredBytes int64 `json:"stored_bytes,omitempty"`
	// Rebalance is the time from the first member joining to every partition
	// assigned (group mode).
	Rebalance time.Duration `json:"-"`
	// Commits is how long each CommitTransaction took, sending what the producer
	// still buffered and ending the transaction (transactional side).
	Commits *Histogram `json:"-"`
	// Batches and BatchRecords are the record batches (JetStream messages) qxd's
	// producers had acknowledged while producing, and the records they held;
	// BatchLatency is each batch's time from send to answer (qxd in produce and e2e
	// modes).
	Batches      int64      `json:"-"`
	BatchRecords int64      `json:"-"`
	BatchLatency *Histogram `json:"-"`
	// CPU is the CPU time the whole process used during the side's timed part
	// (consume modes): with embedded nodes their work too, so it is the side's
	// cost on the machine, comparable between sides where records per second
	// swing with the machine's load. 0 when unknown.
	CPU time.Duration `json:"-"`
	// FetchWait is how long the Kafka side's clients waited for their fetches'
	// answers, from the request written to the answer read (the node answering
	// and the answer's transfer), averaged over the clients (Kafka consume). A
	// franz-go client sends a broker its next fetch only once the last answer is
	// decoded and polled, so the rest of Elapsed is the client's own work.
	FetchWait time.Duration `json:"-"`
	// Stages splits Latency into the parts of a record's way (qxd in e2e mode).
	Stages *Stages `json:"-"`
	// Sched is what the Go runtime saw of the process during the timed part (e2e).
	Sched *SchedStats `json:"-"`
}

// FetchWaitShare is m.FetchWait as a part of m.Elapsed, or 0 when unknown.
func (m *Measure) FetchWaitShare() float64 {
	if m == nil || m.FetchWait <= 0 || m.Elapsed <= 0 {
		return 0
	}
	return float64(m.FetchWait) / float64(m.Elapsed)
}

// CPUPerRecord is m's CPU time per record moved, in nanoseconds, or 0 when
// unknown.
func (m *Measure) CPUPerRecord() float64 {
	if m == nil || m.CPU <= 0 || m.Records == 0 {
		return 0
	}
	return float64(m.CPU.Nanoseconds()) / float64(m.Records)
}

// RecordsPerBatch is the mean number of records per acknowledged batch, or 0.
func (m *Measure) RecordsPerBatch() float64 {
	if m == nil || m.Batches == 0 {
		return 0
	}
	return float64(m.BatchRecords) / float64(m.Batches)
}

// PerSec is records per second.
func (m *Measure) PerSec() float64 {
	if m == nil || m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Records) / m.Elapsed.Seconds()
}

// MBPerSec is value megabytes (10^6) per second.
func (m *Measure) MBPerSec() float64 {
	if m == nil || m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Bytes) / 1e6 / m.Elapsed.Seconds()
}

// Result is one run of a Config: qxd's side and, with CompareRaw, raw JetStream's.
type Result struct {
	Config Config
	// Sync is the nodes' sync mode (Env.Sync), the same for both sides.
	Sync    string
	Qxd     *Measure
	Txn     *Measure // transactional producers (Config.Transactional)
	Kafka   *Measure // through the Kafka listener (CompareKafka)
	Raw     *Measure // ordered consumers in consume modes
	RawPull *Measure // consume modes: a durable pull consumer with cumulative acks
}

// Ratio is qxd's records per second over raw's, or 0 without a raw side.
func (r *Result) Ratio() float64 {
	if r.Raw == nil || r.Raw.PerSec() == 0 {
		return 0
	}
	return r.Qxd.PerSec() / r.Raw.PerSec()
}

// P99Ratio is qxd's p99 latency over raw's (e2e: produce to consume), or 0
// without both.
func (r *Result) P99Ratio() float64 {
	if r.Raw == nil || r.Raw.Latency == nil || r.Qxd.Latency == nil || r.Raw.Latency.Count() == 0 || r.Qxd.Latency.Count() == 0 {
		return 0
	}
	raw := r.Raw.Latency.Summary().P99
	if raw <= 0 {
		return 0
	}
	return r.Qxd.Latency.Summary().P99 / raw
}

// TxnRatio is the transactional side's records per second over the plain
// idempotent side's, or 0 without a transactional side.
func (r *Result) TxnRatio() float64 {
	if r.Txn == nil || r.Qxd.PerSec() == 0 {
		return 0
	}
	return r.Txn.PerSec() / r.Qxd.PerSec()
}

// TxnOverhead is the throughput transactions cost, in percent of the plain
// idempotent side's: (1 - TxnRatio) × 100; negative when the transactional side
// was faster.
func (r *Result) TxnOverhead() float64 {
	if r.Txn == nil {
		return 0
	}
	return (1 - r.TxnRatio()) * 100
}

// KafkaRatio is the Kafka-protocol side's records per second over raw's, or 0
// without both.
func (r *Result) KafkaRatio() float64 {
	if r.Kafka == nil || r.Raw == nil || r.Raw.PerSec() == 0 {
		return 0
	}
	return r.Kafka.PerSec() / r.Raw.PerSec()
}

// KafkaSDKRatio is the Kafka-protocol side's records per second over qxd's SDK
// side's, or 0 without the Kafka side.
func (r *Result) KafkaSDKRatio() float64 {
	if r.Kafka == nil || r.Qxd.PerSec() == 0 {
		return 0
	}
	return r.Kafka.PerSec() / r.Qxd.PerSec()
}

// Progress is a side's state while it runs.
type Progress struct {
	Mode     Mode
	System   string
	Phase    string // "fill" while consume modes store their records, else "run"
	Records  int64
	Elapsed  time.Duration
	PerSec   float64 // over the last second
	MBPerSec float64
}

// Run runs c's workload through qxd and, with c.CompareRaw, through raw JetStream.
func Run(ctx context.Context, e *Env, c Config) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Warmup {
		w := c
		w.Warmup, w.Topic, w.Progress, w.OnPhase = false, "", nil, nil
		if _, err := Run(ctx, e, w); err != nil {
			return nil, fmt.Errorf("warm-up run: %w", err)
		}
	}
	res := &Result{Config: c, Sync: e.Sync}
	switch c.Mode {
	case ModeProduce:
		res.Qxd, err = e.qxdProduceRun(ctx, c, nil)
	case ModeConsume, ModeGroup:
		res.Qxd, err = e.qxdConsumeRun(ctx, c)
	case ModeE2E:
		res.Qxd, err = e.qxdE2E(ctx, c)
	}
	if err != nil {
		return nil, fmt.Errorf("qxd %s: %w", c.Mode, err)
	}
	if c.Transactional {
		res.Txn, err = e.qxdProduceRun(ctx, c, &txnSpec{interval: c.TxnInterval, records: c.TxnRecords, commits: NewHistogram()})
		if err != nil {
			return nil, fmt.Errorf("qxd transactional %s: %w", c.Mode, err)
		}
	}
	if c.CompareKafka {
		if c.Mode == ModeProduce {
			res.Kafka, err = e.kafkaProduceRun(ctx, c)
		} else {
			res.Kafka, err = e.kafkaConsumeRun(ctx, c)
		}
		if err != nil {
			return nil, fmt.Errorf("kafka %s: %w", c.Mode, err)
		}
	}
	if !c.CompareRaw {
		return res, nil
	}
	switch c.Mode {
	case ModeProduce:
		res.Raw, err = e.rawProduceRun(ctx, c)
	case ModeConsume, ModeGroup:
		res.Raw, res.RawPull, err = e.rawConsumeRun(ctx, c)
	case ModeE2E:
		res.Raw, err = e.rawE2E(ctx, c)
	}
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", c.Mode, err)
	}
	return res, nil
}

var seq atomic.Int64

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// errCount collects the first of many asynchronous errors.
type errCount struct {
	n     atomic.Int64
	first atomic.Value
}

func (e *errCount) add(err error) {
	if e.n.Add(1) == 1 {
		e.first.Store(err)
	}
}

func (e *errCount) err() error {
	if n := e.n.Load(); n > 0 {
		return fmt.Errorf("%d records failed, first: %w", n, e.first.Load().(error))
	}
	return nil
}

var errNoRecords = errors.New("no records produced: raise --records or --duration")

// freeAddr returns a loopback address with a port free right now.
// pickClusterAddr picks a node's cluster address: freeAddr, or a test's stand-in.
var pickClusterAddr = freeAddr

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
