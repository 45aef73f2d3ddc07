// Authorization: permission violations the server reports, turned into
// not-authorized errors that name the topic or group, and the probes that check a
// right before a producer or consumer uses a topic. Credentials and TLS are in
// client_credentials.go.

package qxd

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

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
	// An answer that does not come soon makes the client check its node (see
	// nodeCheck).
	defer c.check.awaiting()()
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
