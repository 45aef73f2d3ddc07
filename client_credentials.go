// Credentials and TLS: the options that say who the client is and how it
// connects, turned into nats.go options, and the errors of a failed connection
// they explain. Authorization (what the identity may do) is in client_auth.go.

package qxd

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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

// UserInfo authenticates as user with password. Default: no credentials.
func UserInfo(user, password string) ClientOption {
	return func(c *clientConfig) { c.auth.user, c.auth.password = user, password }
}

// Token authenticates with a token. Default: no credentials.
func Token(token string) ClientOption {
	return func(c *clientConfig) { c.auth.token = token }
}

// CredsFile authenticates with a NATS credentials file: a .creds file holding a
// user JWT and its nkey seed (as nsc writes them), or a file holding only a user
// nkey seed ("SU…"). Default: no credentials.
func CredsFile(path string) ClientOption {
	return func(c *clientConfig) { c.auth.creds = path }
}

// TLS connects over TLS. caFile is the PEM file of the authority that signed
// the node's certificate ("" trusts the system's authorities); certFile and keyFile
// are the client's certificate and key for nodes that require mutual TLS ("": none).
// Default: plain text, unless the node requires TLS, in which case its certificate
// must be trusted by the system.
func TLS(caFile, certFile, keyFile string) ClientOption {
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
// a creds or seed file (CredsFile), for plain NATS clients of a qxd node.
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
