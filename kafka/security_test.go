package kafka_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// clientTLS trusts the test CA.
func clientTLS(t *testing.T, certs qxdtest.Certs) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// startSecureNode starts a node with TLS and three users: admin (every right),
// reader (consume "orders" and group "readers") and writer (produce "orders").
func startSecureNode(t *testing.T) (*server.Node, qxdtest.Certs) {
	t.Helper()
	certs := qxdtest.GenerateCerts(t)
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA}
	all := []string{semantics.AllPattern}
	cfg.Auth.Users = []server.UserAuth{
		{Name: "admin", Password: qxdtest.HashPassword(t, "admin-pw"),
			Grant: semantics.Grant{Produce: all, Consume: all, Admin: all, Groups: all}},
		{Name: "reader", Password: qxdtest.HashPassword(t, "reader-pw"),
			Grant: semantics.Grant{Consume: []string{"orders"}, Groups: []string{"readers"}}},
		{Name: "writer", Password: qxdtest.HashPassword(t, "writer-pw"),
			Grant: semantics.Grant{Produce: []string{"orders"}}},
	}
	return qxdtest.StartNodeWith(t, cfg), certs
}

func saslClient(t *testing.T, n *server.Node, certs qxdtest.Certs, user, pw string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kafkaClient(t, n, append([]kgo.Opt{kgo.DialTLSConfig(clientTLS(t, certs)),
		kgo.SASL(plain.Auth{User: user, Pass: pw}.AsMechanism()), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
}

func TestKafkaTLSAndSASL(t *testing.T) {
	n, certs := startSecureNode(t)
	ctx := ctxFor(t, 60*time.Second)

	admin := kadm.NewClient(saslClient(t, n, certs, "admin", "admin-pw"))
	for _, topic := range []string{"orders", "secret"} {
		if _, err := admin.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatalf("admin creates topic %s over TLS with SASL PLAIN: %v", topic, err)
		}
	}
	w := saslClient(t, n, certs, "writer", "writer-pw")
	if err := w.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatalf("writer produces to orders: %v", err)
	}

	t.Run("wrong password", func(t *testing.T) {
		cl := saslClient(t, n, certs, "reader", "nope")
		err := cl.Ping(ctx)
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	t.Run("no SASL", func(t *testing.T) {
		cl := kafkaClient(t, n, kgo.DialTLSConfig(clientTLS(t, certs)), kgo.RetryTimeout(time.Second))
		mctx, cancel := contextWithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := kadm.NewClient(cl).ListTopics(mctx); err == nil {
			t.Fatal("a client without SASL listed topics on a node with users")
		}
	})
	t.Run("no TLS", func(t *testing.T) {
		cl := kafkaClient(t, n, kgo.SASL(plain.Auth{User: "admin", Pass: "admin-pw"}.AsMechanism()), kgo.RetryTimeout(time.Second))
		mctx, cancel := contextWithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := cl.Ping(mctx); err == nil {
			t.Fatal("a client without TLS reached a TLS listener")
		}
	})
	t.Run("consume only cannot produce", func(t *testing.T) {
		cl := saslClient(t, n, certs, "reader", "reader-pw", kgo.DisableIdempotentWrite())
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("reader produces: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		// An idempotent producer is refused its producer id first, as by Kafka.
		idem := saslClient(t, n, certs, "reader", "reader-pw")
		err = idem.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.ClusterAuthorizationFailed) {
			t.Fatalf("reader produces idempotently: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
		}
	})
	t.Run("consume", func(t *testing.T) {
		cl := saslClient(t, n, certs, "reader", "reader-pw", kgo.ConsumeTopics("orders"),
			kgo.ConsumerGroup("readers"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("reader consumes orders in group readers: %v", err)
		}
		if fs.NumRecords() != 1 {
			t.Fatalf("reader read %d records, want 1", fs.NumRecords())
		}
	})
	t.Run("group without right", func(t *testing.T) {
		cl := saslClient(t, n, certs, "reader", "reader-pw", kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("others"))
		gctx, cancel := contextWithTimeout(ctx, 10*time.Second)
		defer cancel()
		fs := cl.PollFetches(gctx)
		var got error
		fs.EachError(func(_ string, _ int32, err error) {
			if got == nil {
				got = err
			}
		})
		if !errors.Is(got, kerr.GroupAuthorizationFailed) {
			t.Fatalf("reader joins group others: %v, want GROUP_AUTHORIZATION_FAILED", got)
		}
	})
	t.Run("no right on the topic", func(t *testing.T) {
		adm := kadm.NewClient(saslClient(t, n, certs, "reader", "reader-pw"))
		resp, err := adm.ListEndOffsets(ctx, "secret")
		if err == nil {
			err = resp.Error()
		}
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("reader lists offsets of secret: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		md, err := adm.Metadata(ctx, "secret")
		if err == nil {
			err = md.Topics["secret"].Err
		}
		if got := err; !errors.Is(got, kerr.TopicAuthorizationFailed) {
			t.Fatalf("reader's metadata of secret: %v, want TOPIC_AUTHORIZATION_FAILED", got)
		}
		all, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if all.Has("secret") || !all.Has("orders") {
			t.Fatalf("reader lists topics %v, want orders and not secret", all.Names())
		}
		cl := saslClient(t, n, certs, "reader", "reader-pw", kgo.ConsumeTopics("secret"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fctx, cancel := contextWithTimeout(ctx, 10*time.Second)
		defer cancel()
		var got error
		cl.PollFetches(fctx).EachError(func(_ string, _ int32, err error) {
			if got == nil {
				got = err
			}
		})
		if !errors.Is(got, kerr.TopicAuthorizationFailed) {
			t.Fatalf("reader fetches secret: %v, want TOPIC_AUTHORIZATION_FAILED", got)
		}
	})
	t.Run("writer cannot create topics", func(t *testing.T) {
		cl := saslClient(t, n, certs, "writer", "writer-pw")
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "other")
		if err == nil {
			err = resp.Err
		}
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("writer creates a topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	})
}

// TestKafkaTLSOnly: a node with TLS and no users takes Kafka clients over TLS
// without SASL.
func TestKafkaTLSOnly(t *testing.T) {
	certs := qxdtest.GenerateCerts(t)
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA}
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.DialTLSConfig(clientTLS(t, certs)), kgo.AllowAutoTopicCreation())
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "tls-topic"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tls-topic", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce over TLS: %v", err)
	}
}

// TestKafkaSASLLoopback: a node with users and no TLS takes SASL PLAIN from this
// machine, and refuses a client without SASL.
func TestKafkaSASLLoopback(t *testing.T) {
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.Auth.Users = []server.UserAuth{{Name: "alice", Password: qxdtest.HashPassword(t, "pw"),
		Grant: semantics.Grant{Produce: []string{"t1"}, Admin: []string{"t1"}}}}
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.SASL(plain.Auth{User: "alice", Pass: "pw"}.AsMechanism()))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t1", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce with SASL PLAIN over loopback: %v", err)
	}
	anon := kafkaClient(t, n, kgo.RetryTimeout(time.Second))
	mctx, cancel := contextWithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(anon).ListTopics(mctx); err == nil {
		t.Fatal("a client without SASL listed topics on a node with users")
	}
}

// TestKafkaSASLHandshakeV0: after a SaslHandshake v0 the PLAIN token comes raw, as
// clients before SaslAuthenticate send it; a wrong one closes the connection.
func TestKafkaSASLHandshakeV0(t *testing.T) {
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.Auth.Users = []server.UserAuth{{Name: "alice", Password: qxdtest.HashPassword(t, "pw"),
		Grant: semantics.Grant{Consume: []string{semantics.AllPattern}}}}
	n := qxdtest.StartNodeWith(t, cfg)
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{{"right password", "\x00alice\x00pw", true}, {"wrong password", "\x00alice\x00nope", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", n.KafkaAddr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hs := kmsg.NewPtrSASLHandshakeRequest()
			hs.Version, hs.Mechanism = 0, "PLAIN"
			if code := onConn(t, c, hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
				t.Fatalf("handshake v0: code %d", code)
			}
			tok := binary.BigEndian.AppendUint32(nil, uint32(len(tc.token)))
			if _, err := c.Write(append(tok, tc.token...)); err != nil {
				t.Fatal(err)
			}
			var size [4]byte
			_, err = io.ReadFull(c, size[:])
			if !tc.ok {
				if err == nil {
					t.Fatalf("wrong password answered %x, want the connection closed", size)
				}
				return
			}
			if err != nil || binary.BigEndian.Uint32(size[:]) != 0 {
				t.Fatalf("raw token answered %x, %v; want an empty token", size, err)
			}
			md := kmsg.NewPtrMetadataRequest()
			md.Version = 4
			onConn(t, c, md)
		})
	}
}

// TestKafkaMutualTLS: with verify, a Kafka client must present a certificate
// signed by the node's CA, as on the NATS port.
func TestKafkaMutualTLS(t *testing.T) {
	certs := qxdtest.GenerateCerts(t)
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA, Verify: true}
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := ctxFor(t, 30*time.Second)

	bare := kafkaClient(t, n, kgo.DialTLSConfig(clientTLS(t, certs)), kgo.RetryTimeout(time.Second))
	pctx, cancel := contextWithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := bare.Ping(pctx); err == nil {
		t.Fatal("a client without a certificate reached a node that verifies clients")
	}
	tc := clientTLS(t, certs)
	cert, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = []tls.Certificate{cert}
	cl := kafkaClient(t, n, kgo.DialTLSConfig(tc))
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("a client with a certificate of the node's CA: %v", err)
	}
}
