package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// On a node with users (server.Config.Auth), every path but the probes takes HTTP
// basic authentication, checked against the node's users as its NATS and Kafka
// ports check them (the same bcrypt hashes; an empty user name with a token as
// password checks the node's tokens). What a user may then do is its grant, as on
// the other ports: any user sees the cluster, the topic list and the metrics; a
// topic's page needs a right on it, its records the consume right, a change the
// admin right on it, a group the group right, bridges admin on every topic.

// authCacheTTL is how long a checked password is remembered: the console asks
// several times a second, and each bcrypt comparison costs tens of milliseconds.
const authCacheTTL = time.Minute

// authCacheMax bounds the remembered passwords; past it, the cache starts over.
const authCacheMax = 1024

// realm is the basic-authentication realm browsers show.
const realm = `Basic realm="qxd", charset="UTF-8"`

// principal is who makes a request. grant is nil when the node authenticates no
// one: everything is allowed, as on its NATS port.
type principal struct {
	name  string
	grant *semantics.Grant
}

type principalKey struct{}

// who returns the principal of req.
func who(req *http.Request) principal {
	p, _ := req.Context().Value(principalKey{}).(principal)
	return p
}

// authn authenticates the requests of a secured node.
type authn struct {
	h   server.Host
	tls bool // the port serves TLS

	mu    sync.Mutex
	cache map[[32]byte]cachedAuth
}

type cachedAuth struct {
	p  principal
	at time.Time
}

// wrap authenticates each request before next sees it.
func (a *authn) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !a.h.AuthEnabled() {
			next.ServeHTTP(w, req)
			return
		}
		if !a.tls && !loopback(req.RemoteAddr) {
			fail(w, http.StatusForbidden, errors.New("this node has users, and a password sent over plain HTTP from another host travels in clear: "+
				"turn TLS on for the HTTP port (http { tls { cert, key } } in the config file, or the node's tls), or connect from the node's host"))
			return
		}
		user, pw, ok := req.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", realm)
			fail(w, http.StatusUnauthorized, errors.New("this node has users: sign in with a user name and password (HTTP basic authentication), or an empty user name and a token"))
			return
		}
		p, err := a.check(user, pw)
		if err != nil {
			a.h.Logger().Warn("http client refused", "remote", req.RemoteAddr, "err", err)
			w.Header().Set("WWW-Authenticate", realm)
			fail(w, http.StatusUnauthorized, errors.New("user name or password not accepted: sign in as one of the node's users"))
			return
		}
		next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), principalKey{}, p)))
	})
}

// check checks a user and password, remembering those accepted for authCacheTTL
// (by a hash of both, never the password itself).
func (a *authn) check(user, pw string) (principal, error) {
	k := sha256.Sum256([]byte(user + "\x00" + pw))
	a.mu.Lock()
	c, ok := a.cache[k]
	a.mu.Unlock()
	if ok && time.Since(c.at) < authCacheTTL {
		return c.p, nil
	}
	name, g, err := a.h.Authenticate(user, pw)
	if err != nil {
		return principal{}, err
	}
	p := principal{name: name, grant: &g}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) >= authCacheMax {
		a.cache = map[[32]byte]cachedAuth{}
	}
	a.cache[k] = cachedAuth{p: p, at: time.Now()}
	a.mu.Unlock()
	return p, nil
}

// loopback reports whether a request's remote address is on this host.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// allows reports whether p may do op on name (a topic, or a group for OpGroup).
func (p principal) allows(op semantics.Operation, name string) bool {
	return p.grant == nil || p.grant.Allows(op, name)
}

// describes reports whether p may see topic: any right on it, as the Kafka port
// has it (Kafka's Describe is implied by Read, Write and Alter).
func (p principal) describes(topic string) bool {
	return p.allows(semantics.OpProduce, topic) || p.allows(semantics.OpConsume, topic) || p.allows(semantics.OpAdmin, topic)
}

// adminAll reports whether p has admin on every topic, which cluster-wide
// operations (bridges) need.
func (p principal) adminAll() bool {
	return p.grant == nil || hasAll(p.grant.Admin)
}

func hasAll(l []string) bool {
	for _, s := range l {
		if s == semantics.AllPattern {
			return true
		}
	}
	return false
}

// topicRight is nil when p may do op on topic, else TOPIC_AUTHORIZATION_FAILED
// naming the user, the right and the topic.
func (p principal) topicRight(op semantics.Operation, topic string) error {
	if p.allows(op, topic) {
		return nil
	}
	return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "user %q has no %s right on topic %q: ask for one, or sign in as a user with it", p.name, op, topic)
}

// describeRight is topicRight for any right on topic.
func (p principal) describeRight(topic string) error {
	if p.describes(topic) {
		return nil
	}
	return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "user %q has no right on topic %q: ask for one, or sign in as a user with it", p.name, topic)
}

// groupRight is nil when p may use group, else GROUP_AUTHORIZATION_FAILED.
func (p principal) groupRight(group string) error {
	if p.allows(semantics.OpGroup, group) {
		return nil
	}
	return semantics.Errorf(semantics.ErrGroupAuthorizationFailed, "user %q has no right on group %q: ask for one, or sign in as a user with it", p.name, group)
}

// clusterRight is nil when p may do a cluster-wide operation (what).
func (p principal) clusterRight(what string) error {
	if p.adminAll() {
		return nil
	}
	return semantics.Errorf(semantics.ErrClusterAuthorizationFailed, "user %q may not %s: that needs admin on every topic (\"*\")", p.name, what)
}

// Me is the body of GET /api/me: who the console speaks for and what it may do.
type Me struct {
	// Secured is true on a node with users; User and Grant are then the signed-in
	// user's.
	Secured bool             `json:"secured"`
	User    string           `json:"user,omitempty"`
	Grant   *semantics.Grant `json:"grant,omitempty"`
}
