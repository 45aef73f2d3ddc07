package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// Config is a node's configuration. Start from DefaultConfig.
type Config struct {
	// Name is the node's name, unique in a cluster. Default: the host name.
	Name string
	// Listen is the NATS client address, host:port. Port 0 picks a free port (for
	// tests). Default 127.0.0.1:4222.
	Listen string
	// DataDir holds JetStream's store. Default ./qxd-data.
	DataDir string
	// ClusterName names the cluster; every node of it uses the same. Default "qxd"
	// when ClusterListen is set.
	ClusterName string
	// ClusterListen is the address other nodes' routes connect to, host:port (port
	// 0 picks a free port, for tests). Empty: a single node. A host without a port
	// uses 6222.
	ClusterListen string
	// Peers are the other nodes' cluster addresses (nats://host:6222); a node may list
	// itself. A cluster of N nodes needs a majority of them up to elect leaders.
	Peers []string
	// MaxPayload is the largest NATS message the node accepts; it must fit the
	// largest record batch a topic may allow. Default 8 MiB + 64 KiB.
	MaxPayload int32
	// MaxPending is how many bytes the node buffers for one client before it cuts the
	// client off as a slow consumer. Default 256 MiB, room for consumers that fetch
	// many partitions ahead (a client's consumers fetch at most 64 MiB ahead
	// together by default, qxd.ClientFetchMaxBytes); at least MaxPayload.
	MaxPending int64
	// GroupInitialRebalanceDelay is how long an empty consumer group waits for more
	// members before its first generation. Default 300ms (the coordinator's default).
	GroupInitialRebalanceDelay time.Duration
	// AutoLeaderRebalance moves partition leaderships back to their spread once a
	// node that stopped is back and caught up (Kafka's auto.leader.rebalance.enable),
	// and keeps the offsets and transactions buckets led from the node that leads
	// the groups bucket, where the coordinators run. Default true. 'qxd topic
	// rebalance' moves partition leaderships on request either way.
	AutoLeaderRebalance bool
	// LeaderImbalanceCheckInterval is how often the cluster's meta leader checks the
	// spread of partition leaders (Kafka's leader.imbalance.check.interval.seconds);
	// a node takes leaderships back once it was seen under its share at two checks
	// in a row. Default 1m.
	LeaderImbalanceCheckInterval time.Duration
	// AutoRepair rebuilds a replicated partition's damaged copy without being asked
	// (as 'qxd topic repair' does) once reads or verifies recorded damage on one
	// node's copy and the partition's other copies read back intact, and scales a
	// partition stream back to its topic's replication factor when an interrupted
	// repair or a failed scale-up left it with fewer replicas. The cluster's meta
	// leader does both, AutoRepairDelay after it first sees the need. A partition with
	// one replica is never touched. Default true.
	AutoRepair bool
	// AutoRepairDelay is how long the damage or the missing replica must have been
	// seen before an automatic repair starts; a repair that failed is tried again
	// ten delays later. Default 30s.
	AutoRepairDelay time.Duration
	// Scrub reads every partition copy this node stores back in the background,
	// slowly, and records what it finds damaged (a batch that fails its CRC-32C,
	// stream sequences its store no longer returns) as a read would, so that a
	// damaged copy nobody reads is found and, with AutoRepair, rebuilt. Each node
	// reads its own copies, from its own store. Default true.
	Scrub bool
	// ScrubInterval is how long one scrub pass over all the node's copies takes:
	// the scrub reads at the bytes the node stores divided by it, and a pass begins
	// at most once an interval. 0 turns the scrub off; at least 1s otherwise.
	// Default 24h.
	ScrubInterval time.Duration
	// ScrubRate caps the scrub's reads, in bytes of batches a second, whatever
	// pace ScrubInterval asks for: a pass over more than ScrubRate × ScrubInterval
	// bytes then takes longer than the interval (and the next begins when it
	// ends). 0, the default, sets no cap.
	ScrubRate int64
	// Sync is when JetStream's store is synced to disk (fsync). SyncAlways, the
	// default (0), syncs every append before it is acknowledged: a record a producer
	// saw acknowledged survives a power failure (on a quorum of its replicas).
	// A positive interval syncs in the background that often and acknowledges at
	// once: a power failure of the node (of a quorum of a partition's replicas) can
	// lose up to that interval of acknowledged records, committed offsets and
	// metadata. docs/operations.md, "Durability", says what each mode covers.
	Sync time.Duration
	// ShutdownTimeout bounds a graceful shutdown. Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives the node's logs, NATS server logs included. Default: discard.
	Logger *slog.Logger
	// NATSDebug passes the NATS server's debug logs to Logger.
	NATSDebug bool
	// Auth turns on client authentication and per-topic permissions. Zero: none,
	// every client may do anything. See docs/security.md.
	Auth AuthConfig
	// TLS turns on TLS for client connections; with Verify, clients must present a
	// certificate (mutual TLS). Zero: plain text.
	TLS TLSConfig
	// ClusterTLS turns on TLS for the routes between nodes; nodes verify each other
	// against its CA. Zero: plain text.
	ClusterTLS TLSConfig
	// HTTPListen is the address of the node's HTTP port (Prometheus metrics, health
	// probes), HOST:PORT; "" serves none. The node does not serve it itself: its
	// embedder adds server/httpapi's Service on it, as qxd server does. Default
	// 127.0.0.1:9644.
	HTTPListen string
	// HTTPTLS turns on TLS for the HTTP port with keys of its own. Zero: the HTTP
	// port uses TLS when the node's client port does, with the same keys (TLS).
	HTTPTLS TLSConfig
	// HTTPMaxPartitionSeries bounds the partitions (and group partitions) the HTTP
	// port's metrics give series of their own; the rest share one. 0: its default.
	HTTPMaxPartitionSeries int
	// KafkaListen is the address of the Kafka wire protocol listener, host:port
	// (port 0 picks a free port). Empty: no Kafka listener. Default empty; 'qxd
	// server' listens on 127.0.0.1:9092 unless told otherwise. See docs/kafka.md.
	KafkaListen string
	// KafkaAdvertise is the host:port Kafka clients are told to connect to for this
	// node (Kafka's advertised.listeners). Default: the address KafkaListen bound.
	KafkaAdvertise string
	// KafkaFetchSessionSlots bounds the fetch sessions (KIP-227) the Kafka
	// listener keeps for its clients (Kafka's
	// max.incremental.fetch.session.cache.slots); 0 keeps none: every fetch is
	// sessionless, as on a Kafka broker with 0 slots. Default 1000.
	KafkaFetchSessionSlots int
	// KafkaFetchSessionEviction is how long a fetch session of the Kafka
	// listener is safe from eviction after it is made and after each use
	// (Kafka's min.incremental.fetch.session.eviction.ms): a new session takes
	// the place of one left unused this long when the slots are full. 0: the
	// default, 2m.
	KafkaFetchSessionEviction time.Duration
	// KafkaFetchMaxBytes bounds the record batches one fetch answer of the
	// Kafka listener carries (Kafka's broker setting fetch.max.bytes), shared
	// among the fetch's partitions; each partition still gets its first batch.
	// Default kafka.DefaultFetchMaxBytes (2 MiB; see docs/kafka.md).
	KafkaFetchMaxBytes int
	// ProducerIDExpiration is how long a partition's writer remembers an
	// idempotent producer after its last write to the partition (Kafka's
	// producer.id.expiration.ms); an open transaction keeps its producer. A
	// producer's batch after that is refused UNKNOWN_PRODUCER_ID unless it begins
	// at sequence 0, and the SDK's producer starts over at sequence 0 (under a new
	// producer id unless it is transactional). 'qxd server --producer-id-expiration',
	// config file key producer_id_expiration. 0: the default, 24h.
	ProducerIDExpiration time.Duration
	// Services are the parts the embedder adds to the node (cmd/qxd adds
	// bridge.Service); each starts on every node once the node's own services are up.
	// None by default. A configuration file does not set them.
	Services []Service
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Name:            "",
		Listen:          "127.0.0.1:4222",
		DataDir:         "./qxd-data",
		MaxPayload:      semantics.MaxMessageBytesLimit + 64<<10,
		MaxPending:      256 << 20,
		ShutdownTimeout: 10 * time.Second,
		HTTPListen:      DefaultHTTPListen,

		KafkaFetchSessionSlots:    kafka.DefaultFetchSessionSlots,
		KafkaFetchSessionEviction: kafka.DefaultFetchSessionEviction,
		KafkaFetchMaxBytes:        kafka.DefaultFetchMaxBytes,

		AutoLeaderRebalance:          true,
		LeaderImbalanceCheckInterval: time.Minute,
		AutoRepair:                   true,
		AutoRepairDelay:              30 * time.Second,
		Scrub:                        true,
		ScrubInterval:                24 * time.Hour,
	}
}

// Validate reports the first invalid field, naming it and what to do.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data dir is empty: set --data to a writable directory")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q is not host:port: %v", c.Listen, err)
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("listen address %q has port %q: use a number from 0 to 65535", c.Listen, port)
	}
	if c.HTTPListen != "" {
		_, port, err := net.SplitHostPort(c.HTTPListen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return fmt.Errorf("http listen address %q is not HOST:PORT with a port from 0 to 65535: use such as 127.0.0.1:9644, or \"\" to serve no HTTP", c.HTTPListen)
		}
	}
	for _, a := range []struct{ name, addr string }{{"kafka listen", c.KafkaListen}, {"kafka advertise", c.KafkaAdvertise}} {
		if a.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s address %q is not host:port: %v", a.name, a.addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s address %q has port %q: use a number from 0 to 65535", a.name, a.addr, port)
		}
	}
	if c.KafkaFetchSessionSlots < 0 {
		return fmt.Errorf("kafka fetch session slots %d is negative: give 0 (no sessions) or more (default %d)", c.KafkaFetchSessionSlots, kafka.DefaultFetchSessionSlots)
	}
	if c.KafkaFetchMaxBytes < 0 {
		return fmt.Errorf("kafka fetch max bytes %d is negative: give a size such as 2MiB (the default) or 0 for the default", c.KafkaFetchMaxBytes)
	}
	if c.ProducerIDExpiration < 0 {
		return fmt.Errorf("producer id expiration %v is negative: give a positive duration such as 24h (the default)", c.ProducerIDExpiration)
	}
	if c.KafkaFetchSessionEviction < 0 {
		return fmt.Errorf("kafka fetch session eviction %v is negative: give a positive duration such as 2m (default %v)", c.KafkaFetchSessionEviction, kafka.DefaultFetchSessionEviction)
	}
	if c.ClusterListen == "" && len(c.Peers) > 0 {
		return errors.New("peers are set without a cluster address: set --cluster-listen too")
	}
	if c.ClusterListen != "" {
		if _, err := c.clusterAddr(); err != nil {
			return err
		}
		for _, p := range c.Peers {
			u, err := url.Parse(p)
			if err != nil || u.Scheme != "nats" || u.Host == "" {
				return fmt.Errorf("peer %q is not a cluster URL: use nats://host:6222", p)
			}
		}
	}
	if c.MaxPayload < semantics.MaxMessageBytesLimit {
		return fmt.Errorf("max payload %d is below the largest record batch a topic may allow (%d)", c.MaxPayload, semantics.MaxMessageBytesLimit)
	}
	if c.MaxPending < int64(c.MaxPayload) {
		return fmt.Errorf("max pending %d is below the max payload %d: a client must be able to have at least one message pending", c.MaxPending, c.MaxPayload)
	}
	if c.AutoLeaderRebalance && c.LeaderImbalanceCheckInterval <= 0 {
		return fmt.Errorf("leader imbalance check interval %v must be positive (or turn automatic leader rebalancing off)", c.LeaderImbalanceCheckInterval)
	}
	if c.AutoRepair && c.AutoRepairDelay <= 0 {
		return fmt.Errorf("auto repair delay %v must be positive: set --auto-repair-delay (config auto_repair_delay) to a duration such as 30s, or turn automatic repair off with --auto-repair=false", c.AutoRepairDelay)
	}
	if c.Scrub && (c.ScrubInterval < 0 || c.ScrubInterval > 0 && c.ScrubInterval < minScrubInterval) {
		return fmt.Errorf("scrub interval %v is not a duration of at least %v: set --scrub-interval (config scrub_interval) to one such as 24h, or to 0 (or --scrub=false) to turn the scrub off", c.ScrubInterval, minScrubInterval)
	}
	if c.ScrubRate < 0 {
		return fmt.Errorf("scrub rate %d is negative: set --scrub-rate (config scrub_rate) to bytes a second such as 8MiB, or to 0 for no cap", c.ScrubRate)
	}
	if c.Sync < 0 {
		return fmt.Errorf("sync interval %v is negative: use always (the default) or a positive interval such as 1s", c.Sync)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown timeout %v must be positive", c.ShutdownTimeout)
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if c.HTTPMaxPartitionSeries < 0 {
		return fmt.Errorf("http max partition series %d is negative: give 0 (the default) or more", c.HTTPMaxPartitionSeries)
	}
	if err := c.HTTPTLS.validate("http tls"); err != nil {
		return err
	}
	if err := c.TLS.validate("tls"); err != nil {
		return err
	}
	return c.ClusterTLS.validate("cluster tls")
}

// SyncAlways is Config.Sync's default: every append is synced to disk before it is
// acknowledged.
const SyncAlways time.Duration = 0

// ParseSync reads a sync setting as --sync and the configuration file's sync key
// take it: "always", or a positive duration such as "1s" or "2m".
func ParseSync(s string) (time.Duration, error) {
	if strings.EqualFold(strings.TrimSpace(s), "always") {
		return SyncAlways, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is neither always nor a positive interval: use always (sync every append before acknowledging it) or an interval such as 1s or 2m", s)
	}
	return d, nil
}

// FormatSync writes a sync setting as ParseSync reads it: "always" or the interval.
func FormatSync(d time.Duration) string {
	if d == SyncAlways {
		return "always"
	}
	s := d.String() // 2m0s, 1h0m0s: drop the zero units
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// DefaultProducerIDExpiration is Config.ProducerIDExpiration's default (Kafka's
// producer.id.expiration.ms default).
const DefaultProducerIDExpiration = 24 * time.Hour

// DefaultHTTPListen is Config.HTTPListen's default.
const DefaultHTTPListen = "127.0.0.1:9644"

// DefaultClusterPort is the cluster port used when ClusterListen has none.
const DefaultClusterPort = 6222

// clustered reports whether the node is part of a cluster.
func (c Config) clustered() bool { return c.ClusterListen != "" }

// clusterAddr splits ClusterListen into host and port.
func (c Config) clusterAddr() (hostPort [2]string, err error) {
	addr := c.ClusterListen
	if !containsPort(addr) {
		addr = net.JoinHostPort(addr, strconv.Itoa(DefaultClusterPort))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return hostPort, fmt.Errorf("cluster address %q is not host:port: %v", c.ClusterListen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return hostPort, fmt.Errorf("cluster address %q has port %q: use a number from 0 to 65535", c.ClusterListen, port)
	}
	return [2]string{host, port}, nil
}

func containsPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}
