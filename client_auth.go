package qxd

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/qxd-io/qxd/semantics"
)

// authConfig holds the credentials and TLS settings of Connect.
type authConfig struct {
	user, password string
	token          string
	creds          string
	tlsCA          string
	tlsCert        string
	tlsKey         string
}

// WithUserInfo authenticates as user with password. Default: no credentials.
func WithUserInfo(user, password string) ClientOption {
	return func(c *clientConfig) { c.auth.user, c.auth.password = user, password }
}

// WithToken authenticates with a token. Default: no credentials.
func WithToken(token string) ClientOption {
	return func(c *clientConfig) { c.auth.token = token }
}

// WithCredsFile authenticates with a NATS credentials file: a .creds file holding a
// user JWT and its nkey seed (as nsc writes them), or a file holding only a user
// nkey seed ("SU…"). Default: no credentials.
func WithCredsFile(path string) ClientOption {
	return func(c *clientConfig) { c.auth.creds = path }
}

// WithTLS connects over TLS. caFile is the PEM file of the authority that signed
// the node's certificate ("" trusts the system's authorities); certFile and keyFile
// are the client's certificate and key for nodes that require mutual TLS ("": none).
// Default: plain text, unless the node requires TLS, in which case its certificate
// must be trusted by the system.
func WithTLS(caFile, certFile, keyFile string) ClientOption {
	return func(c *clientConfig) { c.auth.tlsCA, c.auth.tlsCert, c.auth.tlsKey = caFile, certFile, keyFile }
}

// natsOptions turns a into nats.go options, checking the files it names now so that
// a missing or expired file is reported before connecting.
func (a authConfig) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	n := 0
	if a.user != "" || a.password != "" {
		if a.user == "" {
			return nil, errors.New("a password is given without a user: give the user too (--user, QXD_USER)")
		}
		opts = append(opts, nats.UserInfo(a.user, a.password))
		n++
	}
	if a.token != "" {
		opts = append(opts, nats.Token(a.token))
		n++
	}
	if a.creds != "" {
		o, err := credsOption(a.creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
		n++
	}
	if n > 1 {
		return nil, errors.New("give one kind of credentials: a user and password, a token or a creds file")
	}
	if a.tlsCA != "" {
		if _, err := os.Stat(a.tlsCA); err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		opts = append(opts, nats.RootCAs(a.tlsCA))
	}
	if (a.tlsCert == "") != (a.tlsKey == "") {
		return nil, fmt.Errorf("a client certificate needs both its certificate and key files (got cert %q, key %q)", a.tlsCert, a.tlsKey)
	}
	if a.tlsCert != "" {
		for _, f := range []string{a.tlsCert, a.tlsKey} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("TLS client certificate: %w", err)
			}
		}
		opts = append(opts, nats.ClientCert(a.tlsCert, a.tlsKey))
	}
	if a.tlsCA != "" || a.tlsCert != "" {
		opts = append(opts, nats.Secure())
	}
	return opts, nil
}

func (a authConfig) usesTLS() bool { return a.tlsCA != "" || a.tlsCert != "" }

// credsOption reads a creds or seed file and refuses one whose JWT has expired.
func credsOption(path string) (nats.Option, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("creds file: %w", err)
	}
	if _, err := nkeys.ParseDecoratedNKey(data); err != nil {
		return nil, fmt.Errorf("creds file %s holds no user nkey seed: %v", path, err)
	}
	if !bytes.Contains(data, []byte("BEGIN NATS USER JWT")) {
		return nats.NkeyOptionFromSeed(path)
	}
	tok, err := nkeys.ParseDecoratedJWT(data)
	if err != nil {
		return nil, fmt.Errorf("creds file %s: %w", path, err)
	}
	if claims, err := peekJWT(tok); err == nil && claims.Expires > 0 && time.Unix(claims.Expires, 0).Before(time.Now()) {
		return nil, semantics.Errorf(semantics.ErrAuthenticationFailed,
			"the credentials in %s (user %q) expired at %s: get new credentials from your administrator",
			path, claims.Name, time.Unix(claims.Expires, 0).UTC().Format(time.RFC3339))
	}
	return credsJWTOption(tok, data)
}

// credsJWTOption authenticates with a user JWT and its seed. nats-server drops
// the CONNECT's jwt field outside operator mode (qxd keeps every identity in the
// global account), so the JWT goes as the password, with the user's nkey and its
// signature of the nonce; the node checks the JWT's issuer, expiry and subject.
func credsJWTOption(tok string, data []byte) (nats.Option, error) {
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return func(o *nats.Options) error {
		if err := nats.Nkey(pub, kp.Sign)(o); err != nil {
			return err
		}
		o.Password = tok
		return nil
	}, nil
}

// CredsOptions returns the nats.go options with which the SDK authenticates with
// a creds or seed file (WithCredsFile), for plain NATS clients of a qxd node.
func CredsOptions(path string) (nats.Option, error) { return credsOption(path) }

type jwtClaims struct {
	Subject string `json:"sub"`
	Name    string `json:"name"`
	Expires int64  `json:"exp"`
}

// peekJWT reads a JWT's claims without checking its signature (the node does).
func peekJWT(tok string) (jwtClaims, error) {
	var c jwtClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// inboxOption gives the connection the inbox prefix the node allows its identity
// (semantics.InboxPrefix), unless the options set one. Without credentials, the
// default.
func inboxOption(opts []nats.Option) nats.Option {
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		_ = opt(&o)
	}
	if o.InboxPrefix != "" {
		return nil
	}
	switch {
	case o.UserJWT != nil:
		if tok, err := o.UserJWT(); err == nil {
			if c, err := peekJWT(tok); err == nil && c.Subject != "" {
				return nats.CustomInboxPrefix(semantics.InboxPrefix("k", c.Subject))
			}
		}
	case o.Nkey != "":
		return nats.CustomInboxPrefix(semantics.InboxPrefix("k", o.Nkey))
	case o.User != "":
		return nats.CustomInboxPrefix(semantics.InboxPrefix("u", o.User))
	case o.Token != "":
		return nats.CustomInboxPrefix(semantics.InboxPrefix("t", o.Token))
	}
	return nil
}

// logAsyncErrors logs the connection's asynchronous errors (permission
// violations, slow consumer) at debug level instead of nats.go's default of
// printing them to stderr; WithNATSOptions(nats.ErrorHandler(…)) replaces it.
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

// connectError explains a failed connection that credentials or TLS caused; nil
// for other failures.
func connectError(servers string, err error, a authConfig) error {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	msg := err.Error()
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired):
		how := "this node requires credentials: give --user and --password, --token or --creds (QXD_USER, QXD_PASSWORD, QXD_TOKEN, QXD_CREDS)"
		switch {
		case a.user != "":
			how = fmt.Sprintf("check the password of user %q", a.user)
		case a.token != "":
			how = "check the token"
		case a.creds != "":
			how = fmt.Sprintf("the credentials in %s are unknown to the node, expired or revoked", a.creds)
		}
		return semantics.Errorf(semantics.ErrAuthenticationFailed, "connect to %s: authentication failed (%v): %s", servers, err, how)
	case errors.As(err, &unknownCA):
		return semantics.Errorf(semantics.ErrAuthenticationFailed,
			"connect to %s: the node's TLS certificate is not signed by an authority this client trusts (%v): pass the CA file with --tls-ca (QXD_TLS_CA)", servers, err)
	case errors.As(err, &hostErr):
		return semantics.Errorf(semantics.ErrAuthenticationFailed,
			"connect to %s: the node's TLS certificate is not valid for this address (%v): connect by a name the certificate lists", servers, err)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("connect to %s: TLS was asked for (--tls-ca, --tls-cert) but the node does not offer it: %w", servers, err)
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"),
		strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "certificate"),
		// A node that refuses the client's certificate may just close the
		// connection once the handshake is done.
		a.usesTLS() && strings.Contains(msg, "closed by remote after TLS handshake"):
		how := "the node requires a client certificate signed by its CA (mutual TLS): pass --tls-cert and --tls-key (QXD_TLS_CERT, QXD_TLS_KEY)"
		if a.tlsCert != "" {
			how = fmt.Sprintf("the node refused the client certificate %s: it must be signed by the CA the node trusts", a.tlsCert)
		}
		return semantics.Errorf(semantics.ErrAuthenticationFailed, "connect to %s: TLS handshake failed (%v): %s", servers, err, how)
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:"):
		return semantics.Errorf(semantics.ErrAuthenticationFailed, "connect to %s: TLS handshake failed: %v", servers, err)
	}
	return nil
}

// authz turns the NATS server's permission violations into qxd errors. A request
// to a subject the identity may not publish to is dropped by the server, which
// reports the violation asynchronously; authz ends the request at once with a
// not-authorized error naming the topic or group, instead of letting it time out.
type authz struct {
	nc *nats.Conn

	mu      sync.Mutex
	waiters map[string]map[*deniedWaiter]struct{}
	allowed map[string]time.Time // recent successful probes
}

type deniedWaiter struct {
	once   sync.Once
	denied chan struct{}
	cancel context.CancelFunc
}

var violationRe = regexp.MustCompile(`Publish to "([^"]+)"`)

// watchViolations chains a handler of permission violations before nc's own error
// handler.
func watchViolations(nc *nats.Conn) *authz {
	z := &authz{nc: nc, waiters: map[string]map[*deniedWaiter]struct{}{}, allowed: map[string]time.Time{}}
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			if m := violationRe.FindStringSubmatch(err.Error()); m != nil {
				z.deny(m[1])
			}
		}
		if prev != nil {
			prev(nc, sub, err)
		}
	})
	return z
}

func (z *authz) deny(subject string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for w := range z.waiters[subject] {
		w.once.Do(func() {
			close(w.denied)
			if w.cancel != nil {
				w.cancel()
			}
		})
	}
}

func (z *authz) watch(subject string, cancel context.CancelFunc) *deniedWaiter {
	w := &deniedWaiter{denied: make(chan struct{}), cancel: cancel}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.waiters[subject] == nil {
		z.waiters[subject] = map[*deniedWaiter]struct{}{}
	}
	z.waiters[subject][w] = struct{}{}
	return w
}

func (z *authz) unwatch(subject string, w *deniedWaiter) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.waiters[subject], w)
	if len(z.waiters[subject]) == 0 {
		delete(z.waiters, subject)
	}
}

func (w *deniedWaiter) isDenied() bool {
	select {
	case <-w.denied:
		return true
	default:
		return false
	}
}

// requestWatched is nc.RequestWithContext that fails at once with a not-authorized
// error when the server refuses the request's subject.
func (c *Client) requestWatched(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	if c.authz == nil {
		return c.nc.RequestWithContext(ctx, subject, data)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := c.authz.watch(subject, cancel)
	defer c.authz.unwatch(subject, w)
	m, err := c.nc.RequestWithContext(ctx, subject, data)
	if err != nil && w.isDenied() {
		return nil, deniedError(subject)
	}
	return m, err
}

// getTopicRecord reads a topic's record from the topics bucket, failing at once
// when the identity has no rights on the topic.
func (c *Client) getTopicRecord(ctx context.Context, name string) (jetstream.KeyValueEntry, error) {
	if c.authz == nil {
		return kvGet(ctx, c.topicsKV, semantics.TopicKey(name))
	}
	subject := semantics.KVDirectGetSubject(semantics.TopicsBucket, semantics.TopicKey(name))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := c.authz.watch(subject, cancel)
	defer c.authz.unwatch(subject, w)
	e, err := kvGet(ctx, c.topicsKV, semantics.TopicKey(name))
	if err != nil && w.isDenied() {
		return nil, deniedError(subject)
	}
	return e, err
}

// probeAllowedFor is how long a successful authorization probe is trusted.
const probeAllowedFor = 10 * time.Second

// authorizeTopic reports whether this client's identity may do op on name (a
// topic, or a group for semantics.OpGroup), with a not-authorized error naming it
// when not. It costs one round trip (cached for 10s when allowed) and nothing
// without authentication. Producers and consumers call it before they use a topic,
// so that a denied operation fails at once and clearly instead of timing out.
// probeTimeout bounds a rights probe when the caller's context has no deadline.
const probeTimeout = 5 * time.Second

func (c *Client) authorizeTopic(ctx context.Context, op semantics.Operation, name string) error {
	if c.authz == nil || !c.nc.AuthRequired() {
		return nil
	}
	subject := semantics.AuthzSubject(op, name)
	z := c.authz
	z.mu.Lock()
	ok := time.Since(z.allowed[subject]) < probeAllowedFor
	z.mu.Unlock()
	if ok {
		return nil
	}
	w := z.watch(subject, nil)
	defer z.unwatch(subject, w)
	if err := c.nc.Publish(subject, nil); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		// FlushWithContext needs a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}
	// The server answers the flush's ping after it refused the publish, and the
	// connection records the refusal before it reads the answer.
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return wrapNATSError(err)
	}
	denied := w.isDenied()
	if !denied {
		if last := c.nc.LastError(); last != nil && errors.Is(last, nats.ErrPermissionViolation) {
			denied = strings.Contains(last.Error(), `"`+subject+`"`)
			if !denied {
				// Another refusal came after ours: wait for ours to be handled.
				select {
				case <-w.denied:
					denied = true
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}
	if denied {
		return deniedError(subject)
	}
	z.mu.Lock()
	if len(z.allowed) > 4096 {
		clear(z.allowed)
	}
	z.allowed[subject] = time.Now()
	z.mu.Unlock()
	return nil
}

// deniedError is the not-authorized error for a refused subject, naming the topic
// or group and the right that is missing.
func deniedError(subject string) error {
	const ask = "ask an administrator for the right, or connect as another user"
	if op, tok := semantics.SplitTopicAPISubject(subject); tok != "" {
		verb, _ := semantics.CutSubject(op, semantics.APITopicPrefix)
		switch verb {
		case "add_partitions":
			verb = "add partitions to"
		case "alter_config":
			verb = "alter the config of"
		case "delete_records":
			verb = "trim"
		}
		need := "admin rights on the topic"
		if verb == "describe" {
			need = "a right on the topic"
		}
		return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "not authorized to %s topic %q: it needs %s; %s",
			verb, semantics.DecodeTopic(tok), need, ask)
	}
	if _, ok := semantics.CutSubject(subject, semantics.APIBridgePrefix); ok {
		return semantics.Errorf(semantics.ErrClusterAuthorizationFailed,
			"not authorized to manage bridges: bridges run with the node's rights, so they need admin rights on every topic (\"*\"); %s", ask)
	}
	if _, ok := semantics.CutSubject(subject, semantics.APIPrefix); ok {
		return semantics.Errorf(semantics.ErrClusterAuthorizationFailed, "not authorized for %s: it needs admin rights on every topic (\"*\"); %s", subject, ask)
	}
	if g, ok := semantics.GroupFromSubject(subject); ok {
		return semantics.Errorf(semantics.ErrGroupAuthorizationFailed, "not authorized to use consumer group %q: %s", g, ask)
	}
	if subject == semantics.GroupList {
		return semantics.Errorf(semantics.ErrGroupAuthorizationFailed, "not authorized to list consumer groups: it needs rights on a group; %s", ask)
	}
	if t, ok := semantics.TopicFromSubject(subject); ok {
		switch {
		case strings.HasPrefix(subject, semantics.WriterPrefix+"."), subject == semantics.AuthzSubject(semantics.OpProduce, t):
			return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "not authorized to produce to topic %q: %s", t, ask)
		case subject == semantics.AuthzSubject(semantics.OpAdmin, t):
			return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "not authorized to administer topic %q: %s", t, ask)
		case strings.HasPrefix(subject, semantics.Subject(semantics.JSDirectGetPrefix, semantics.KVStream(semantics.TopicsBucket))):
			return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "not authorized to use topic %q (no produce, consume or admin rights on it): %s", t, ask)
		default:
			return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "not authorized to consume from topic %q: %s", t, ask)
		}
	}
	return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "not authorized to publish to %s: %s", subject, ask)
}

// topicAPISubject is the per-topic admin subject of op for topic
// (semantics.TopicAPISubject). A name that is not a valid topic cannot be a
// subject token: its request goes on op's own subject, and the node explains
// what is wrong with the name.
func topicAPISubject(op, topic string) string {
	if semantics.ValidateTopicName(topic) != nil {
		return op
	}
	return semantics.TopicAPISubject(op, topic)
}
