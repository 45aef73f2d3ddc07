package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

// oneUser is an Authenticator with one SCRAM user.
type oneUser struct {
	name string
	cred SCRAMCredential
}

func (o oneUser) Plain(context.Context, string, string) (semantics.Grant, error) {
	return semantics.Grant{}, errors.New("no PLAIN")
}

func (o oneUser) SCRAM(_ context.Context, mech, user string) (SCRAMCredential, semantics.Grant, error) {
	if user != o.name || mech != o.cred.Mechanism {
		return SCRAMCredential{}, semantics.Grant{}, errors.New("unknown")
	}
	return o.cred, semantics.Grant{Consume: []string{"t"}}, nil
}

// TestSCRAMSHA256Vector runs the exchange of RFC 7677 §3 (user "user", password
// "pencil") through the listener's SCRAM server: the same server-first and
// server-final, byte for byte.
func TestSCRAMSHA256Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	cred, err := scramCredential(MechSCRAMSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{l: &Listener{cfg: Config{Auth: oneUser{"user", cred}}}}
	s := &scramSession{c: c, mech: MechSCRAMSHA256, serverNonce: func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }}
	steps := []struct{ client, server string }{
		{"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
		{"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
	}
	for i, st := range steps {
		reply, done, err := s.step(context.Background(), []byte(st.client))
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		if string(reply) != st.server || done != (i == 1) {
			t.Fatalf("step %d answered %q (done %v), want %q", i+1, reply, done, st.server)
		}
	}
	if c.user != "user" || c.grant == nil || len(c.grant.Consume) != 1 {
		t.Fatalf("after the exchange the connection is user %q with %+v", c.user, c.grant)
	}
}

func TestSASLName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"alice": "alice", "a=2Cb=3Dc": "a,b=c"} {
		if got, err := saslName(in); err != nil || got != want {
			t.Errorf("saslName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a=b", "a=2"} {
		if _, err := saslName(in); err == nil {
			t.Errorf("saslName(%q) took a malformed name", in)
		}
	}
}
