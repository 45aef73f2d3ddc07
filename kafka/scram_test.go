package kafka_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// scramCred makes a stored SCRAM credential of password for mechanism.
func scramCred(t *testing.T, mechanism, password string) string {
	t.Helper()
	c, err := kafka.NewSCRAMCredential(mechanism, password, kafka.DefaultSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// startSCRAMNode starts a node without TLS whose user alice (every right) has
// SCRAM credentials for both mechanisms, carol (consume) one for SCRAM-SHA-256
// and bob (consume) only a bcrypt password.
func startSCRAMNode(t *testing.T) *server.Node {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	all := []string{semantics.AllPattern}
	cfg.Auth.Users = []server.UserAuth{
		{Name: "alice", Password: qxdtest.HashPassword(t, "alice-pw"),
			SCRAMSHA256: scramCred(t, kafka.MechSCRAMSHA256, "alice-pw"),
			SCRAMSHA512: scramCred(t, kafka.MechSCRAMSHA512, "alice-pw"),
			Grant:       semantics.Grant{Produce: all, Consume: all, Admin: all, Groups: all}},
		{Name: "bob", Password: qxdtest.HashPassword(t, "bob-pw"), Grant: semantics.Grant{Consume: all}},
		{Name: "carol", Password: qxdtest.HashPassword(t, "carol-pw"),
			SCRAMSHA256: scramCred(t, kafka.MechSCRAMSHA256, "carol-pw"), Grant: semantics.Grant{Consume: all}},
	}
	return qxdtest.StartNodeWith(t, cfg)
}

// TestKafkaSCRAM: Kafka clients authenticate with SCRAM-SHA-256 and -512 against
// the users' stored SCRAM credentials, and get the users' rights; a wrong
// password, an unknown user and a user without a credential are refused alike.
func TestKafkaSCRAM(t *testing.T) {
	n := startSCRAMNode(t)
	ctx := ctxFor(t, 60*time.Second)
	mechs := map[string]func(scram.Auth) sasl.Mechanism{
		kafka.MechSCRAMSHA256: scram.Auth.AsSha256Mechanism,
		kafka.MechSCRAMSHA512: scram.Auth.AsSha512Mechanism,
	}
	for name, mech := range mechs {
		t.Run(name, func(t *testing.T) {
			cl := kafkaClient(t, n, kgo.SASL(mech(scram.Auth{User: "alice", Pass: "alice-pw"})))
			topic := "scram-" + strings.ToLower(name)
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
				t.Fatalf("alice creates a topic over %s: %v", name, err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatalf("alice produces over %s: %v", name, err)
			}
			for _, bad := range []struct{ what, user, pass string }{
				{"wrong password", "alice", "nope"},
				{"unknown user", "mallory", "alice-pw"},
				{"user without a SCRAM credential", "bob", "bob-pw"},
			} {
				cl := kafkaClient(t, n, kgo.SASL(mech(scram.Auth{User: bad.user, Pass: bad.pass})), kgo.RetryTimeout(time.Second))
				if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", bad.what, err)
				}
			}
		})
	}
	t.Run("PLAIN still works", func(t *testing.T) {
		cl := kafkaClient(t, n, kgo.SASL(plain.Auth{User: "bob", Pass: "bob-pw"}.AsMechanism()))
		if err := cl.Ping(ctx); err != nil {
			t.Fatalf("bob with PLAIN: %v", err)
		}
	})
	t.Run("rights", func(t *testing.T) {
		cl := kafkaClient(t, n, kgo.SASL(scram.Auth{User: "carol", Pass: "carol-pw"}.AsSha256Mechanism()), kgo.DisableIdempotentWrite())
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "scram-scram-sha-256", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("carol, who may only consume, produces: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	})
}

// TestKafkaSASLFailureCloses: after a refused SaslAuthenticate the listener
// answers, then closes the connection, as Kafka does.
func TestKafkaSASLFailureCloses(t *testing.T) {
	n := startSCRAMNode(t)
	for _, tc := range []struct {
		name, mech string
		token      string
	}{
		{"PLAIN wrong password", "PLAIN", "\x00alice\x00nope"},
		{"SCRAM malformed client-first", kafka.MechSCRAMSHA256, "hello"},
		{"SCRAM unknown user", kafka.MechSCRAMSHA512, "n,,n=mallory,r=abcdefgh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", n.KafkaAddr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hs := kmsg.NewPtrSASLHandshakeRequest()
			hs.Version, hs.Mechanism = 1, tc.mech
			if code := onConn(t, c, hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
				t.Fatalf("handshake: code %d", code)
			}
			au := kmsg.NewPtrSASLAuthenticateRequest()
			au.Version, au.SASLAuthBytes = 1, []byte(tc.token)
			auResp := onConn(t, c, au).(*kmsg.SASLAuthenticateResponse)
			if tc.mech == kafka.MechSCRAMSHA512 && auResp.ErrorCode == 0 {
				// An unknown user gets a server-first like any other; the
				// client-final then fails.
				au.SASLAuthBytes = []byte("c=biws,r=abcdefgh" + scramNonce(t, auResp.SASLAuthBytes) + ",p=AAAA")
				auResp = onConn(t, c, au).(*kmsg.SASLAuthenticateResponse)
			}
			if auResp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
				t.Fatalf("SaslAuthenticate answered code %d, want SASL_AUTHENTICATION_FAILED", auResp.ErrorCode)
			}
			// Nothing more is sent: the listener itself ends the connection.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var b [1]byte
			if n, err := c.Read(b[:]); err == nil {
				t.Fatalf("the connection is still open after a failed SaslAuthenticate: read %d bytes", n)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the connection is still open after a failed SaslAuthenticate: read timed out")
			}
		})
	}
}

// scramNonce returns the part of the server-first's nonce the server added.
func scramNonce(t *testing.T, serverFirst []byte) string {
	t.Helper()
	for _, kv := range strings.Split(string(serverFirst), ",") {
		if v, ok := strings.CutPrefix(kv, "r=abcdefgh"); ok {
			return v
		}
	}
	t.Fatalf("server-first %q has no nonce continuing the client's", serverFirst)
	return ""
}

func TestSCRAMCredentialForm(t *testing.T) {
	t.Parallel()
	c, err := kafka.NewSCRAMCredential(kafka.MechSCRAMSHA512, "pw", 8192)
	if err != nil {
		t.Fatal(err)
	}
	back, err := kafka.ParseSCRAMCredential(kafka.MechSCRAMSHA512, c.String())
	if err != nil || back.String() != c.String() || back.Iterations != 8192 {
		t.Fatalf("round trip of %s: %+v, %v", c, back, err)
	}
	good256 := scramCred(t, kafka.MechSCRAMSHA256, "pw")
	for _, tc := range []struct{ name, mech, cred, want string }{
		{"other mechanism's keys", kafka.MechSCRAMSHA512, good256, "64 bytes"},
		{"missing key", kafka.MechSCRAMSHA256, "salt=AAAA,stored_key=AAAA,iterations=4096", "server_key is missing"},
		{"few iterations", kafka.MechSCRAMSHA256, strings.Replace(good256, "iterations=4096", "iterations=10", 1), "4096 to 16384"},
		{"not base64", kafka.MechSCRAMSHA256, strings.Replace(good256, "salt=", "salt=!!", 1), "salt is not base64"},
		{"unknown key", kafka.MechSCRAMSHA256, good256 + ",pepper=x", `unknown key "pepper"`},
		{"not key=value", kafka.MechSCRAMSHA256, "secret", "not key=value"},
		{"unknown mechanism", "SCRAM-SHA-1", good256, "not one of"},
	} {
		if _, err := kafka.ParseSCRAMCredential(tc.mech, tc.cred); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := kafka.NewSCRAMCredential(kafka.MechSCRAMSHA256, "pw", 1000); err == nil {
		t.Error("1000 iterations were accepted; Kafka takes 4096 or more")
	}
}
