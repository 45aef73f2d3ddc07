package kafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/qxd-io/qxd/semantics"
)

// Authenticator checks the credentials Kafka clients give with SASL. With one set in
// Config.Auth, a connection must authenticate before any request other than
// ApiVersions, SaslHandshake and SaslAuthenticate, and may then do what its Grant
// allows, checked per topic and per group with Kafka's authorization codes.
type Authenticator interface {
	// Plain checks a user name and password (SASL PLAIN) and returns the user's
	// rights; a refusal is an error saying why (it is logged, not sent).
	Plain(ctx context.Context, user, password string) (semantics.Grant, error)
	// SCRAM returns the stored credential of user for mechanism (MechSCRAMSHA256
	// or MechSCRAMSHA512) and the user's rights; an unknown user, or one without
	// a credential for mechanism, is an error saying why (logged, not sent).
	SCRAM(ctx context.Context, mechanism, user string) (SCRAMCredential, semantics.Grant, error)
}

// Kafka codes of authentication.
const (
	codeUnsupportedSASLMechanism int16 = 33
	codeIllegalSASLState         int16 = 34
)

// saslOpen reports whether key may be sent before a connection authenticated.
func saslOpen(key int16) bool {
	return key == 17 || key == 18 || key == 36 // SaslHandshake, ApiVersions, SaslAuthenticate
}

// clientHost is the client's address as Kafka's DescribeGroups shows it:
// "/" and the IP address.
func (c *conn) clientHost() string {
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		return "/" + a.IP.String()
	}
	return "/" + c.nc.RemoteAddr().String()
}

// secureTransport reports whether a password may cross c: over TLS, or from this
// machine (loopback).
func (c *conn) secureTransport() bool {
	if c.l.cfg.TLS != nil {
		return true
	}
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	return false
}

// allowTopic is nil when the connection may do op on topic, else
// TOPIC_AUTHORIZATION_FAILED naming both.
func (c *conn) allowTopic(op semantics.Operation, topic string) error {
	if c.grant == nil || c.grant.Allows(op, topic) {
		return nil
	}
	return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "user %q has no %s right on topic %q", c.user, op, topic)
}

// describesTopic reports whether the connection may see topic at all: any right on
// it (produce, consume or admin) lets it read the topic's metadata, as Kafka's
// Describe is implied by Read, Write and Alter.
func (c *conn) describesTopic(topic string) bool {
	return c.grant == nil || c.grant.Allows(semantics.OpProduce, topic) || c.grant.Allows(semantics.OpConsume, topic) ||
		c.grant.Allows(semantics.OpAdmin, topic)
}

// allowDescribeTopic is allowTopic for any right on topic.
func (c *conn) allowDescribeTopic(topic string) error {
	if c.describesTopic(topic) {
		return nil
	}
	return semantics.Errorf(semantics.ErrTopicAuthorizationFailed, "user %q has no right on topic %q", c.user, topic)
}

// allowGroup is nil when the connection may use group, else
// GROUP_AUTHORIZATION_FAILED.
func (c *conn) allowGroup(group string) error {
	if c.grant == nil || c.grant.Allows(semantics.OpGroup, group) {
		return nil
	}
	return semantics.Errorf(semantics.ErrGroupAuthorizationFailed, "user %q has no right on group %q", c.user, group)
}

// allowCluster is nil when the connection may do a cluster-wide operation (what),
// which takes admin on every topic ("*"), else CLUSTER_AUTHORIZATION_FAILED.
func (c *conn) allowCluster(what string) error {
	if c.grant == nil || hasAll(c.grant.Admin) {
		return nil
	}
	return semantics.Errorf(semantics.ErrClusterAuthorizationFailed, "user %q may not %s: that needs admin on every topic (\"*\")", c.user, what)
}

func hasAll(l []string) bool {
	for _, p := range l {
		if p == semantics.AllPattern {
			return true
		}
	}
	return false
}

// authenticatePlain checks a SASL PLAIN message ([authzid] NUL authcid NUL passwd,
// RFC 4616) and, when it is good, gives the connection the user's rights.
func (c *conn) authenticatePlain(ctx context.Context, msg []byte) error {
	var parts [][]byte
	start := 0
	for i, b := range msg {
		if b == 0 {
			parts = append(parts, msg[start:i])
			start = i + 1
		}
	}
	parts = append(parts, msg[start:])
	if len(parts) != 3 || len(parts[1]) == 0 {
		return semantics.Errorf(semantics.ErrAuthenticationFailed, "SASL PLAIN message is malformed: it must be [authzid] NUL user NUL password")
	}
	user := string(parts[1])
	if len(parts[0]) > 0 && string(parts[0]) != user {
		return semantics.Errorf(semantics.ErrAuthenticationFailed, "user %q may not act as %q: leave the authorization id empty", user, parts[0])
	}
	grant, err := c.l.cfg.Auth.Plain(ctx, user, string(parts[2]))
	if err != nil {
		c.log.Warn("kafka client refused", "remote", c.nc.RemoteAddr().String(), "err", err)
		return semantics.Errorf(semantics.ErrAuthenticationFailed, "authentication failed for user %q: wrong user name or password", user)
	}
	c.user, c.grant = user, &grant
	return nil
}

// refuseUnauthenticated is the error that ends a connection sending key before it
// authenticated, as Kafka closes it.
func (c *conn) refuseUnauthenticated(key int16) error {
	c.log.Warn("kafka client refused", "remote", c.nc.RemoteAddr().String(), "client", c.clientID,
		"err", fmt.Errorf("request key %d before SASL authentication: this listener needs SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) with a qxd user", key))
	return fmt.Errorf("%w: request key %d before SASL authentication", errClose, key)
}

// saslStep takes a client's next SASL token for the exchange a SaslHandshake
// started. A refusal ends the exchange; the caller closes the connection after
// answering, as Kafka does.
func (c *conn) saslStep(ctx context.Context, tok []byte) ([]byte, error) {
	reply, done, err := c.sasl.step(ctx, tok)
	if err != nil {
		c.sasl, c.rawSASL = nil, false
		return nil, err
	}
	if done {
		c.sasl, c.rawSASL, c.authed = nil, false, true
	}
	return reply, nil
}

// rawAuthenticate takes a raw SASL token that follows a SaslHandshake v0 (clients
// before SaslAuthenticate, such as kafka-python 2.0), outside Kafka's request
// framing, and answers with a raw token (empty for PLAIN). A refusal closes the
// connection without an answer, as Kafka does.
func (c *conn) rawAuthenticate(tok []byte) error {
	reply, err := c.saslStep(c.ctx, tok)
	if err != nil {
		return fmt.Errorf("%w: %v", errClose, err)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(reply)), uint32(len(reply)))
	s := &slot{done: make(chan struct{}), buf: append(buf, reply...)}
	close(s.done)
	select {
	case c.slots <- s:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}
