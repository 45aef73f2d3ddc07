package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/bridge"
	"github.com/qxd-io/qxd/server/httpapi"
)

// defaultKafkaListen is where 'qxd server' takes Kafka clients unless told otherwise.
const defaultKafkaListen = "127.0.0.1:9092"

// closeTimeout bounds a node's shutdown after SIGINT or SIGTERM.
const closeTimeout = 15 * time.Second

func (a *app) serverCommand() *cli.Command {
	def := server.DefaultConfig()
	return &cli.Command{
		Name:  "server",
		Usage: "run a qxd node until SIGINT or SIGTERM",
		Description: "Starts a qxd node: an embedded NATS server with JetStream storing its data in\n" +
			"--data, and the qxd services (topic admin, partition writers, group coordinator).\n" +
			"Clients connect to --listen. With --cluster-listen and --peers the node forms or\n" +
			"joins a cluster; it is ready once a majority of the nodes are up. The node stops\n" +
			"cleanly on SIGINT (Ctrl-C) or SIGTERM.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: def.Listen, EnvVars: []string{"QXD_LISTEN"},
				Usage: "NATS client address `HOST:PORT`; port 0 picks a free port"},
			&cli.StringFlag{Name: "data", Value: def.DataDir, EnvVars: []string{"QXD_DATA"},
				Usage: "`DIR` that holds the node's data; created if missing"},
			&cli.StringFlag{Name: "name", EnvVars: []string{"QXD_NAME"}, DefaultText: "the host name",
				Usage: "node `NAME`, unique in a cluster"},
			&cli.StringFlag{Name: "cluster-name", EnvVars: []string{"QXD_CLUSTER_NAME"}, DefaultText: "qxd",
				Usage: "cluster `NAME`, the same on every node of a cluster"},
			&cli.StringFlag{Name: "cluster-listen", EnvVars: []string{"QXD_CLUSTER_LISTEN"},
				Usage: "address `HOST:PORT` other nodes route to (port defaults to 6222); unset: a single node"},
			&cli.StringFlag{Name: "sync", Value: server.FormatSync(def.Sync), EnvVars: []string{"QXD_SYNC"},
				Usage: "when appends reach the disk, `MODE`: always (each is synced before it is acknowledged) or an interval such as 1s or 2m (synced in the background; a power failure can lose that much acknowledged data)"},
			&cli.StringFlag{Name: "peers", EnvVars: []string{"QXD_PEERS"},
				Usage: "comma-separated cluster `URLS` of the nodes (nats://h1:6222,nats://h2:6222); this node may be listed"},
			&cli.BoolFlag{Name: "auto-leader-rebalance", Value: def.AutoLeaderRebalance, EnvVars: []string{"QXD_AUTO_LEADER_REBALANCE"},
				Usage: "move partition leaderships back to their spread once a node that stopped is back and caught up, and keep the offsets and transactions buckets led from the node that leads the groups bucket (=false: only 'qxd topic rebalance' moves them)"},
			&cli.BoolFlag{Name: "auto-repair", Value: def.AutoRepair, EnvVars: []string{"QXD_AUTO_REPAIR"},
				Usage: "rebuild a replicated partition's damaged copy from its intact ones, and scale a partition left short of replicas back up, without being asked (=false: only 'qxd topic repair' does)"},
			&cli.DurationFlag{Name: "auto-repair-delay", Value: def.AutoRepairDelay, EnvVars: []string{"QXD_AUTO_REPAIR_DELAY"},
				Usage: "how long damage or a missing replica must have been seen before an automatic repair starts (`DURATION`)"},
			&cli.BoolFlag{Name: "scrub", Value: def.Scrub, EnvVars: []string{"QXD_SCRUB"},
				Usage: "read the node's own copy of every partition back in the background and record what fails its checks as damaged, so that --auto-repair rebuilds a damaged copy nobody reads (=false: only reads and 'qxd topic describe --verify-replicas' find damage)"},
			&cli.StringFlag{Name: "scrub-interval", Value: strings.TrimSuffix(strings.TrimSuffix(def.ScrubInterval.String(), "0s"), "0m"), EnvVars: []string{"QXD_SCRUB_INTERVAL"},
				Usage: "`DURATION` of one scrub pass over the node's copies: the scrub spreads its reads of the bytes the node stores over it; 0 turns the scrub off"},
			&cli.StringFlag{Name: "scrub-rate", Value: "0", EnvVars: []string{"QXD_SCRUB_RATE"},
				Usage: "most `BYTES` a second the scrub reads (8MiB, 512KiB), whatever pace --scrub-interval asks for: a pass over more than rate × interval then outlasts the interval; 0 sets no cap"},
			&cli.StringFlag{Name: "http-listen", Value: def.HTTPListen, EnvVars: []string{"QXD_HTTP_LISTEN"},
				Usage: "address `HOST:PORT` of the HTTP port: Prometheus metrics at /metrics, probes at /healthz and /readyz, the console at /; \"\" serves none (TLS and users as the node's, or the config file's http block)"},
			&cli.IntFlag{Name: "http-max-partition-series", EnvVars: []string{"QXD_HTTP_MAX_PARTITION_SERIES"}, DefaultText: "5000",
				Usage: "partitions (and group partitions) whose metrics get series of their own; the rest share series labelled (other) (`N`)"},
			&cli.StringFlag{Name: "kafka-listen", Value: defaultKafkaListen, EnvVars: []string{"QXD_KAFKA_LISTEN"},
				Usage: "Kafka wire protocol address `HOST:PORT` (any Kafka client connects here); empty turns it off"},
			&cli.StringFlag{Name: "kafka-advertise", EnvVars: []string{"QXD_KAFKA_ADVERTISE"}, DefaultText: "the --kafka-listen address",
				Usage: "address `HOST:PORT` Kafka clients are told to connect to for this node"},
			&cli.StringFlag{Name: "kafka-fetch-session-slots", Value: strconv.Itoa(def.KafkaFetchSessionSlots), EnvVars: []string{"QXD_KAFKA_FETCH_SESSION_SLOTS"},
				Usage: "fetch sessions (KIP-227) the Kafka listener keeps for its clients, Kafka's max.incremental.fetch.session.cache.slots (`N`); 0 keeps none: every fetch is sessionless"},
			&cli.StringFlag{Name: "kafka-fetch-session-eviction", Value: def.KafkaFetchSessionEviction.String(), EnvVars: []string{"QXD_KAFKA_FETCH_SESSION_EVICTION"},
				Usage: "how long a Kafka fetch session is safe from eviction after it is made and after each use, Kafka's min.incremental.fetch.session.eviction.ms (`DURATION`); when the slots are full a new session takes the place of one unused this long"},
			&cli.StringFlag{Name: "kafka-fetch-max-bytes", Value: "2MiB", EnvVars: []string{"QXD_KAFKA_FETCH_MAX_BYTES"},
				Usage: "most record batches one Kafka fetch answer carries (`BYTES`: 2MiB, 512KiB), Kafka's broker fetch.max.bytes, shared among the fetch's partitions (each still gets its first batch); below Kafka's 55MiB because a client reads each answer into a buffer of its size"},
			&cli.BoolFlag{Name: "nats-debug", EnvVars: []string{"QXD_NATS_DEBUG"},
				Usage: "log the embedded NATS server's debug lines, RAFT's elections among them (votes asked, granted and refused, terms, leaders elected), at --log-level debug"},
			&cli.StringFlag{Name: "producer-id-expiration", Value: strings.TrimSuffix(strings.TrimSuffix(server.DefaultProducerIDExpiration.String(), "0s"), "0m"), EnvVars: []string{"QXD_PRODUCER_ID_EXPIRATION"},
				Usage: "how long a partition's writer remembers an idempotent producer after its last write to the partition, Kafka's producer.id.expiration.ms (`DURATION`); the producer's next batch after that is refused UNKNOWN_PRODUCER_ID unless it starts over at sequence 0 (an open transaction keeps its producer)"},
			&cli.DurationFlag{Name: "leader-imbalance-check-interval", Value: def.LeaderImbalanceCheckInterval, EnvVars: []string{"QXD_LEADER_IMBALANCE_CHECK_INTERVAL"},
				Usage: "how often the cluster checks the spread of partition leaders (`DURATION`)"},
		}, serverConfigFlags()...),
		Action: a.runServer,
	}
}

func (a *app) runServer(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("server takes no arguments, got %q: use --listen, --data and --name", c.Args().Slice())
	}
	cfg, err := serverConfig(c)
	if err != nil {
		return err
	}
	def := server.DefaultConfig()
	// Over the config file only when given (serverConfig applies the others).
	if c.IsSet("auto-leader-rebalance") || c.String("config") == "" {
		cfg.AutoLeaderRebalance = c.Bool("auto-leader-rebalance")
	}
	if c.IsSet("leader-imbalance-check-interval") || c.String("config") == "" {
		cfg.LeaderImbalanceCheckInterval = c.Duration("leader-imbalance-check-interval")
	}
	if c.IsSet("auto-repair") || c.String("config") == "" {
		cfg.AutoRepair = c.Bool("auto-repair")
	}
	if c.IsSet("auto-repair-delay") || c.String("config") == "" {
		cfg.AutoRepairDelay = c.Duration("auto-repair-delay")
	}
	if c.IsSet("scrub") || c.String("config") == "" {
		cfg.Scrub = c.Bool("scrub")
	}
	if c.IsSet("scrub-interval") || c.String("config") == "" {
		v := c.String("scrub-interval")
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("--scrub-interval %q is not a duration: give one such as 24h or 6h, or 0 to turn the scrub off (default %v)", v, def.ScrubInterval)
		}
		cfg.ScrubInterval = d
	}
	if c.IsSet("scrub-rate") || c.String("config") == "" {
		n, err := server.ParseScrubRate(c.String("scrub-rate"))
		if err != nil {
			return fmt.Errorf("--scrub-rate %w", err)
		}
		cfg.ScrubRate = n
	}
	if c.IsSet("sync") || c.String("config") == "" {
		d, err := server.ParseSync(c.String("sync"))
		if err != nil {
			return fmt.Errorf("--sync %w", err)
		}
		cfg.Sync = d
	}
	if c.IsSet("http-listen") || c.String("config") == "" {
		cfg.HTTPListen = c.String("http-listen")
	}
	if c.IsSet("http-max-partition-series") {
		cfg.HTTPMaxPartitionSeries = c.Int("http-max-partition-series")
	}
	if c.IsSet("kafka-listen") || c.String("config") == "" {
		cfg.KafkaListen = c.String("kafka-listen")
	}
	if c.IsSet("kafka-advertise") || c.String("config") == "" {
		cfg.KafkaAdvertise = c.String("kafka-advertise")
	}
	if c.IsSet("kafka-fetch-session-slots") {
		v := c.String("kafka-fetch-session-slots")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return fmt.Errorf("--kafka-fetch-session-slots %q is not a number of sessions: give 0 (no fetch sessions) or more, such as %d", v, def.KafkaFetchSessionSlots)
		}
		cfg.KafkaFetchSessionSlots = n
	}
	if c.IsSet("kafka-fetch-session-eviction") {
		v := c.String("kafka-fetch-session-eviction")
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("--kafka-fetch-session-eviction %q is not a positive duration: give one such as 2m or 30s (default %v)", v, def.KafkaFetchSessionEviction)
		}
		cfg.KafkaFetchSessionEviction = d
	}
	if c.IsSet("kafka-fetch-max-bytes") {
		v := c.String("kafka-fetch-max-bytes")
		n, err := semantics.ParseSize(strings.TrimSpace(v), false)
		if err != nil || n <= 0 || n > math.MaxInt32 {
			return fmt.Errorf("--kafka-fetch-max-bytes %q is not a size above 0: give one such as 2MiB (the default) or 512KiB", v)
		}
		cfg.KafkaFetchMaxBytes = int(n)
	}
	if c.IsSet("producer-id-expiration") {
		v := c.String("producer-id-expiration")
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("--producer-id-expiration %q is not a positive duration: give one such as 24h (the default) or 30m", v)
		}
		cfg.ProducerIDExpiration = d
	}
	cfg.Logger = a.log
	cfg.NATSDebug = c.Bool("nats-debug")
	cfg.Services = append(cfg.Services, bridge.Service{})
	if cfg.HTTPListen != "" {
		cfg.Services = append(cfg.Services, httpapi.ForConfig(cfg))
	}
	node, err := server.Start(c.Context, cfg)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	fmt.Fprintf(a.stdout, "qxd node %s listening on %s (data in %s, sync %s)\n", node.Name(), node.ClientURL(), dir, server.FormatSync(cfg.Sync))
	<-c.Context.Done()
	a.log.Info("stopping node", "node", node.Name())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), closeTimeout)
	defer cancel()
	if err := node.Close(ctx); err != nil {
		return fmt.Errorf("stop node %s: %w", node.Name(), err)
	}
	fmt.Fprintf(a.stdout, "qxd node %s stopped\n", node.Name())
	return nil
}
