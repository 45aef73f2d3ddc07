package qxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// Record is one Kafka record; see semantics.Record. Record, Header,
// TopicPartition and Compression are the Kafka model's own types (package
// semantics), shared with the node, the record batch codec and the CLI; they are
// part of the SDK's API as they are.
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

	watch *connWatch // warns while the connection is down; nil for NewClient
	check *nodeCheck // moves off a paused or cut-off node; nil for NewClient and in-process

	reads atomic.Int64 // partition reads of the client's consumers running (see readShare)

	coord coordStarts // group coordinators starting (see groupRequestRetry)
}

// Connect connects to the qxd nodes at servers, a comma-separated list of NATS URLs
// ("nats://a:4222,nats://b:4222"); the client fails over between them. Connect
// only opens the connection: Ping checks that a qxd node answers on it.
//
// While the connection is down the client logs a warning after 3s, and again
// every 30s until it is back, then
// logs at info level that it reconnected, so that a producer or consumer whose
// node went away says so. Handlers given with NATSOptions
// (nats.DisconnectErrHandler, nats.ReconnectHandler) still run.
func Connect(ctx context.Context, servers string, opts ...ClientOption) (*Client, error) {
	cfg, err := newClientConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", servers, err)
	}
	// Frequent pings (ClientPing): a node paused or cut off by a silent network
	// partition is left for another within seconds, not NATS's minutes.
	nopts := []nats.Option{nats.Name(cfg.name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false),
		nats.PingInterval(cfg.pingInterval), nats.MaxPingsOutstanding(cfg.maxPingsOut)}
	if cfg.inProcess != nil {
		nopts = append(nopts, nats.InProcessServer(cfg.inProcess))
	}
	aopts, err := cfg.auth.natsOptions()
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", servers, err)
	}
	nopts = append(append(nopts, logAsyncErrors(cfg.logger)), aopts...)
	nopts = append(nopts, cfg.natsOpts...)
	watch := newConnWatch(cfg.logger, cfg.natsOpts)
	watch.hooks = &cfg.hooks
	nopts = append(nopts, watch.options()...)
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
	dialed := time.Now()
	go func() {
		nc, err := nats.Connect(servers, nopts...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		watch.close()
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to %s: %w", servers, ctx.Err())
	}
	if r.err == nil {
		cfg.hooks.connected(brokerOf(r.nc), time.Since(dialed), nil)
	} else {
		cfg.hooks.connected(BrokerMetadata{URL: servers}, time.Since(dialed), r.err)
	}
	if r.err != nil {
		watch.close()
		if err := connectError(servers, r.err, cfg.auth); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("connect to %s: %w (is a qxd node running there? start one with 'qxd server')", servers, r.err)
	}
	c, err := newClient(r.nc, cfg)
	if err != nil {
		watch.close()
		r.nc.Close()
		return nil, err
	}
	c.ownsNC, c.watch = true, watch
	if cfg.inProcess == nil {
		c.check = newNodeCheck(r.nc, c.log, watch, servers, nopts)
		watch.mu.Lock()
		watch.check = c.check
		watch.mu.Unlock()
	}
	return c, nil
}

// NewClient wraps an existing NATS connection. Close does not close nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	cfg, err := newClientConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
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
	c.coord.close()
	if c.ownsNC {
		c.watch.close()
		c.nc.Close()
		c.check.close() // after the connection: a ping in flight ends with it
	}
}

// failure is implemented by the admin API's responses.
type failure interface{ Failure() error }

// request sends an admin API request and decodes the response into out. While no
// node can serve it (none answering, or leaders being elected: ErrUnavailable), it is
// retried with backoff, up to the request timeout.
func (c *Client) request(ctx context.Context, subject string, req, out any) error {
	return c.send(ctx, subject, req, out, false)
}

// query is request for an admin API request that only reads, and so is safe to
// send twice: one that waits for its answer while the connection is lost and
// restored is sent again on the new connection; see requestResent.
func (c *Client) query(ctx context.Context, subject string, req, out any) error {
	return c.send(ctx, subject, req, out, true)
}

func (c *Client) send(ctx context.Context, subject string, req, out any, resend bool) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.reqTimeout)
		defer cancel()
	}
	backoff := 50 * time.Millisecond
	start, said := time.Now(), false
	for {
		err := c.requestOnce(ctx, subject, req, out, resend)
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
		if !said && time.Since(start) > waitNotice {
			c.log.Info("waiting for a qxd node to answer", "subject", subject, "err", err)
			said = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *Client) requestOnce(ctx context.Context, subject string, req, out any, resend bool) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.reqTimeout)
	defer cancel()
	var m *nats.Msg
	if resend {
		m, err = c.requestResent(ctx, subject, b)
	} else {
		m, err = c.requestWatched(ctx, subject, b)
	}
	if err != nil {
		return wrapNATSError(err)
	}
	reflect.ValueOf(out).Elem().SetZero()
	if err := json.Unmarshal(m.Data, out); err != nil {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed response on %s: %v", subject, err)
	}
	return nil
}

// errReconnected ends a wait for an answer that the connection's loss may have
// lost.
var errReconnected = errors.New("reconnected while waiting for the answer")

// requestResent is requestWatched for a request that is safe to send twice: when
// the connection is lost and restored while it waits for the answer, it sends the
// request again. NATS keeps what is published while the client reconnects, but not
// what it wrote just before it noticed that its node had gone (a node that stopped,
// a socket that closed under load): that request and its answer are lost with the
// connection, and without a second request the caller would wait until ctx ends.
func (c *Client) requestResent(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	for {
		// Listen before sending: a reconnection that comes after the request was
		// written is the one that may have lost it.
		up := c.nc.StatusChanged(nats.CONNECTED)
		rctx, cancel := context.WithCancelCause(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-up:
				cancel(errReconnected)
			case <-rctx.Done():
			}
		}()
		m, err := c.requestWatched(rctx, subject, data)
		lost := errors.Is(err, context.Canceled) && ctx.Err() == nil && errors.Is(context.Cause(rctx), errReconnected)
		cancel(nil)
		<-watched
		c.nc.RemoveStatusListener(up)
		if !lost {
			return m, err
		}
		c.log.Debug("reconnected while waiting for an answer; asking again", "subject", subject)
	}
}

// wrapNATSError turns connection-level failures into qxd errors that say what to do.
func wrapNATSError(err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return semantics.Errorf(semantics.ErrUnavailable, "no qxd node answered (is the server running and JetStream ready?): %v", err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return semantics.Errorf(semantics.ErrTimeout, "no answer in time: %v", err)
	case errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting):
		// The node went away (a restart, a failover) and the client is moving to
		// another: a request sent now fails at once, and is worth sending again.
		return semantics.Errorf(semantics.ErrUnavailable, "the connection to the node is down and reconnecting: %v", err)
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
			if err == nil || ctx.Err() != nil || !kvscan.Transient(err) {
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

// topicCreatingWait bounds how long topic waits for a topic that reads as being
// created: a create runs for a moment, and in a cluster a replica of the topics
// bucket that lags behind still answers "creating" just after the create returned.
// A create that died half-way is reported after this wait.
const topicCreatingWait = 10 * time.Second

// topic reads a topic's record. It must be ready; while it reads as being created,
// topic reads it again, until ctx ends or topicCreatingWait has passed, as Kafka's
// producer waits for a new topic's metadata.
func (c *Client) topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return c.topicAnswered(ctx, name, nil)
}

// topicAnswered is topic calling answered (when not nil) each time the topic's
// record reads as being created: a node answers, the topic is not ready yet.
func (c *Client) topicAnswered(ctx context.Context, name string, answered func()) (semantics.TopicMeta, error) {
	var deadline time.Time
	for {
		t, err := c.readTopic(ctx, name)
		if err == nil || t.State != semantics.TopicCreating {
			return t, err
		}
		if answered != nil {
			answered()
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
		return c.topicFromNode(ctx, name)
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

// topicFromNode reads a topic's record through a node (the describe API), which
// reads it from the topics bucket's leader, after a replica's copy said the topic
// does not exist: a replica behind the leader says so of a topic just created,
// and a producer or consumer started right after the create failed with
// ErrUnknownTopic. A direct get stays the lookup's first read: it needs no node
// service and is right but for such a moment.
func (c *Client) topicFromNode(ctx context.Context, name string) (semantics.TopicMeta, error) {
	var resp semantics.DescribeTopicResponse
	if err := c.query(ctx, topicAPISubject(semantics.APITopicDescribe, name), semantics.TopicRequest{Name: name}, &resp); err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("read topic %q: %w", name, err)
	}
	if err := resp.Error.Err(); errors.Is(err, semantics.ErrUnknownTopic) {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q does not exist: create it with 'qxd topic create %s'", name, name)
	} else if err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("read topic %q: %w", name, err)
	}
	if resp.Topic == nil {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidRequest, "read topic %q: a describe answered without the topic", name)
	}
	t := *resp.Topic
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
// bucket between leaders) until ctx ends. Each attempt is a direct get that any
// replica of the bucket answers, sent again every partition.DirectAttempt while
// none has answered (kvscan.Get), so a replica on a paused or cut-off node costs
// half a second, not the attempt's 5 s.
func kvGet(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, kvGetAttempt)
		e, err := kvscan.Get(actx, kv, key)
		cancel()
		if err == nil || ctx.Err() != nil || !kvscan.Transient(err) {
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

// Bounds of Ping and of the warnings about a lost connection.
const (
	defaultPingTimeout = 5 * time.Second // Ping without a deadline
	pingAttempt        = 2 * time.Second // one question to JetStream
	pingRetry          = 250 * time.Millisecond
	disconnectWarning  = 3 * time.Second  // down this long: warn
	disconnectReminder = 30 * time.Second // and again this often
	waitNotice         = 2 * time.Second  // a request retried this long is logged
)

// Ping checks that a qxd node answers on the client's connection: it asks
// JetStream about qxd's topics bucket, which every qxd node keeps, every identity
// may read and every operation needs. While JetStream does not answer, holds no
// qxd metadata, or the bucket has no leader, Ping asks again until ctx ends (5s
// if ctx has no deadline), then returns a semantics.ErrUnavailable error naming
// the server and the cause: a plain NATS server, a node still starting, or a
// cluster without a majority of its nodes. Other failures return at once.
//
// A question JetStream has not answered within pingAttempt is not given up: a
// loaded server can take longer, and its late answer (the bucket has no leader)
// says more than a timeout. Ping asks again meanwhile, in case the question or
// its answer was lost, and takes whichever answer comes first; the cause it
// reports is the last answer's, a timeout only when none came.
func (c *Client) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPingTimeout)
		defer cancel()
	}
	start := time.Now()
	where := c.nc.ConnectedUrlRedacted()
	if where == "" {
		where = "the in-process node"
	}
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	answers := make(chan error)
	ask := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.pingOnce(actx)
			select {
			case answers <- err:
			case <-actx.Done():
			}
		}()
	}
	ask()
	cause, answered := "", false
	again := time.NewTimer(pingAttempt) // the next question, if no answer comes first
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			if !answered {
				cause = fmt.Sprintf("its JetStream did not answer within %s", pingAttempt)
			}
			return semantics.Errorf(semantics.ErrUnavailable, "no qxd node answered at %s within %s: %s",
				where, time.Since(start).Round(100*time.Millisecond), cause)
		case <-again.C:
			ask()
			again.Reset(pingAttempt)
		case err := <-answers:
			if err == nil {
				return nil
			}
			why, retry := pingCause(err)
			if !retry {
				return fmt.Errorf("ping %s: %w", where, wrapNATSError(err))
			}
			if !isTimeout(err) {
				cause, answered = why, true
			}
			if !again.Stop() {
				select {
				case <-again.C:
				default:
				}
			}
			again.Reset(pingRetry)
		}
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout)
}

// pingOnce asks JetStream about the topics bucket once, bounded by ctx alone: nil
// when a qxd node answers with a bucket that has a leader (or is not clustered),
// errNoMetaLeader when the bucket has none, and the failure otherwise, at once a
// not-authorized error when the server refuses the identity the question.
func (c *Client) pingOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.askTopicsBucket(ctx, cancel)
	if err != nil {
		return err
	}
	if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader == "" {
		return errNoMetaLeader
	}
	return nil
}

func (c *Client) askTopicsBucket(ctx context.Context, cancel context.CancelFunc) (jetstream.Stream, error) {
	if c.authz == nil {
		return c.js.Stream(ctx, semantics.KVStream(semantics.TopicsBucket))
	}
	subject := semantics.Subject(semantics.JSStreamInfoPrefix, semantics.KVStream(semantics.TopicsBucket))
	w := c.authz.watch(subject, cancel)
	defer c.authz.unwatch(subject, w)
	s, err := c.js.Stream(ctx, semantics.KVStream(semantics.TopicsBucket))
	if err != nil && w.isDenied() {
		return nil, deniedError(subject)
	}
	return s, err
}

// errNoMetaLeader is Ping's cause when qxd's topics bucket has no leader.
var errNoMetaLeader = errors.New("no leader")

// pingCause says what a failed ask for the topics bucket means, and whether
// asking again may succeed.
func pingCause(err error) (string, bool) {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, errNoMetaLeader):
		return "qxd's metadata (bucket " + semantics.TopicsBucket + ") has no leader, as when fewer than a majority of a cluster's nodes are up", true
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return "the NATS server there has no JetStream (its JetStream API had no responders): a plain nats-server, or a qxd node still starting", true
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return "its JetStream holds no qxd metadata (no bucket " + semantics.TopicsBucket + "): a plain nats-server, or a qxd node still starting", true
	case errors.As(err, &apiErr) && apiErr.Code == 503:
		return fmt.Sprintf("its JetStream is unavailable (%s), as when fewer than a majority of a cluster's nodes are up", apiErr.Description), true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Sprintf("its JetStream did not answer within %s", pingAttempt), true
	}
	return "", false
}

// connWatch logs while a connection is down: a warning once it has been down
// for disconnectWarning, again every disconnectReminder, and an info line when
// it is back after a warning. It calls the handlers the caller gave too.
type connWatch struct {
	log          *slog.Logger
	userDown     nats.ConnErrHandler
	userUp       nats.ConnHandler
	userLDM      nats.ConnHandler
	hooks        *hooks
	mu           sync.Mutex
	timer        *time.Timer // set while down
	node         string      // the server lost
	err          error       // why
	since        time.Time
	warned, done bool
	moves        moves
	check        *nodeCheck // told of each reconnection; nil in-process
}

func newConnWatch(log *slog.Logger, userOpts []nats.Option) *connWatch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var user nats.Options
	for _, o := range userOpts {
		_ = o(&user)
	}
	return &connWatch{log: log, userDown: user.DisconnectedErrCB, userUp: user.ReconnectedCB, userLDM: user.LameDuckModeHandler}
}

// options are the nats.go handlers that feed w; they come after the caller's.
func (w *connWatch) options() []nats.Option {
	return []nats.Option{nats.DisconnectErrHandler(w.disconnected), nats.ReconnectHandler(w.reconnected),
		nats.LameDuckModeHandler(w.lameDuck)}
}

// lameDuck moves the connection to another node as soon as its node says it is
// stopping, or that it is cut off from its cluster (NATS's lame-duck notice),
// while that node still serves it: what is written meanwhile is kept and sent on
// the new connection, and producers resend what was awaiting an answer (see
// Producer.resendOnReconnect). Waiting for the node to close the connection
// instead loses what was written just before. It stays when no other node it
// knows is worth moving to (see moves).
func (w *connWatch) lameDuck(nc *nats.Conn) {
	w.mu.Lock()
	move := w.moves.toldToMove(nc.ConnectedUrl(), nc.Servers(), time.Now())
	w.mu.Unlock()
	if move {
		w.log.Info("the qxd node asks its clients to move (it is stopping, or cut off from its cluster or from one of its nodes); moving to another", "node", nc.ConnectedServerName())
		if err := nc.ForceReconnect(); err != nil {
			w.log.Debug("move to another node failed", "err", err)
		}
	} else {
		w.log.Info("the qxd node asks its clients to move, but no other node is known, or the last move led back to a node that had asked so; staying", "node", nc.ConnectedServerName())
	}
	if w.userLDM != nil {
		w.userLDM(nc)
	}
}

// leave says whether to leave the node at server (the connection's URL) that a
// check found paused or cut off, as if it had told the client to move (see
// moves).
func (w *connWatch) leave(nc *nats.Conn, server string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.moves.toldToMove(server, nc.Servers(), time.Now())
}

// toldLately returns when the server on host (host:port) last told the client
// to move, or was found silent, if that was within movedLately; the zero time
// if not. Safe on nil.
func (w *connWatch) toldLately(host string, now time.Time) time.Time {
	var last time.Time
	if w == nil {
		return last
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for s, at := range w.moves.told {
		if now.Sub(at) < movedLately && at.After(last) {
			if u, err := url.Parse(s); err == nil && u.Host == host {
				last = at
			}
		}
	}
	return last
}

// movedLately is how long a client that a move led back to a node that had told
// it to go stays there.
const movedLately = 30 * time.Second

// toldOnConnect is how soon after the client connected a notice counts as the
// node telling a newly connected client that it is still cut off (it tells one at
// once), the notice movedLately's stay is for. A notice that comes later, after
// the node served the client, is a new fault (the node was cut off again) and the
// client moves.
const toldOnConnect = 5 * time.Second

// moves remembers which nodes told the client to move and when, so that a client
// whose nodes all say so — a cluster without a majority — goes round them at most
// once instead of for as long as that lasts.
type moves struct {
	told      map[string]time.Time // server URL → when it last told the client to move
	from      string               // the server the last move left, until the next connection
	stayUntil time.Time            // a move led back to a node that had told it to go
	since     time.Time            // when the client last connected
}

// toldToMove records that server (the connection's URL) told the client to move at
// at, and says whether to: pool (the connection's server URLs) must hold another
// server, and the client must not have come back to a node that told it to go
// within movedLately (its other nodes refused it, or told it to go too) unless
// this notice came toldOnConnect or more after it connected: that node served it
// and has a new fault.
func (m *moves) toldToMove(server string, pool []string, at time.Time) bool {
	if m.told == nil {
		m.told = map[string]time.Time{}
	}
	m.told[server] = at
	if at.Before(m.stayUntil) && at.Sub(m.since) < toldOnConnect {
		return false
	}
	for _, s := range pool {
		if s != server {
			m.from = server
			return true
		}
	}
	return false
}

// connected records that the client connected to server at at. A move that ended
// on a server that told the client to move within movedLately keeps the client
// where it is until movedLately has passed.
func (m *moves) connected(server string, at time.Time) {
	m.since = at
	if m.from == "" {
		return
	}
	if t, ok := m.told[server]; ok && at.Sub(t) < movedLately {
		m.stayUntil = at.Add(movedLately)
	}
	m.from = ""
}

func (w *connWatch) disconnected(nc *nats.Conn, err error) {
	w.mu.Lock()
	if !w.done && w.timer == nil {
		w.node, w.err, w.since, w.warned = nc.ConnectedServerName(), err, time.Now(), false
		if w.node == "" {
			w.node = nc.ConnectedUrlRedacted()
		}
		w.timer = time.AfterFunc(disconnectWarning, w.warn)
	}
	w.mu.Unlock()
	if w.hooks != nil {
		w.hooks.disconnected(brokerOf(nc), err)
	}
	if w.userDown != nil {
		w.userDown(nc, err)
	}
}

func (w *connWatch) warn() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.timer == nil {
		return
	}
	errText := "connection closed"
	if w.err != nil {
		errText = w.err.Error()
	}
	w.log.Warn("lost the connection to the qxd node; reconnecting", "node", w.node,
		"err", fmt.Sprintf("%s (down %s)", errText, time.Since(w.since).Round(time.Second)))
	w.warned = true
	w.timer.Reset(disconnectReminder)
}

func (w *connWatch) reconnected(nc *nats.Conn) {
	w.mu.Lock()
	w.check.reconnected()
	w.moves.connected(nc.ConnectedUrl(), time.Now())
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
		if w.warned && !w.done {
			w.log.Info("reconnected to a qxd node", "node", nc.ConnectedServerName())
		}
	}
	w.mu.Unlock()
	if w.hooks != nil {
		w.hooks.connected(brokerOf(nc), 0, nil)
	}
	if w.userUp != nil {
		w.userUp(nc)
	}
}

// close stops w; it logs nothing more. Safe on nil and more than once.
func (w *connWatch) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// logAsyncErrors logs the connection's asynchronous errors (permission
// violations, slow consumer) at debug level instead of nats.go's default of
// printing them to stderr; NATSOptions(nats.ErrorHandler(…)) replaces it.
func logAsyncErrors(log *slog.Logger) nats.Option {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			log.Debug("NATS connection error", "subject", sub.Subject, "err", err)
			return
		}
		log.Debug("NATS connection error", "err", err)
	})
}
