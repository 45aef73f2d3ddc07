package qxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// Record is one Kafka record; see semantics.Record.
type Record = semantics.Record

// Header is one record header; see semantics.Header.
type Header = semantics.Header

// Client is a connection to a qxd node or cluster. It is safe for concurrent use;
// producers and consumers made from it share its connection.
type Client struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	ownsNC bool
	cfg    clientConfig

	bucketsMu sync.Mutex // guards opening topicsKV and partsKV
	topicsKV  jetstream.KeyValue
	partsKV   jetstream.KeyValue

	authz *authz // turns permission violations into not-authorized errors
}

type clientConfig struct {
	name       string
	logger     *slog.Logger
	natsOpts   []nats.Option
	inProcess  nats.InProcessConnProvider
	reqTimeout time.Duration
	auth       authConfig
}

// ClientOption configures Connect.
type ClientOption func(*clientConfig)

// WithName names the connection, as NATS monitoring shows it. Default "qxd".
func WithName(name string) ClientOption { return func(c *clientConfig) { c.name = name } }

// WithLogger sets where the client logs. Default: nowhere.
func WithLogger(l *slog.Logger) ClientOption { return func(c *clientConfig) { c.logger = l } }

// WithNATSOptions adds nats.go connection options (credentials, TLS, reconnect
// behaviour).
func WithNATSOptions(opts ...nats.Option) ClientOption {
	return func(c *clientConfig) { c.natsOpts = append(c.natsOpts, opts...) }
}

// WithInProcess connects to a node in the same process without a socket; servers is
// then ignored. A *server.Node is such a provider.
func WithInProcess(p nats.InProcessConnProvider) ClientOption {
	return func(c *clientConfig) { c.inProcess = p }
}

// WithRequestTimeout bounds admin requests. Default 30s.
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.reqTimeout = d }
}

// Connect connects to the qxd nodes at servers, a comma-separated list of NATS URLs
// ("nats://a:4222,nats://b:4222"); the client fails over between them.
func Connect(ctx context.Context, servers string, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{name: "qxd", reqTimeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	// Pings every 10s, three unanswered: a node cut off by a silent network
	// partition is left for another within about half a minute, not NATS's minutes.
	nopts := []nats.Option{nats.Name(cfg.name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false),
		nats.PingInterval(10 * time.Second), nats.MaxPingsOutstanding(3)}
	if cfg.inProcess != nil {
		nopts = append(nopts, nats.InProcessServer(cfg.inProcess))
	}
	aopts, err := cfg.auth.natsOptions()
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", servers, err)
	}
	nopts = append(append(nopts, logAsyncErrors(cfg.logger)), aopts...)
	nopts = append(nopts, cfg.natsOpts...)
	if o := inboxOption(nopts); o != nil {
		nopts = append(nopts, o)
	}
	if cfg.inProcess == nil && strings.TrimSpace(servers) == "" {
		return nil, errors.New("connect: no server given: pass a NATS URL such as nats://127.0.0.1:4222")
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(servers, nopts...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to %s: %w", servers, ctx.Err())
	}
	if r.err != nil {
		if err := connectError(servers, r.err, cfg.auth); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("connect to %s: %w (is a qxd node running there? start one with 'qxd server')", servers, r.err)
	}
	c, err := newClient(r.nc, cfg)
	if err != nil {
		r.nc.Close()
		return nil, err
	}
	c.ownsNC = true
	return c, nil
}

// NewClient wraps an existing NATS connection. Close does not close nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{name: "qxd", reqTimeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	return newClient(nc, cfg)
}

func newClient(nc *nats.Conn, cfg clientConfig) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{nc: nc, js: js, log: log, cfg: cfg, authz: watchViolations(nc)}, nil
}

// Conn is the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Close closes the connection if Connect opened it. Close producers and consumers
// first: Close does not flush them.
func (c *Client) Close() {
	if c.ownsNC {
		c.nc.Close()
	}
}

// failure is implemented by the admin API's responses.
type failure interface{ Failure() error }

// request sends an admin API request and decodes the response into out. While no
// node can serve it (none answering, or leaders being elected: ErrUnavailable), it is
// retried with backoff, up to the request timeout.
func (c *Client) request(ctx context.Context, subject string, req, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.reqTimeout)
		defer cancel()
	}
	backoff := 50 * time.Millisecond
	for {
		err := c.requestOnce(ctx, subject, req, out)
		switch {
		case err != nil && !errors.Is(err, semantics.ErrUnavailable):
			return err
		case err == nil:
			f, ok := out.(failure)
			if !ok || !errors.Is(f.Failure(), semantics.ErrUnavailable) {
				return nil // the caller reads the response's own error
			}
			err = f.Failure()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *Client) requestOnce(ctx context.Context, subject string, req, out any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.reqTimeout)
	defer cancel()
	m, err := c.requestWatched(ctx, subject, b)
	if err != nil {
		return wrapNATSError(err)
	}
	reflect.ValueOf(out).Elem().SetZero()
	if err := json.Unmarshal(m.Data, out); err != nil {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed response on %s: %v", subject, err)
	}
	return nil
}

// wrapNATSError turns connection-level failures into qxd errors that say what to do.
func wrapNATSError(err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return semantics.Errorf(semantics.ErrUnavailable, "no qxd node answered (is the server running and JetStream ready?): %v", err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return semantics.Errorf(semantics.ErrTimeout, "no answer in time: %v", err)
	}
	return err
}

// buckets opens the metadata buckets (read-only use).
func (c *Client) buckets(ctx context.Context) error {
	c.bucketsMu.Lock()
	defer c.bucketsMu.Unlock()
	if c.partsKV != nil {
		return nil
	}
	// A failure is not kept: the buckets may be between leaders (a node just died),
	// and the next call tries again. Reads that time out or find no responders are
	// retried until ctx ends, or the request timeout if ctx has no deadline.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.reqTimeout)
		defer cancel()
	}
	open := func(name string) (jetstream.KeyValue, error) {
		for {
			actx, cancel := context.WithTimeout(ctx, kvGetAttempt)
			kv, err := c.js.KeyValue(actx, name)
			cancel()
			if err == nil || ctx.Err() != nil || !transientKVErr(err) {
				return kv, err
			}
			select {
			case <-ctx.Done():
				return kv, err
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var err error
	if c.topicsKV == nil {
		c.topicsKV, err = open(semantics.TopicsBucket)
	}
	if err == nil {
		c.partsKV, err = open(semantics.PartitionsBucket)
	}
	if err != nil {
		return semantics.Errorf(semantics.ErrUnavailable, "open qxd metadata: %v (is this a qxd node?)", wrapNATSError(err))
	}
	return nil
}

// transientKVErr reports whether a metadata bucket request may succeed if sent again:
// it timed out, or nothing answered (the bucket between leaders).
func transientKVErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// topicCreatingWait bounds how long topic waits for a topic that reads as being
// created: a create runs for a moment, and in a cluster a replica of the topics
// bucket that lags behind still answers "creating" just after the create returned.
// A create that died half-way is reported after this wait.
const topicCreatingWait = 10 * time.Second

// topic reads a topic's record. It must be ready; while it reads as being created,
// topic reads it again, until ctx ends or topicCreatingWait has passed, as Kafka's
// producer waits for a new topic's metadata.
func (c *Client) topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	var deadline time.Time
	for {
		t, err := c.readTopic(ctx, name)
		if err == nil || t.State != semantics.TopicCreating {
			return t, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(topicCreatingWait)
		}
		if time.Now().After(deadline) {
			return t, err
		}
		select {
		case <-ctx.Done():
			return t, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readTopic reads a topic's record once. It must be ready.
func (c *Client) readTopic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	if err := c.buckets(ctx); err != nil {
		return semantics.TopicMeta{}, err
	}
	e, err := c.getTopicRecord(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q does not exist: create it with 'qxd topic create %s'", name, name)
	}
	if err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("read topic %q: %w", name, wrapNATSError(err))
	}
	var t semantics.TopicMeta
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return t, fmt.Errorf("topic %q: corrupt record: %w", name, err)
	}
	t.Revision = e.Revision()
	if t.State != semantics.TopicReady {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: retry the create or delete to finish it", name, t.State)
	}
	return t, nil
}

// kvGetAttempt bounds one read of a metadata bucket. A request whose reply is lost
// (the bucket's leader stopped, or this client's server restarted, while it was in
// flight) is otherwise only given up at the caller's deadline, which can be minutes.
const kvGetAttempt = 5 * time.Second

// kvGet reads key from kv, retrying reads that time out or find no responders (the
// bucket between leaders) until ctx ends.
func kvGet(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, kvGetAttempt)
		e, err := kv.Get(actx, key)
		cancel()
		if err == nil || ctx.Err() != nil || !transientKVErr(err) {
			return e, err
		}
		select {
		case <-ctx.Done():
			return e, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkpointNext reads the writer's checkpointed next offset of a partition.
func (c *Client) checkpointNext(ctx context.Context, t semantics.TopicMeta, p int32) (int64, error) {
	if err := c.buckets(ctx); err != nil {
		return 0, err
	}
	e, err := kvGet(ctx, c.partsKV, semantics.CheckpointKey(t.ID, p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var ck semantics.Checkpoint
	if err := json.Unmarshal(e.Value(), &ck); err != nil {
		return 0, err
	}
	return ck.Next, nil
}
