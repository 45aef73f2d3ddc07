package kafka

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// Config configures a Listener.
type Config struct {
	// Listen is the address to listen on, host:port (port 0 picks a free port).
	Listen string
	// Listener, when set, is used instead of listening on Listen: the caller bound
	// it (to learn its address first).
	Listener net.Listener
	// Backend answers the requests. Required.
	Backend Backend
	// TLS, when set, makes every connection TLS (the node's certificates).
	TLS *tls.Config
	// Auth, when set, requires SASL authentication (see Authenticator). Default:
	// none, every client may do anything.
	Auth Authenticator
	// Logger receives the listener's logs. Default: discard.
	Logger *slog.Logger
	// Observer, when set, sees each answered request (metrics). Default: none.
	Observer Observer
	// MaxRequestBytes bounds one request's size; a client that sends a larger one
	// is disconnected. Default 100 MiB (Kafka's socket.request.max.bytes).
	MaxRequestBytes int32
	// MaxInFlight bounds the requests of one connection being answered at once;
	// the listener stops reading a connection that has this many. Default 64.
	MaxInFlight int
	// ReadTimeout bounds the time to read one request once its first byte came, so
	// a client that stops half-way does not hold a connection. Default 30s.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection that sends no request for this long (Kafka's
	// connections.max.idle.ms). Default 10m.
	IdleTimeout time.Duration
	// FetchSessionSlots bounds the fetch sessions (KIP-227) the listener keeps
	// for its clients, Kafka's max.incremental.fetch.session.cache.slots.
	// Default (0) DefaultFetchSessionSlots; NoFetchSessions (any negative
	// number) keeps none: every fetch is answered sessionless, with session id
	// 0, as a Kafka broker with 0 slots answers.
	FetchSessionSlots int
	// FetchSessionEviction is how long a session is safe from eviction after it
	// is used and after it is made, Kafka's
	// min.incremental.fetch.session.eviction.ms. Default
	// DefaultFetchSessionEviction.
	FetchSessionEviction time.Duration
	// FetchMaxBytes bounds the record batches one fetch answer carries, as
	// Kafka's broker setting fetch.max.bytes does, below the client's own
	// limits: it is shared evenly among the fetch's partitions, and each
	// partition takes at least its first batch (within the client's limits),
	// so every partition moves in every answer. Default DefaultFetchMaxBytes.
	FetchMaxBytes int
}

// Defaults of Config.
const (
	DefaultMaxRequestBytes = 100 << 20
	DefaultMaxInFlight     = 64
	DefaultReadTimeout     = 30 * time.Second
	DefaultIdleTimeout     = 10 * time.Minute
	// DefaultFetchMaxBytes is 2 MiB where Kafka's broker default is 55 MiB:
	// a client reads each answer into a buffer of its size (franz-go a new
	// one each answer), and with Kafka's client defaults (1 MiB a partition)
	// an answer over eight partitions would be 8 MiB, memory the client's
	// process has to fault in anew where answers of 2 MiB reuse its own.
	DefaultFetchMaxBytes = 2 << 20
)

// NoFetchSessions is Config.FetchSessionSlots of a listener that keeps no fetch
// sessions.
const NoFetchSessions = -1

// Listener takes Kafka clients' connections and answers their requests.
type Listener struct {
	cfg  Config
	log  *slog.Logger
	addr net.Addr // the address bound, kept while the listener is suspended

	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	ln    net.Listener // nil while suspended
	conns map[*conn]struct{}
	wg    sync.WaitGroup

	closeOnce sync.Once

	// sessions are the fetch sessions of the listener's clients.
	sessions *fetchSessions

	// decoyKey makes the SCRAM salts of users that do not exist (decoy).
	decoyKey [32]byte
}

// Listen starts listening on cfg.Listen and serving connections until Close.
func Listen(cfg Config) (*Listener, error) {
	if cfg.Backend == nil {
		return nil, errors.New("kafka listener: no backend")
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case cfg.FetchSessionSlots == 0:
		cfg.FetchSessionSlots = DefaultFetchSessionSlots
	case cfg.FetchSessionSlots < 0:
		cfg.FetchSessionSlots = 0
	}
	if cfg.FetchMaxBytes <= 0 {
		cfg.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if cfg.FetchSessionEviction <= 0 {
		cfg.FetchSessionEviction = DefaultFetchSessionEviction
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("kafka listen address %s is not available: %w (stop what uses it or choose another with --kafka-listen)", cfg.Listen, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := ln.Addr()
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	l := &Listener{cfg: cfg, log: log, addr: addr, ln: ln, ctx: ctx, cancel: cancel, conns: map[*conn]struct{}{},
		sessions: newFetchSessions(cfg.FetchSessionSlots, cfg.FetchSessionEviction)}
	rand.Read(l.decoyKey[:])
	l.wg.Add(1)
	go l.accept(ln)
	return l, nil
}

// Addr is the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.addr }

// Suspend stops serving until Resume: it stops listening, so that clients'
// connection attempts are refused, and resets every client connection, ending
// their requests. Kafka clients take a refused connection for a broker that is
// down: they read the metadata again from another broker and go to the leaders
// and coordinators it names. A node cut off from its cluster suspends its
// listener, as it can store nothing and its view of the leaders is stale.
//
// The connections are reset (TCP RST), not closed: a client that sees a
// connection end in an orderly close (EOF) before its first answer on it takes
// the broker for one that wants authentication it did not offer, and franz-go
// then gives the request up rather than sending it to another broker (its
// ErrFirstReadEOF: a Metadata request in flight fails the records it holds for
// partitions without a sent batch, and the failed attempt counts as the
// client's last metadata read, so it reads again only MetadataMinAge, 5 s,
// later). A reset is a network error every client retries, at once and
// elsewhere. Suspend is idempotent; it does nothing after Close.
func (l *Listener) Suspend() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil || l.ctx.Err() != nil {
		return
	}
	l.ln.Close()
	l.ln = nil
	for c := range l.conns {
		c.cancel()
		resetOnClose(c.nc)
		c.nc.Close()
	}
}

// resetOnClose makes Close of nc, a TCP connection or TLS over one, reset it
// (SO_LINGER 0) instead of closing it in order.
func resetOnClose(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// Resume listens again, on the address bound first, after Suspend. It is
// idempotent, and does nothing after Close.
func (l *Listener) Resume() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil || l.ctx.Err() != nil {
		return nil
	}
	ln, err := net.Listen(l.addr.Network(), l.addr.String())
	if err != nil {
		return fmt.Errorf("kafka listener: listen again on %s: %w", l.addr, err)
	}
	if l.cfg.TLS != nil {
		ln = tls.NewListener(ln, l.cfg.TLS)
	}
	l.ln = ln
	l.wg.Add(1)
	go l.accept(ln)
	return nil
}

// Suspended reports whether the listener is suspended.
func (l *Listener) Suspended() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ln == nil && l.ctx.Err() == nil
}

// Close stops taking connections, closes those open and waits, within ctx, for
// their requests to end. Close is idempotent.
func (l *Listener) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.cancel()
		if l.ln != nil {
			l.ln.Close()
		}
		for c := range l.conns {
			c.nc.Close()
		}
		l.mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka listener: close: %w", ctx.Err())
	}
}

// accept takes the connections of ln until it is closed.
func (l *Listener) accept(ln net.Listener) {
	defer l.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			l.mu.Lock()
			retired := l.ln != ln // closed by Suspend or Close
			l.mu.Unlock()
			if retired || l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.log.Warn("kafka listener stopped accepting", "err", err)
			return
		}
		c := newConn(l, nc)
		l.mu.Lock()
		if l.ctx.Err() != nil || l.ln != ln {
			l.mu.Unlock()
			nc.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			c.serve()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// conn is one client connection. Requests are read in order, handled concurrently
// (a handler's first stage runs in the read loop, so that produce requests reach
// the partition writers in the order they came) and answered in order, as Kafka
// requires.
type conn struct {
	l   *Listener
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	slots  chan *slot

	// clientID is the client id of the connection's first request, set before any
	// handler runs.
	clientID string
	started  bool

	// b is the backend the handlers use: Config.Backend, behind authorized on a
	// listener with Auth.
	b Backend

	// SASL state, changed only in the read loop. grant is nil on a listener
	// without Auth: everything is allowed.
	sasl saslSession // the exchange a SaslHandshake started, until it ends
	// rawSASL: a SaslHandshake v0 started the exchange, so the next frames are
	// raw tokens.
	rawSASL bool
	authed  bool
	user    string
	grant   *semantics.Grant
	// closing: a handler in the read loop asked to close the connection once its
	// answer is sent (a failed SaslAuthenticate).
	closing error
	// produced keeps produce batches in request order per partition when a
	// request sends them off the read loop (read loop only).
	produced produceOrder
	// behind is the last Metadata request's RequestBehind channel, closed when
	// the next request is read (read loop only; nil once closed).
	behind chan struct{}
	// ahead is the answers queued and not yet ready, oldest first (read loop
	// only; those found ready at its front are dropped): a Metadata answer is
	// read once they are.
	ahead []*slot
	// toldTooOld: a request of a version tooOld was logged (read loop only).
	toldTooOld bool
}

// behindKey keys a Metadata request's RequestBehind channel in its context.
type behindKey struct{}

// RequestBehind returns a channel the listener closes once the connection that
// carried the request of ctx carries another request after it, whose answer
// must then wait for this one's (a connection's answers go in request order).
// A backend holding a Metadata answer for something better to say (the
// successor of a silent leader) stops holding then: librdkafka sends Metadata
// on the connection that carries its produce requests, which would otherwise
// wait out the hold. Nil, never closed, for other requests.
func RequestBehind(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(behindKey{}).(chan struct{})
	return ch
}

// slot is one answer awaited, in request order.
type slot struct {
	done chan struct{}
	buf  []byte // the framed response; nil: none (acks=0 produce)
	// more, when set, follows buf: a fetch answer's stored batches and the
	// pieces of the answer between them (frameParts).
	more [][]byte
	// release, when set, is called once buf and more are written (or will
	// not be): a fetch answer's batches are the backend's memory.
	release func()
}

func newConn(l *Listener, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(l.ctx)
	c := &conn{l: l, nc: nc, log: l.log, ctx: ctx, cancel: cancel, slots: make(chan *slot, l.cfg.MaxInFlight), b: l.cfg.Backend}
	if l.cfg.Auth != nil {
		c.b = authorized{Backend: l.cfg.Backend, c: c}
	}
	return c
}

// errClose ends a connection without an answer: Kafka brokers close the
// connection on requests they cannot parse or do not support.
var errClose = errors.New("close connection")

func (c *conn) serve() {
	defer c.nc.Close()
	defer c.cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	err := c.readLoop()
	// The client is gone or broke the protocol: requests still waiting (a long
	// poll, a join) end now rather than at their timeouts.
	c.cancel()
	close(c.slots)
	wg.Wait()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("kafka connection closed", "err", fmt.Errorf("client %s: %w", c.nc.RemoteAddr(), err))
	}
}

// writeLoop writes the answers in request order.
func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	broken := false
	for s := range c.slots {
		select {
		case <-s.done:
		case <-c.ctx.Done():
			<-s.done // handlers end with the connection's context
		}
		if broken || s.buf == nil {
			s.written()
			continue
		}
		// A vectored write has handed every piece to the connection when it
		// returns: their memory may be used again.
		err := writeSlot(w, c.nc, s)
		s.written()
		if err != nil {
			broken = true
			c.cancel()
			c.nc.Close()
			continue
		}
		if len(c.slots) == 0 {
			if err := w.Flush(); err != nil {
				broken = true
				c.cancel()
				c.nc.Close()
			}
		}
	}
}

// written releases s's memory, once its answer is written or will not be.
func (s *slot) written() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
	s.more = nil
}

// writeSlot writes an answer: through w, or, when it has pieces, after w is
// flushed, with one vectored write of them all.
func writeSlot(w *bufio.Writer, nc net.Conn, s *slot) error {
	if len(s.more) == 0 {
		_, err := w.Write(s.buf)
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	bufs := make(net.Buffers, 0, 1+len(s.more))
	bufs = append(append(bufs, s.buf), s.more...)
	_, err := bufs.WriteTo(nc)
	return err
}

func (c *conn) readLoop() error {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.l.cfg.IdleTimeout)); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, sizeBuf[:1]); err != nil {
			return err
		}
		// The rest of a request must follow within ReadTimeout.
		if err := c.nc.SetReadDeadline(time.Now().Add(c.l.cfg.ReadTimeout)); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, sizeBuf[1:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		least := int32(8)
		if c.rawSASL {
			least = 1 // a raw SASL token, not a request
		}
		if size < least || size > c.l.cfg.MaxRequestBytes {
			return fmt.Errorf("request of %d bytes is outside [%d, %d]", size, least, c.l.cfg.MaxRequestBytes)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if err := c.handle(buf); err != nil {
			return err
		}
	}
}

// header is a request header (v1 or v2).
type header struct {
	key, version  int16
	correlationID int32
	clientID      string
}

// parseHeader reads a request header and returns the body after it. Request header
// v2 (flexible versions) has tagged fields after the client id.
func parseHeader(b []byte) (header, []byte, error) {
	var h header
	if len(b) < 10 {
		return h, nil, errors.New("request header too short")
	}
	h.key = int16(binary.BigEndian.Uint16(b))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(b[4:]))
	n := int16(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if n > 0 {
		if int(n) > len(b) {
			return h, nil, errors.New("request header: client id past the end")
		}
		h.clientID = string(b[:n])
		b = b[n:]
	} else if n < -1 {
		return h, nil, errors.New("request header: bad client id length")
	}
	return h, b, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errors.New("bad tagged fields")
	}
	b = b[n:]
	for ; num > 0; num-- {
		_, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("bad tagged field")
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errors.New("bad tagged field size")
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// decodeBody decodes the body of a request whose header is h; an API or version
// the listener neither implements nor refuses (tooOld) is an error.
func decodeBody(h header, body []byte) (kmsg.Request, error) {
	if !supported(h.key, h.version) && !refused(h.key, h.version) {
		return nil, fmt.Errorf("%w: api key %d version %d is not supported", errClose, h.key, h.version)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	var err error
	if req.IsFlexible() {
		if body, err = skipTags(body); err != nil {
			return nil, fmt.Errorf("request %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("request %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return req, nil
}

// handle parses one request and queues its answer.
func (c *conn) handle(buf []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("request handling panicked: %v", p)
			c.log.Error("kafka request handling panicked", "err", err)
		}
	}()
	if c.behind != nil {
		close(c.behind)
		c.behind = nil
	}
	if c.rawSASL {
		return c.rawAuthenticate(buf)
	}
	h, body, err := parseHeader(buf)
	if err != nil {
		return err
	}
	if !c.started {
		c.started = true
		c.clientID = h.clientID
	}
	if c.l.cfg.Auth != nil && !c.authed && !saslOpen(h.key) {
		return c.refuseUnauthenticated(h.key)
	}
	if h.key == kmsg.ApiVersions.Int16() && !supported(h.key, h.version) {
		// Kafka answers an ApiVersions it does not know the version of with a v0
		// answer: UNSUPPORTED_VERSION and the versions it has, so the client can
		// ask again with one of them.
		resp := apiVersionsResponse(0, c.l.cfg.Auth != nil)
		resp.ErrorCode = codeUnsupportedVersion
		h.version = 0
		c.queueNow(h, resp)
		return nil
	}
	req, err := decodeBody(h, body)
	if err != nil {
		return err
	}
	if refused(h.key, h.version) {
		return c.refuseOld(h, req)
	}
	ctx := c.ctx
	if h.key == kmsg.Metadata.Int16() {
		c.behind = make(chan struct{})
		ctx = context.WithValue(ctx, behindKey{}, c.behind)
	}
	rest := apis[h.key].handle(ctx, c, req)
	s := &slot{done: make(chan struct{})}
	select {
	case c.slots <- s:
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
	// A Metadata answer is read when the answers ahead of it on the connection
	// are ready, as a Kafka broker, handling one request of a connection at a
	// time, reads it: it goes out after them, and read on arrival it would be
	// as old as the slowest of them (a FindCoordinator waiting 5 s for a lost
	// coordinator, say) and name leaders the client has since heard were
	// replaced. librdkafka 2.0.2, told a partition's new leader, then the lost
	// one, then the new one again, stays with the lost one's broker
	// (docs/kafka.md).
	for len(c.ahead) > 0 && isDone(c.ahead[0]) {
		c.ahead = c.ahead[1:]
	}
	var ahead []*slot
	if h.key == kmsg.Metadata.Int16() {
		ahead = slices.Clone(c.ahead)
	}
	c.ahead = append(c.ahead, s)
	go func() {
		defer close(s.done)
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("kafka request handling panicked", "err", fmt.Errorf("%v", p))
				c.cancel()
				c.nc.Close()
			}
		}()
		for _, a := range ahead {
			select {
			case <-a.done:
			case <-c.ctx.Done():
				return
			}
		}
		resp := rest()
		if resp != nil {
			c.l.observe(h.key, answered(resp))
			parts := frameParts(h, resp)
			s.buf, s.more = parts[0], parts[1:]
			if a, ok := resp.(*fetchAnswer); ok && len(a.releases) > 0 {
				s.release = a.release
			}
		}
	}()
	if c.closing != nil {
		// The answer is queued: the write loop sends it before the connection
		// closes.
		return fmt.Errorf("%w: %w", errClose, c.closing)
	}
	return nil
}

// refuseOld answers a request of a version tooOld, sent by a client before
// Kafka 0.11 (or pinned to such a release), with its refusal: every partition
// gets an error code and nothing is stored or read, so the client fails with a
// clear error instead of a closed connection. The connection's first such
// request is logged, with the client id, to find the client to upgrade. An
// acks=0 produce gets no answer: the connection is closed, as Kafka closes the
// connection of an acks=0 produce that failed, so that the client notices.
func (c *conn) refuseOld(h header, req kmsg.Request) error {
	why := fmt.Errorf("%s v%d is older than qxd serves: records before RecordBatch v2 (Kafka clients before 0.11) are not supported; upgrade the client or set its protocol version to 0.11 or later",
		kmsg.NameForKey(h.key), h.version)
	if !c.toldTooOld {
		c.toldTooOld = true
		c.log.Info("kafka client too old", "remote", c.nc.RemoteAddr().String(), "client", h.clientID, "err", why)
	}
	resp := refusedOld[h.key].refuse(req)
	if resp == nil {
		return fmt.Errorf("%w: %w", errClose, why)
	}
	c.queueNow(h, resp)
	return nil
}

// queueNow queues an answer that is ready.
func (c *conn) queueNow(h header, resp kmsg.Response) {
	c.l.observe(h.key, resp)
	s := &slot{done: make(chan struct{}), buf: frame(h, resp)}
	close(s.done)
	select {
	case c.slots <- s:
	case <-c.ctx.Done():
	}
}

// isDone reports whether s's answer is ready.
func isDone(s *slot) bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// frame encodes resp with its size and response header. Response header v1 (with
// tagged fields) goes with flexible versions, except for ApiVersions, whose
// response header is always v0 so that any client can read it.
func frame(h header, resp kmsg.Response) []byte {
	resp.SetVersion(h.version)
	b := make([]byte, 8, 256+sizeHint(resp))
	binary.BigEndian.PutUint32(b[4:], uint32(h.correlationID))
	if resp.IsFlexible() && h.key != kmsg.ApiVersions.Int16() {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// sizeHint is the bytes of record batches a response carries, so that framing a
// large fetch answer does not grow its buffer step by step.
func sizeHint(resp kmsg.Response) int {
	f, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 0
	for _, t := range f.Topics {
		for _, p := range t.Partitions {
			n += len(p.RecordBatches) + 64
		}
	}
	return n
}

// ready returns a second stage that answers resp.
func ready(resp kmsg.Response) func() kmsg.Response { return func() kmsg.Response { return resp } }
