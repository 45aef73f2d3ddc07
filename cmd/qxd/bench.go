package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/bench"
	"github.com/qxd-io/qxd/server"
)

func (a *app) benchCommand() *cli.Command {
	var subs []*cli.Command
	usage := map[bench.Mode]string{
		bench.ModeProduce: "produce keyed records as fast as possible (or at --rate); latency is produce to ack",
		bench.ModeConsume: "store records, then time reading them with consumers assigned the partitions",
		bench.ModeGroup:   "store records, then time reading them with the members of one group (auto-commit)",
		bench.ModeE2E:     "produce at --rate while consuming; latency is produce to consume per record",
	}
	for _, m := range bench.Modes {
		flags := benchFlags()
		if m == bench.ModeProduce {
			flags = append(flags, benchTxnFlags()...)
		}
		subs = append(subs, &cli.Command{
			Name:   string(m),
			Usage:  usage[m],
			Flags:  flags,
			Action: func(c *cli.Context) error { return a.bench(c, m) },
		})
	}
	return &cli.Command{
		Name:  "bench",
		Usage: "measure throughput and latency, optionally against raw JetStream in the same run",
		Description: "Without --server (or QXD_SERVER) it starts an embedded node in a temporary\n" +
			"directory (three nodes for --replicas 3) and removes it afterwards. It prints a\n" +
			"progress line on stderr every second and a summary on stdout. --compare-raw also\n" +
			"runs raw JetStream doing the same work on the same node(s), so in the same sync\n" +
			"mode: per-record PublishAsync into one stream per partition with the same window,\n" +
			"ordered and pull consumers, and prints qxd ÷ raw. The summary names the nodes'\n" +
			"sync mode (embedded nodes take --sync; default always: every append on disk\n" +
			"before it is acknowledged).\n" +
			"produce --transactional also runs transactional producers after the plain\n" +
			"idempotent ones, committing every --txn-interval (default 100ms) or --txn-records\n" +
			"records, and prints transactional ÷ plain and the commits' latency.\n" +
			"Unless --warmup=false, it first runs the workload once untimed, both sides, so the\n" +
			"new process's start is not timed; produce runs also send one record to every\n" +
			"partition (and raw stream) before the clock starts.",
		Action:      groupAction,
		Subcommands: subs,
	}
}

func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "records", Aliases: []string{"n"}, EnvVars: []string{"QXD_BENCH_RECORDS"},
			DefaultText: "256 MiB of values, at most 500000; 10000 for e2e", Usage: "produce `N` records (consume modes store them first)"},
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, EnvVars: []string{"QXD_BENCH_DURATION"},
			Usage: "produce for `DURATION` instead of a number of records"},
		&cli.StringFlag{Name: "size", Value: "100", EnvVars: []string{"QXD_BENCH_SIZE"},
			Usage: "value `SIZE` of each record: bytes, or with a suffix such as 1KiB"},
		&cli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: 8, EnvVars: []string{"QXD_BENCH_PARTITIONS"},
			Usage: "partitions `P` of the bench topic (and raw streams)"},
		&cli.IntFlag{Name: "replicas", Aliases: []string{"r"}, Value: 1, EnvVars: []string{"QXD_BENCH_REPLICAS"},
			Usage: "`R` replicas per partition; 3 starts a 3-node embedded cluster without --server"},
		&cli.IntFlag{Name: "producers", Value: 1, EnvVars: []string{"QXD_BENCH_PRODUCERS"},
			Usage: "`N` concurrent producers sharing the records and the rate"},
		&cli.IntFlag{Name: "consumers", Value: 1, EnvVars: []string{"QXD_BENCH_CONSUMERS"},
			Usage: "`N` consumers splitting the partitions, or group members"},
		&cli.IntFlag{Name: "rate", EnvVars: []string{"QXD_BENCH_RATE"}, DefaultText: "unlimited, 5000 for e2e",
			Usage: "produce `R` records per second in total, for latency at a fixed rate"},
		&cli.StringFlag{Name: "acks", Value: "all", EnvVars: []string{"QXD_BENCH_ACKS"},
			Usage: "acknowledgement `LEVEL`: all, leader or none"},
		&cli.DurationFlag{Name: "linger", Value: qxd.DefaultLinger, EnvVars: []string{"QXD_BENCH_LINGER"},
			Usage: "wait up to `DURATION` for more records before sending a batch (0 sends at once)"},
		&cli.StringFlag{Name: "batch-size", Value: "256KiB", EnvVars: []string{"QXD_BENCH_BATCH_SIZE"},
			Usage: "largest batch `SIZE` before compression (batch.size)"},
		&cli.StringFlag{Name: "compression", Aliases: []string{"z"}, Value: "none", EnvVars: []string{"QXD_BENCH_COMPRESSION"},
			Usage: "compress batches with `CODEC`: none, gzip, snappy, lz4 or zstd"},
		&cli.StringFlag{Name: "topic", DefaultText: "a new topic, deleted afterwards",
			Usage: "use topic `NAME` (created if missing, kept afterwards)"},
		&cli.StringFlag{Name: "sync", Value: "always", EnvVars: []string{"QXD_BENCH_SYNC"},
			Usage: "embedded nodes' sync `MODE`, as 'qxd server --sync': always or an interval such as 2m (not with --server)"},
		&cli.StringFlag{Name: "kafka-fetch-max-bytes", EnvVars: []string{"QXD_BENCH_KAFKA_FETCH_MAX_BYTES"}, DefaultText: "the node's default, 2MiB",
			Usage: "embedded nodes' bound on a Kafka fetch answer, `SIZE`, as 'qxd server --kafka-fetch-max-bytes' (not with --server)"},
		&cli.BoolFlag{Name: "compare-raw", EnvVars: []string{"QXD_BENCH_COMPARE_RAW"},
			Usage: "also run the raw JetStream equivalent and print qxd ÷ raw"},
		&cli.BoolFlag{Name: "compare-kafka", EnvVars: []string{"QXD_BENCH_COMPARE_KAFKA"},
			Usage: "also run the workload with a Kafka client (franz-go) through the nodes' Kafka listeners, and print kafka ÷ qxd and kafka ÷ raw (produce and consume)"},
		&cli.StringFlag{Name: "kafka-brokers", EnvVars: []string{"QXD_BENCH_KAFKA_BROKERS"},
			Usage: "with --server and --compare-kafka: the nodes' Kafka listener `HOST:PORT`s, comma separated"},
		&cli.BoolFlag{Name: "warmup", Value: true, EnvVars: []string{"QXD_BENCH_WARMUP"},
			Usage: "first run the workload once, untimed, on both sides (--warmup=false to skip)"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of the summary"},
		&cli.StringFlag{Name: "chart", Usage: "write an SVG chart (throughput over time, latency histogram) to `FILE`"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines on stderr"},
	}
}

// benchTxnFlags are produce's flags for transactional runs.
func benchTxnFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "transactional", EnvVars: []string{"QXD_BENCH_TRANSACTIONAL"},
			Usage: "also produce with transactional producers, after the plain idempotent ones, and print transactional ÷ plain and the commits' latency"},
		&cli.DurationFlag{Name: "txn-interval", EnvVars: []string{"QXD_BENCH_TXN_INTERVAL"},
			DefaultText: "100ms unless --txn-records is set",
			Usage:       "with --transactional: commit each transaction once it is `DURATION` old"},
		&cli.IntFlag{Name: "txn-records", EnvVars: []string{"QXD_BENCH_TXN_RECORDS"},
			Usage: "with --transactional: commit each transaction once it holds `N` records (with --txn-interval, whichever comes first)"},
	}
}

// benchTxnConfig reads the transactional flags of produce into cfg.
func benchTxnConfig(c *cli.Context, cfg *bench.Config) error {
	if c.Command.Name != string(bench.ModeProduce) {
		return nil
	}
	cfg.Transactional = c.Bool("transactional")
	cfg.TxnInterval, cfg.TxnRecords = c.Duration("txn-interval"), c.Int("txn-records")
	for _, f := range []string{"txn-interval", "txn-records"} {
		if c.IsSet(f) && !cfg.Transactional {
			return fmt.Errorf("--%s applies to transactional runs: add --transactional", f)
		}
	}
	if c.IsSet("txn-interval") && cfg.TxnInterval <= 0 {
		return fmt.Errorf("--txn-interval %v is not valid: use a positive duration such as 100ms", cfg.TxnInterval)
	}
	if c.IsSet("txn-records") && cfg.TxnRecords <= 0 {
		return fmt.Errorf("--txn-records %d is not valid: use 1 or more", cfg.TxnRecords)
	}
	if cfg.Transactional && cfg.Acks != "all" {
		return fmt.Errorf("--acks %s with --transactional: transactional producers need acks all (drop --acks)", cfg.Acks)
	}
	return nil
}

// benchConfig reads the bench flags.
func benchConfig(c *cli.Context, mode bench.Mode) (bench.Config, error) {
	cfg := bench.Config{Mode: mode, Records: c.Int("records"), Duration: c.Duration("duration"),
		Producers: c.Int("producers"), Consumers: c.Int("consumers"), Rate: c.Int("rate"), Topic: c.String("topic"),
		CompareRaw: c.Bool("compare-raw"), CompareKafka: c.Bool("compare-kafka"), Warmup: c.Bool("warmup")}
	if c.Args().Present() {
		return cfg, fmt.Errorf("qxd bench %s takes no arguments, got %q: give settings as flags", mode, c.Args().First())
	}
	if cfg.CompareKafka && mode != bench.ModeProduce && mode != bench.ModeConsume {
		return cfg, fmt.Errorf("--compare-kafka runs in produce and consume modes, not %s", mode)
	}
	if c.IsSet("records") && c.IsSet("duration") {
		return cfg, fmt.Errorf("--records and --duration both set: give one")
	}
	if cfg.Records < 0 || (c.IsSet("records") && cfg.Records == 0) {
		return cfg, fmt.Errorf("--records %d is not valid: use 1 or more", cfg.Records)
	}
	if cfg.Duration < 0 || (c.IsSet("duration") && cfg.Duration == 0) {
		return cfg, fmt.Errorf("--duration %v is not valid: use e.g. 10s", cfg.Duration)
	}
	size, err := parseSize("size", c.String("size"), false)
	if err != nil {
		return cfg, err
	}
	if size < 1 || size > 8<<20 || (mode == bench.ModeE2E && size < 8) {
		return cfg, fmt.Errorf("--size %s is out of range: use 1 byte (8 for e2e) to 8MiB", c.String("size"))
	}
	cfg.Size = int(size)
	p := c.Int("partitions")
	if p < 1 || p > 100000 {
		return cfg, fmt.Errorf("--partitions %d is out of range: use 1 or more", p)
	}
	cfg.Partitions = int32(p)
	cfg.Replicas = c.Int("replicas")
	if cfg.Replicas != 1 && cfg.Replicas != 3 && cfg.Replicas != 5 {
		return cfg, fmt.Errorf("--replicas %d is not valid: use 1, 3 or 5", cfg.Replicas)
	}
	for _, f := range []string{"producers", "consumers"} {
		if c.Int(f) < 1 {
			return cfg, fmt.Errorf("--%s %d is not valid: use 1 or more", f, c.Int(f))
		}
	}
	if cfg.Rate < 0 {
		return cfg, fmt.Errorf("--rate %d is negative: use 0 for as fast as possible", cfg.Rate)
	}
	acks := strings.ToLower(c.String("acks"))
	if _, err := qxd.ParseAcks(acks); err != nil {
		return cfg, fmt.Errorf("--acks %q is not valid: use all, leader or none", c.String("acks"))
	}
	cfg.Acks = acks
	switch l := c.Duration("linger"); {
	case l < 0:
		return cfg, fmt.Errorf("--linger %v is negative: use 0 to send at once, or e.g. 5ms", l)
	case l == 0:
		cfg.Linger = -1 // bench.Config: negative is 0, zero the default
	default:
		cfg.Linger = l
	}
	bs, err := parseSize("batch-size", c.String("batch-size"), false)
	if err != nil {
		return cfg, err
	}
	if bs < 1024 || bs > 64<<20 {
		return cfg, fmt.Errorf("--batch-size %s is out of range: use 1KiB to 64MiB", c.String("batch-size"))
	}
	cfg.BatchBytes = int(bs)
	if cfg.Compression, err = qxd.ParseCompression(c.String("compression")); err != nil {
		return cfg, fmt.Errorf("--compression %q is not valid: use none, gzip, snappy, lz4 or zstd", c.String("compression"))
	}
	if err := benchTxnConfig(c, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func (a *app) bench(c *cli.Context, mode bench.Mode) error {
	cfg, err := benchConfig(c, mode)
	if err != nil {
		return err
	}
	ctx := c.Context
	var env *bench.Env
	sync, err := server.ParseSync(c.String("sync"))
	if err != nil {
		return fmt.Errorf("--sync %w", err)
	}
	if c.IsSet("server") && c.IsSet("sync") {
		return fmt.Errorf("--sync applies to embedded nodes only: the nodes at --server run with their own --sync (drop one of them)")
	}
	envOpts := []bench.EnvOption{bench.WithSync(sync)}
	if c.IsSet("kafka-fetch-max-bytes") {
		n, err := parseSize("kafka-fetch-max-bytes", c.String("kafka-fetch-max-bytes"), false)
		if err != nil {
			return err
		}
		if n <= 0 || n > 1<<30 {
			return fmt.Errorf("--kafka-fetch-max-bytes %s is out of range: use a size from 1 byte to 1GiB, such as 1MiB", c.String("kafka-fetch-max-bytes"))
		}
		if c.IsSet("server") {
			return fmt.Errorf("--kafka-fetch-max-bytes applies to embedded nodes only: the nodes at --server run with their own --kafka-fetch-max-bytes (drop one of them)")
		}
		envOpts = append(envOpts, bench.WithKafkaFetchMaxBytes(int(n)))
	}
	if c.IsSet("server") {
		env, err = bench.Connect(ctx, c.String("server"))
		if err != nil {
			return fmt.Errorf("bench: %w; check --server or QXD_SERVER, or leave both unset to start an embedded node", err)
		}
		for _, b := range strings.Split(c.String("kafka-brokers"), ",") {
			if b = strings.TrimSpace(b); b != "" {
				env.KafkaAddrs = append(env.KafkaAddrs, b)
			}
		}
		if cfg.CompareKafka && len(env.KafkaAddrs) == 0 {
			env.Close()
			return fmt.Errorf("--compare-kafka with --server needs --kafka-brokers: the nodes' Kafka listener addresses (qxd cluster info shows them)")
		}
	} else {
		nodes := 1
		if cfg.Replicas > 1 {
			nodes = cfg.Replicas
		}
		a.log.Info("starting embedded nodes for the benchmark", "nodes", nodes)
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		env, err = bench.NewClusterEnv(sctx, nodes, envOpts...)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: start an embedded node: %w", err)
		}
	}
	defer env.Close()
	if !c.Bool("quiet") {
		cfg.Progress = func(p bench.Progress) { fmt.Fprintln(a.stderr, bench.FormatProgress(p)) }
	}
	res, err := bench.Run(ctx, env, cfg)
	if err != nil {
		return fmt.Errorf("bench %s: %w", mode, err)
	}
	if f := c.String("chart"); f != "" {
		if err := writeChart(f, res); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(a.stdout)
		return enc.Encode(res.Summary())
	}
	res.WriteText(a.stdout)
	if f := c.String("chart"); f != "" {
		fmt.Fprintf(a.stdout, "chart written to %s\n", f)
	}
	return nil
}

func writeChart(name string, res *bench.Result) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("--chart: %w", err)
	}
	if err := res.WriteSVG(f); err != nil {
		f.Close()
		return fmt.Errorf("--chart %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--chart %s: %w", name, err)
	}
	return nil
}
