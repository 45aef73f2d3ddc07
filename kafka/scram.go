package kafka

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/qxd-io/qxd/semantics"
)

// The SASL mechanisms the listener offers.
const (
	MechPlain       = "PLAIN"
	MechSCRAMSHA256 = "SCRAM-SHA-256"
	MechSCRAMSHA512 = "SCRAM-SHA-512"
)

// mechanisms are the SASL mechanisms offered, in the order SaslHandshake lists them.
var mechanisms = []string{MechPlain, MechSCRAMSHA256, MechSCRAMSHA512}

// SCRAM iteration counts Kafka accepts (ScramMechanism's minIterations and
// maxIterations); DefaultSCRAMIterations is what `kafka-configs` uses.
const (
	MinSCRAMIterations     = 4096
	MaxSCRAMIterations     = 16384
	DefaultSCRAMIterations = 4096
)

// SCRAMCredential is what a server stores for a user to check a SCRAM exchange
// (RFC 5802): the salt and iteration count of the salted password, and the keys
// derived from it. The password itself cannot be recovered from it.
type SCRAMCredential struct {
	Mechanism  string // MechSCRAMSHA256 or MechSCRAMSHA512
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// hashOf returns the hash of a SCRAM mechanism, and its size.
func hashOf(mechanism string) (func() hash.Hash, int, error) {
	switch mechanism {
	case MechSCRAMSHA256:
		return sha256.New, sha256.Size, nil
	case MechSCRAMSHA512:
		return sha512.New, sha512.Size, nil
	}
	return nil, 0, fmt.Errorf("SCRAM mechanism %q is not one of %s, %s", mechanism, MechSCRAMSHA256, MechSCRAMSHA512)
}

// NewSCRAMCredential salts password with a random salt and derives its SCRAM
// credential for mechanism, as Kafka's kafka-configs --add-config does. The
// password is used as given (no SASLprep), as Kafka's own ScramFormatter does.
func NewSCRAMCredential(mechanism, password string, iterations int) (SCRAMCredential, error) {
	_, size, err := hashOf(mechanism)
	if err != nil {
		return SCRAMCredential{}, err
	}
	salt := make([]byte, size)
	rand.Read(salt)
	return scramCredential(mechanism, password, salt, iterations)
}

// scramCredential derives the credential of password with salt (RFC 5802 §3):
// SaltedPassword := Hi(password, salt, i), StoredKey := H(HMAC(SaltedPassword,
// "Client Key")), ServerKey := HMAC(SaltedPassword, "Server Key").
func scramCredential(mechanism, password string, salt []byte, iterations int) (SCRAMCredential, error) {
	h, size, err := hashOf(mechanism)
	if err != nil {
		return SCRAMCredential{}, err
	}
	if iterations < MinSCRAMIterations || iterations > MaxSCRAMIterations {
		return SCRAMCredential{}, fmt.Errorf("SCRAM iterations %d: give %d to %d, as Kafka accepts", iterations, MinSCRAMIterations, MaxSCRAMIterations)
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, size)
	if err != nil {
		return SCRAMCredential{}, fmt.Errorf("SCRAM credential: %w", err)
	}
	clientKey := hmacOf(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return SCRAMCredential{Mechanism: mechanism, Salt: salt, Iterations: iterations, StoredKey: stored.Sum(nil),
		ServerKey: hmacOf(h, salted, "Server Key")}, nil
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// String is the credential in Kafka's stored form,
// "salt=…,stored_key=…,server_key=…,iterations=N" (base64), which
// ParseSCRAMCredential reads.
func (s SCRAMCredential) String() string {
	enc := base64.StdEncoding.EncodeToString
	return "salt=" + enc(s.Salt) + ",stored_key=" + enc(s.StoredKey) + ",server_key=" + enc(s.ServerKey) +
		",iterations=" + strconv.Itoa(s.Iterations)
}

// ParseSCRAMCredential reads a credential of mechanism in Kafka's stored form
// (see String).
func ParseSCRAMCredential(mechanism, s string) (SCRAMCredential, error) {
	_, size, err := hashOf(mechanism)
	if err != nil {
		return SCRAMCredential{}, err
	}
	c := SCRAMCredential{Mechanism: mechanism}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return c, fmt.Errorf("%s credential: %q is not key=value; the form is salt=…,stored_key=…,server_key=…,iterations=N ('qxd passwd --mechanism %s' makes one)", mechanism, kv, mechanism)
		}
		if seen[k] {
			return c, fmt.Errorf("%s credential: %s is given twice", mechanism, k)
		}
		seen[k] = true
		var dst *[]byte
		switch k {
		case "salt":
			dst = &c.Salt
		case "stored_key":
			dst = &c.StoredKey
		case "server_key":
			dst = &c.ServerKey
		case "iterations":
			if c.Iterations, err = strconv.Atoi(v); err != nil || c.Iterations < MinSCRAMIterations || c.Iterations > MaxSCRAMIterations {
				return c, fmt.Errorf("%s credential: iterations %q must be a number from %d to %d", mechanism, v, MinSCRAMIterations, MaxSCRAMIterations)
			}
			continue
		default:
			return c, fmt.Errorf("%s credential: unknown key %q; the keys are salt, stored_key, server_key, iterations", mechanism, k)
		}
		// Kafka's own tooling pads base64, hand-made ones may not.
		if *dst, err = base64.StdEncoding.DecodeString(v); err != nil {
			if *dst, err = base64.RawStdEncoding.DecodeString(v); err != nil {
				return c, fmt.Errorf("%s credential: %s is not base64", mechanism, k)
			}
		}
	}
	for _, k := range []string{"salt", "stored_key", "server_key", "iterations"} {
		if !seen[k] {
			return c, fmt.Errorf("%s credential: %s is missing; the form is salt=…,stored_key=…,server_key=…,iterations=N", mechanism, k)
		}
	}
	if len(c.Salt) == 0 {
		return c, fmt.Errorf("%s credential: the salt is empty", mechanism)
	}
	if len(c.StoredKey) != size || len(c.ServerKey) != size {
		return c, fmt.Errorf("%s credential: stored_key and server_key must be %d bytes each (is it a credential of the other SCRAM mechanism?)", mechanism, size)
	}
	return c, nil
}

// saslSession is one SASL exchange of a connection, from the SaslHandshake that
// chose its mechanism until it authenticated or failed.
type saslSession interface {
	// step takes the client's next token and returns the answer; done is true
	// once the client is authenticated. An error ends the exchange (and the
	// connection).
	step(ctx context.Context, tok []byte) (reply []byte, done bool, err error)
}

// newSASLSession starts an exchange of mechanism, one of mechanisms.
func (c *conn) newSASLSession(mechanism string) saslSession {
	if mechanism == MechPlain {
		return plainSession{c}
	}
	return &scramSession{c: c, mech: mechanism}
}

// plainSession is SASL PLAIN: one token, no answer.
type plainSession struct{ c *conn }

func (p plainSession) step(ctx context.Context, tok []byte) ([]byte, bool, error) {
	return nil, true, p.c.authenticatePlain(ctx, tok)
}

// scramSession is a SCRAM exchange (RFC 5802, as Kafka does it: no channel
// binding): client-first, server-first, client-final, server-final.
type scramSession struct {
	c    *conn
	mech string
	// After the client-first: who, the credential to check against, and the
	// messages the proof covers.
	user            string
	grant           semantics.Grant
	cred            SCRAMCredential
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string // client's nonce + server's
	// refusal is why the user's credential was not found; the exchange then runs
	// on with a made-up one, so the client learns no more than "wrong password".
	refusal error
	// serverNonce makes the server's part of the nonce. Default: 24 random bytes.
	serverNonce func() string
}

func (s *scramSession) step(ctx context.Context, tok []byte) ([]byte, bool, error) {
	if s.serverFirst == "" {
		reply, err := s.first(ctx, string(tok))
		if err != nil {
			return nil, false, s.refuse(err)
		}
		return []byte(reply), false, nil
	}
	reply, err := s.final(string(tok))
	if err == nil && s.refusal != nil {
		err = s.refusal // a decoy's proof cannot verify; be sure
	}
	if err != nil {
		return nil, false, s.refuse(err)
	}
	s.c.user, s.c.grant = s.user, &s.grant
	return []byte(reply), true, nil
}

// refuse logs why and returns what the client is told.
func (s *scramSession) refuse(why error) error {
	if s.refusal != nil {
		why = s.refusal
	}
	s.c.log.Warn("kafka client refused", "remote", s.c.nc.RemoteAddr().String(), "err", fmt.Errorf("%s user %q: %w", s.mech, s.user, why))
	return semantics.Errorf(semantics.ErrAuthenticationFailed, "authentication failed for user %q with %s: wrong user name or password, or a malformed SCRAM message", s.user, s.mech)
}

// first reads the client-first message, gs2-header client-first-bare:
// "n,[a=authzid],n=user,r=nonce[,extensions]", and answers the server-first,
// "r=nonce,s=salt,i=iterations".
func (s *scramSession) first(ctx context.Context, msg string) (string, error) {
	flag, rest, ok1 := strings.Cut(msg, ",")
	authz, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return "", errors.New("client-first message has no gs2 header")
	}
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		return "", errors.New("channel binding is not supported (as in Kafka): use SCRAM without -PLUS")
	default:
		return "", fmt.Errorf("client-first message: bad gs2 flag %q", flag)
	}
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) == 2 {
		return "", errors.New("client-first message must be n=user,r=nonce")
	}
	user, err := saslName(attrs[0][2:])
	if err != nil {
		return "", err
	}
	s.user = user
	if authz != "" {
		a, err := saslName(strings.TrimPrefix(authz, "a="))
		if err != nil || !strings.HasPrefix(authz, "a=") {
			return "", fmt.Errorf("client-first message: bad authorization id %q", authz)
		}
		if a != user {
			return "", fmt.Errorf("user %q may not act as %q: leave the authorization id empty", user, a)
		}
	}
	for _, ext := range attrs[2:] {
		if ext == "tokenauth=true" {
			return "", errors.New("delegation tokens are not supported")
		}
	}
	cred, grant, err := s.c.l.cfg.Auth.SCRAM(ctx, s.mech, user)
	if err != nil {
		s.refusal = err
		cred = s.c.l.decoy(s.mech, user)
	}
	s.cred, s.grant = cred, grant
	if s.serverNonce == nil {
		s.serverNonce = randomNonce
	}
	s.gs2Header = flag + "," + authz + ","
	s.clientFirstBare = bare
	s.nonce = attrs[1][2:] + s.serverNonce()
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(cred.Iterations)
	return s.serverFirst, nil
}

// final reads the client-final message, "c=gs2header,r=nonce[,extensions],p=proof",
// checks the proof against the stored key and answers the server-final,
// "v=signature".
func (s *scramSession) final(msg string) (string, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return "", errors.New("client-final message has no proof")
	}
	withoutProof := msg[:i]
	proof, err := base64.StdEncoding.DecodeString(msg[i+3:])
	if err != nil {
		return "", errors.New("client-final message: the proof is not base64")
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", errors.New("client-final message must be c=…,r=…,p=…")
	}
	if cb, err := base64.StdEncoding.DecodeString(attrs[0][2:]); err != nil || string(cb) != s.gs2Header {
		return "", errors.New("client-final message: channel binding does not match the client-first's gs2 header")
	}
	// Kafka accepts a nonce that ends with the server's (librdkafka sends its own
	// nonce before the server's whole one); the proof covers what was sent.
	if !strings.HasSuffix(attrs[1][2:], s.nonce) {
		return "", errors.New("client-final message: the nonce is not the server's")
	}
	h, _, _ := hashOf(s.mech)
	authMsg := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	sig := hmacOf(h, s.cred.StoredKey, authMsg)
	if len(proof) != len(sig) {
		return "", errors.New("client-final message: the proof has the wrong size")
	}
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = proof[i] ^ sig[i]
	}
	stored := h()
	stored.Write(clientKey)
	if !hmac.Equal(stored.Sum(nil), s.cred.StoredKey) {
		return "", errors.New("the proof does not verify: wrong password")
	}
	return "v=" + base64.StdEncoding.EncodeToString(hmacOf(h, s.cred.ServerKey, authMsg)), nil
}

// saslName decodes a SCRAM user name, where "=2C" is "," and "=3D" is "=".
func saslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		if s == "" {
			return "", errors.New("the user name is empty")
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("user name %q: '=' must be written =3D, ',' =2C", s)
		}
		i += 2
	}
	return b.String(), nil
}

func randomNonce() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// decoy is the made-up credential of a user the authenticator has none for: the
// same for the same name while the listener runs, so that asking twice does not
// tell a missing user from one whose password was wrong.
func (l *Listener) decoy(mechanism, user string) SCRAMCredential {
	_, size, _ := hashOf(mechanism)
	m := hmac.New(sha512.New, l.decoyKey[:])
	m.Write([]byte(mechanism + "\x00" + user))
	sum := m.Sum(nil)
	keys := make([]byte, 2*size)
	rand.Read(keys)
	return SCRAMCredential{Mechanism: mechanism, Salt: sum[:size], Iterations: DefaultSCRAMIterations, StoredKey: keys[:size], ServerKey: keys[size:]}
}

// errSASLFailed marks the end of a connection whose SASL authentication failed.
var errSASLFailed = errors.New("SASL authentication failed")
