package qxdtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// HashPassword returns a bcrypt hash of password at the lowest cost (fast tests).
func HashPassword(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// Account is a test JWT account: its key pair signs user JWTs.
type Account struct {
	KP        nkeys.KeyPair
	PublicKey string
}

// NewAccount makes a fresh account key pair.
func NewAccount(t testing.TB) Account {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return Account{KP: kp, PublicKey: pub}
}

// WriteCreds issues a user JWT named name, signed by the account, expiring at
// expires (zero: never), and writes it with the user's seed as a .creds file. It
// returns the file and the user's public key.
func (a Account) WriteCreds(t testing.TB, name string, expires time.Time) (path, userKey string) {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
		uc.IssuedAt = min(time.Now().Unix(), expires.Unix()-60)
		uc.NotBefore = uc.IssuedAt
	}
	tok, err := uc.Encode(a.KP)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(tok, useed)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, upub
}

// WriteSeed makes a user nkey and writes its seed to a file; it returns the file
// and the public key.
func WriteSeed(t testing.TB, name string) (path, userKey string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	path = filepath.Join(t.TempDir(), name+".nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, pub
}
