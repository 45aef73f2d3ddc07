// The client's options and their defaults, in one place. The producer's are in
// producer_options.go, the consumer's in consumer_options.go.

package qxd

import (
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// The client's defaults.
const (
	DefaultClientName           = "qxd"
	DefaultClientRequestTimeout = 30 * time.Second
	// DefaultClientPingInterval and DefaultClientMaxPingsOut: a client pings its
	// node every second and leaves it for another after two pings go unanswered,
	// so a paused node, or one whose client link is cut silently, is left within
	// 2–3 s. A producer whose request has no answer for 0.3 s pings at once and
	// leaves when nothing comes from the node within 1 s (about 1.3 s after the
	// stall), or within twice the slowest answer of the last 30 s on this
	// connection, at most 3 s, when that is longer (a loaded node; see
	// nodeCheck). (A node cut off from its cluster
	// but not from its clients answers pings; it tells its clients to move
	// itself.)
	DefaultClientPingInterval = time.Second
	DefaultClientMaxPingsOut  = 2
	// DefaultClientFetchMaxBytes is a quarter of what a node buffers for one
	// client by default (its MaxPending, 256 MiB) before it cuts the client off
	// as a slow consumer.
	DefaultClientFetchMaxBytes = 64 << 20
)

func defaultClientConfig() clientConfig {
	return clientConfig{name: DefaultClientName, clientID: defaultClientID(), reqTimeout: DefaultClientRequestTimeout,
		pingInterval: DefaultClientPingInterval, maxPingsOut: DefaultClientMaxPingsOut, fetchMaxBytes: DefaultClientFetchMaxBytes}
}

// newClientConfig applies opts to the defaults and checks the result.
func newClientConfig(opts []ClientOption) (clientConfig, error) {
	cfg := defaultClientConfig()
	for _, o := range opts {
		o(&cfg)
	}
	return cfg, cfg.validate()
}

func (c clientConfig) validate() error {
	switch {
	case c.reqTimeout <= 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "request timeout %v: give a positive duration", c.reqTimeout)
	case c.pingInterval <= 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "ping interval %v: give a positive duration", c.pingInterval)
	case c.maxPingsOut < 1:
		return semantics.Errorf(semantics.ErrInvalidConfig, "max pings outstanding %d: give 1 or more", c.maxPingsOut)
	case c.fetchMaxBytes < 1:
		return semantics.Errorf(semantics.ErrInvalidConfig, "client fetch max bytes %d: give at least 1", c.fetchMaxBytes)
	case c.clientID == "":
		return semantics.Errorf(semantics.ErrInvalidConfig, "client id is empty: give a name, or leave the option out for qxd-<hostname>")
	case c.badHook != nil:
		return semantics.Errorf(semantics.ErrInvalidConfig, "hook %T implements none of the hook interfaces (HookBrokerConnect, HookBrokerDisconnect, HookProduceBatchWritten, HookFetchBatchRead)", c.badHook)
	}
	return nil
}

// defaultClientID is "qxd-<hostname>", or "qxd" when the hostname is unknown.
func defaultClientID() string {
	h, _ := os.Hostname()
	if h == "" {
		return "qxd"
	}
	return "qxd-" + h
}

type clientConfig struct {
	name       string
	clientID   string
	logger     *slog.Logger
	natsOpts   []nats.Option
	inProcess  nats.InProcessConnProvider
	reqTimeout time.Duration
	auth       authConfig

	pingInterval time.Duration
	maxPingsOut  int

	fetchMaxBytes int

	hooks   hooks
	badHook Hook // the first hook given that implements no Hook interface
}

// ClientOption configures Connect.
type ClientOption func(*clientConfig)

// Hooks adds hooks the client calls at connections, disconnections, batches
// written and batches read (see Hook); for metrics, package qxdprom has one that
// exports Prometheus metrics. Default none.
func Hooks(hs ...Hook) ClientOption {
	return func(c *clientConfig) {
		for _, h := range hs {
			if !c.hooks.add(h) && c.badHook == nil {
				c.badHook = h
			}
		}
	}
}

// ClientName names the connection, as NATS monitoring shows it. Default "qxd"
// (DefaultClientName).
func ClientName(name string) ClientOption { return func(c *clientConfig) { c.name = name } }

// Logger sets where the client logs. Default: nowhere.
func Logger(l *slog.Logger) ClientOption { return func(c *clientConfig) { c.logger = l } }

// NATSOptions adds nats.go connection options (credentials, TLS, reconnect
// behaviour).
func NATSOptions(opts ...nats.Option) ClientOption {
	return func(c *clientConfig) { c.natsOpts = append(c.natsOpts, opts...) }
}

// InProcess connects to a node in the same process without a socket; servers is
// then ignored. A *server.Node is such a provider.
func InProcess(p nats.InProcessConnProvider) ClientOption {
	return func(c *clientConfig) { c.inProcess = p }
}

// ClientRequestTimeout bounds admin requests, commits and group lookups when their
// context has no deadline. Default 30s (DefaultClientRequestTimeout).
func ClientRequestTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.reqTimeout = d }
}

// ClientPing sets how often the client pings its node and how many pings may go
// unanswered before it takes the node for gone and continues through another: a
// paused or silently cut-off node is left after about interval × (maxOut+1).
// Default every 1s, 2 outstanding (DefaultClientPingInterval,
// DefaultClientMaxPingsOut). A busy node answers pings late: too short a setting
// moves clients off a node that is only slow. Whatever the setting, a request
// (or a read's next batch) that waits 0.3 s makes the client ping at once, and
// leave when nothing comes from the node within 1 s, or within twice the slowest
// answer it had from the node on this connection in the last 30 s when that is
// longer, at most 3 s: a paused node is left within 3.3 s even with rare pings,
// and a loaded node whose answers took a second lately is kept.
func ClientPing(interval time.Duration, maxOut int) ClientOption {
	return func(c *clientConfig) { c.pingInterval, c.maxPingsOut = interval, maxOut }
}

// ClientFetchMaxBytes caps the bytes all the client's consumers fetch ahead of
// Poll together, on the client's one connection: a partition read that starts
// asks for at most this cap shared by every partition read of the client then
// running, and at most its consumer's share (FetchMaxBytes); each may still
// fetch one batch of its topic's max message bytes. The node cuts off a client
// it holds more than its MaxPending for (256 MiB by default) as a slow consumer,
// which several consumers of one client each fetching FetchMaxBytes ahead
// reached. Default 64 MiB (DefaultClientFetchMaxBytes).
func ClientFetchMaxBytes(n int) ClientOption { return func(c *clientConfig) { c.fetchMaxBytes = n } }

// ClientID sets the client id that group members give the coordinator, as
// Kafka's client.id: DescribeGroup and 'qxd group describe' show it beside each
// member. Default "qxd-<hostname>".
func ClientID(id string) ClientOption { return func(c *clientConfig) { c.clientID = id } }
