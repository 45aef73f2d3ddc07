package server

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// AuthConfig turns on client authentication: with at least one identity configured,
// every client must prove one, and may then do only what its grant allows (see
// semantics.Grant). The zero value: no authentication, every client may do anything.
//
// All identities live in NATS's global account, where qxd's streams are; the node's
// own services connect with a key generated at start that never leaves the process.
type AuthConfig struct {
	// Users authenticate with a user name and password. Passwords are bcrypt hashes.
	Users []UserAuth
	// Tokens authenticate with a secret token alone (plain or a bcrypt hash).
	Tokens []TokenAuth
	// NKeys authenticate by signing the server's challenge with an nkey (the SDK's
	// --creds with a seed file, or a user JWT whose key is listed here).
	NKeys []NKeyAuth
	// Accounts are trusted issuers of user JWTs (.creds files made with nsc or the
	// jwt library). A user JWT signed by one of them is accepted while it has not
	// expired; its permissions are those of the NKeys entry for its public key, or
	// else the account's.
	Accounts []AccountAuth
}

// UserAuth is a user name with a bcrypt-hashed password, and optionally the
// user's SCRAM credentials for Kafka clients (SASL SCRAM-SHA-256/512).
type UserAuth struct {
	Name     string
	Password string
	// SCRAMSHA256 and SCRAMSHA512 are SCRAM credentials in Kafka's stored form,
	// "salt=…,stored_key=…,server_key=…,iterations=N" ('qxd passwd --mechanism
	// SCRAM-SHA-256' makes one). Empty: the user cannot use that mechanism.
	SCRAMSHA256 string
	SCRAMSHA512 string
	Grant       semantics.Grant
}

// scram returns the user's SCRAM credential for mechanism, or an error saying
// why there is none.
func (u *UserAuth) scram(mechanism string) (kafka.SCRAMCredential, error) {
	s := u.SCRAMSHA256
	if mechanism == kafka.MechSCRAMSHA512 {
		s = u.SCRAMSHA512
	}
	if s == "" {
		return kafka.SCRAMCredential{}, fmt.Errorf("user %q has no %s credential: add one to the user's entry with 'qxd passwd --mechanism %s'", u.Name, mechanism, mechanism)
	}
	return kafka.ParseSCRAMCredential(mechanism, s)
}

// TokenAuth is a token; Name appears in logs instead of the secret.
type TokenAuth struct {
	Name  string
	Token string
	Grant semantics.Grant
}

// NKeyAuth is a user nkey's public key ("U…").
type NKeyAuth struct {
	Name      string
	PublicKey string
	Grant     semantics.Grant
}

// AccountAuth is an account public key ("A…") trusted to issue user JWTs, with the
// signing keys it may also sign with.
type AccountAuth struct {
	Name        string
	PublicKey   string
	SigningKeys []string
	Grant       semantics.Grant
}

// Enabled reports whether any identity is configured.
func (a AuthConfig) Enabled() bool {
	return len(a.Users)+len(a.Tokens)+len(a.NKeys)+len(a.Accounts) > 0
}

// validate checks every identity and pattern, naming the entry at fault.
func (a AuthConfig) validate() error {
	seen := map[string]bool{}
	for i, u := range a.Users {
		what := fmt.Sprintf("auth: user %d (%q)", i+1, u.Name)
		if u.Name == "" {
			return fmt.Errorf("auth: user %d has no name", i+1)
		}
		if seen["u:"+u.Name] {
			return fmt.Errorf("%s is listed twice", what)
		}
		seen["u:"+u.Name] = true
		if _, err := bcrypt.Cost([]byte(u.Password)); err != nil {
			return fmt.Errorf("%s: the password must be a bcrypt hash (\"$2a$…\"): make one with 'qxd passwd' (%v)", what, err)
		}
		for _, sc := range []struct{ mech, cred string }{{kafka.MechSCRAMSHA256, u.SCRAMSHA256}, {kafka.MechSCRAMSHA512, u.SCRAMSHA512}} {
			if sc.cred == "" {
				continue
			}
			if _, err := kafka.ParseSCRAMCredential(sc.mech, sc.cred); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := u.Grant.Validate(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for i, t := range a.Tokens {
		what := fmt.Sprintf("auth: token %d (%q)", i+1, t.Name)
		if len(t.Token) < 8 {
			return fmt.Errorf("%s: the token is missing or shorter than 8 characters", what)
		}
		if err := t.Grant.Validate(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for i, k := range a.NKeys {
		what := fmt.Sprintf("auth: nkey %d (%q)", i+1, k.Name)
		if !nkeys.IsValidPublicUserKey(k.PublicKey) {
			return fmt.Errorf("%s: %q is not a user public nkey (it starts with U; 'nk -gen user -pubout' makes one)", what, k.PublicKey)
		}
		if err := k.Grant.Validate(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for i, ac := range a.Accounts {
		what := fmt.Sprintf("auth: account %d (%q)", i+1, ac.Name)
		if !nkeys.IsValidPublicAccountKey(ac.PublicKey) {
			return fmt.Errorf("%s: %q is not an account public nkey (it starts with A)", what, ac.PublicKey)
		}
		for _, sk := range ac.SigningKeys {
			if !nkeys.IsValidPublicAccountKey(sk) {
				return fmt.Errorf("%s: signing key %q is not an account public nkey", what, sk)
			}
		}
		if err := ac.Grant.Validate(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// identity is who a client proved to be.
type identity struct {
	name     string
	grant    semantics.Grant
	inbox    string
	deadline time.Time
}

// authenticator checks clients' credentials for the embedded server
// (natsserver.Options.CustomClientAuthentication) and gives each its permissions.
type authenticator struct {
	log      *slog.Logger
	internal string // public key of the node's own connection
	users    map[string]*UserAuth
	tokens   []TokenAuth
	nkeys    map[string]*NKeyAuth
	issuers  map[string]*AccountAuth // by account key and signing key
	accounts map[string]*AccountAuth // by account key
	reg      *permRegistry
	// dummy is compared against for unknown user names: a hash at the configured
	// users' cost, so that timing does not tell which names exist.
	dummy []byte
}

var _ natsserver.Authentication = (*authenticator)(nil)

// newAuthenticator builds the authenticator of cfg and the node's own key pair.
func newAuthenticator(cfg AuthConfig, log *slog.Logger) (*authenticator, nkeys.KeyPair, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, nil, fmt.Errorf("make the node's internal key: %w", err)
	}
	pub, _ := kp.PublicKey()
	a := &authenticator{log: log, internal: pub, users: map[string]*UserAuth{}, tokens: cfg.Tokens,
		nkeys: map[string]*NKeyAuth{}, issuers: map[string]*AccountAuth{}, accounts: map[string]*AccountAuth{},
		reg: newPermRegistry(log)}
	cost := bcrypt.DefaultCost
	for i := range cfg.Users {
		a.users[cfg.Users[i].Name] = &cfg.Users[i]
		if c, err := bcrypt.Cost([]byte(cfg.Users[i].Password)); err == nil {
			cost = c
		}
	}
	if len(cfg.Users) > 0 {
		if a.dummy, err = bcrypt.GenerateFromPassword([]byte("qxd"), cost); err != nil {
			return nil, nil, fmt.Errorf("make the hash compared for unknown users: %w", err)
		}
	}
	for i := range cfg.NKeys {
		a.nkeys[cfg.NKeys[i].PublicKey] = &cfg.NKeys[i]
	}
	for i := range cfg.Accounts {
		ac := &cfg.Accounts[i]
		a.accounts[ac.PublicKey] = ac
		a.issuers[ac.PublicKey] = ac
		for _, sk := range ac.SigningKeys {
			a.issuers[sk] = ac
		}
	}
	return a, kp, nil
}

// internalOptions are the connection options of the node's own services.
func internalOptions(kp nkeys.KeyPair) []nats.Option {
	if kp == nil {
		return nil
	}
	pub, _ := kp.PublicKey()
	return []nats.Option{nats.Nkey(pub, kp.Sign)}
}

// Check implements natsserver.Authentication.
func (a *authenticator) Check(c natsserver.ClientAuthentication) bool {
	if c.Kind() != natsserver.CLIENT {
		return false
	}
	o := c.GetOpts()
	if o.Nkey == a.internal && o.Nkey != "" {
		if err := verifyNonce(o.Nkey, c.GetNonce(), o.Sig); err != nil {
			return false
		}
		c.RegisterUser(&natsserver.User{Username: "qxd-node"})
		return true
	}
	id, err := a.authenticate(c, o)
	if err != nil {
		remote := ""
		if addr := c.RemoteAddress(); addr != nil {
			remote = addr.String()
		}
		a.log.Warn("client refused", "remote", remote, "client", o.Name, "err", err)
		return false
	}
	a.reg.register(c, id)
	return true
}

func (a *authenticator) authenticate(c natsserver.ClientAuthentication, o *natsserver.ClientOpts) (identity, error) {
	switch {
	case o.Nkey != "" && o.Password != "":
		// A user JWT. nats-server drops the CONNECT's jwt field outside operator
		// mode, so the SDK sends the JWT as the password, with the user's nkey
		// and its signature of the nonce.
		return a.checkJWT(c, o, o.Password)
	case o.Nkey != "":
		k, ok := a.nkeys[o.Nkey]
		if !ok {
			return identity{}, fmt.Errorf("unknown nkey %s", o.Nkey)
		}
		if err := verifyNonce(o.Nkey, c.GetNonce(), o.Sig); err != nil {
			return identity{}, fmt.Errorf("nkey %s: %w", o.Nkey, err)
		}
		return identity{name: nameOr(k.Name, k.PublicKey), grant: k.Grant, inbox: semantics.InboxPrefix("k", k.PublicKey)}, nil
	case o.Username != "":
		u, err := a.checkPassword(o.Username, o.Password)
		if err != nil {
			return identity{}, err
		}
		return identity{name: u.Name, grant: u.Grant, inbox: semantics.InboxPrefix("u", u.Name)}, nil
	case o.Token != "":
		for _, t := range a.tokens {
			if tokenMatches(t.Token, o.Token) {
				return identity{name: nameOr(t.Name, "token"), grant: t.Grant, inbox: semantics.InboxPrefix("t", o.Token)}, nil
			}
		}
		return identity{}, errors.New("unknown token")
	}
	return identity{}, errors.New("no credentials: give a user and password, a token or a creds file")
}

// checkPassword checks a user's password against its bcrypt hash; every door with
// user names and passwords (NATS, Kafka's SASL PLAIN) checks them here.
func (a *authenticator) checkPassword(user, password string) (*UserAuth, error) {
	u, ok := a.users[user]
	if !ok {
		// Spend the time a hash comparison takes, so that timing does not tell
		// which user names exist.
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		return nil, fmt.Errorf("unknown user %q", user)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(password)) != nil {
		return nil, fmt.Errorf("wrong password for user %q", user)
	}
	return u, nil
}

// checkUserOrToken checks a user's password or, when user is "", a token: for
// doors that take a user name and password (HTTP basic authentication).
func (a *authenticator) checkUserOrToken(user, password string) (string, semantics.Grant, error) {
	if user == "" {
		for _, t := range a.tokens {
			if tokenMatches(t.Token, password) {
				return nameOr(t.Name, "token"), t.Grant, nil
			}
		}
		return "", semantics.Grant{}, errors.New("no user name, and the password is not one of the node's tokens")
	}
	u, err := a.checkPassword(user, password)
	if err != nil {
		return "", semantics.Grant{}, err
	}
	return u.Name, u.Grant, nil
}

// scramCredential returns a user's SCRAM credential for mechanism (Kafka's SASL
// SCRAM), with the user.
func (a *authenticator) scramCredential(user, mechanism string) (*UserAuth, kafka.SCRAMCredential, error) {
	u, ok := a.users[user]
	if !ok {
		return nil, kafka.SCRAMCredential{}, fmt.Errorf("unknown user %q", user)
	}
	c, err := u.scram(mechanism)
	return u, c, err
}

func (a *authenticator) checkJWT(c natsserver.ClientAuthentication, o *natsserver.ClientOpts, token string) (identity, error) {
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return identity{}, fmt.Errorf("nkey %s: the password is not a valid user JWT: %w", o.Nkey, err)
	}
	if uc.Subject != o.Nkey {
		return identity{}, fmt.Errorf("user JWT is for %s but the client signed with %s", uc.Subject, o.Nkey)
	}
	issuer := uc.Issuer
	ac, ok := a.issuers[issuer]
	if !ok {
		return identity{}, fmt.Errorf("user JWT %s (%q) is issued by %s, which is not a trusted account", uc.Subject, uc.Name, issuer)
	}
	if uc.IssuerAccount != "" && uc.IssuerAccount != ac.PublicKey {
		return identity{}, fmt.Errorf("user JWT %s names account %s but is signed by a key of %s", uc.Subject, uc.IssuerAccount, ac.PublicKey)
	}
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if vr.IsBlocking(true) {
		return identity{}, fmt.Errorf("user JWT %s (%q) is not valid now (expired or not yet valid): %v", uc.Subject, uc.Name, vr.Errors())
	}
	if uc.BearerToken {
		return identity{}, fmt.Errorf("user JWT %s is a bearer token: qxd requires the holder to sign with the user's key", uc.Subject)
	}
	if err := verifyNonce(uc.Subject, c.GetNonce(), o.Sig); err != nil {
		return identity{}, fmt.Errorf("user JWT %s: %w", uc.Subject, err)
	}
	id := identity{name: nameOr(uc.Name, uc.Subject), grant: ac.Grant, inbox: semantics.InboxPrefix("k", uc.Subject)}
	if k, ok := a.nkeys[uc.Subject]; ok {
		id.grant = k.Grant
	}
	if uc.Expires > 0 {
		id.deadline = time.Unix(uc.Expires, 0)
	}
	return id, nil
}

func verifyNonce(pubKey string, nonce []byte, sig string) error {
	if sig == "" {
		return errors.New("no signature of the server's nonce")
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return errors.New("signature is not base64")
		}
	}
	pk, err := nkeys.FromPublicKey(pubKey)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	if err := pk.Verify(nonce, raw); err != nil {
		return errors.New("signature does not verify")
	}
	return nil
}

func tokenMatches(configured, given string) bool {
	if strings.HasPrefix(configured, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(configured), []byte(given)) == nil
	}
	return subtle.ConstantTimeCompare([]byte(configured), []byte(given)) == 1
}

func nameOr(name, fallback string) string {
	if name != "" {
		return name
	}
	return fallback
}
