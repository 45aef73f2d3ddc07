package qxd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// matrixUsers are the identities of the permission matrix, each with password
// "<name>-pw".
var matrixUsers = map[string]semantics.Grant{
	"producer": {Produce: []string{"orders"}},
	"consumer": {Consume: []string{"orders"}, Groups: []string{"billing"}},
	"admin":    {Admin: []string{"*"}},
	"nobody":   {},
	"super":    {Produce: []string{"*"}, Consume: []string{"*"}, Admin: []string{"*"}, Groups: []string{"*"}},
}

func securedConfig(t *testing.T) server.Config {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	for name, g := range matrixUsers {
		cfg.Auth.Users = append(cfg.Auth.Users, server.UserAuth{Name: name, Password: qxdtest.HashPassword(t, name+"-pw"), Grant: g})
	}
	return cfg
}

func connectAs(t *testing.T, url, user string, opts ...qxd.ClientOption) *qxd.Client {
	t.Helper()
	c, err := qxd.Connect(qxdtest.Context(t, 10*time.Second), url,
		append([]qxd.ClientOption{qxd.UserInfo(user, user+"-pw"), qxd.ClientRequestTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(c.Close)
	return c
}

// snapshot is what a denied operation must leave unchanged.
type snapshot struct {
	topics    []string
	hw        []int64
	committed map[string]int64
	bridges   []string
}

func takeSnapshot(t *testing.T, super *qxd.Client) snapshot {
	t.Helper()
	ctx := qxdtest.Context(t, 20*time.Second)
	var s snapshot
	topics, err := super.Admin().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		s.topics = append(s.topics, fmt.Sprintf("%s/%d", tp.Name, tp.Config.Partitions))
	}
	slices.Sort(s.topics)
	d, err := super.Admin().DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Partitions {
		s.hw = append(s.hw, p.HighWatermark)
	}
	s.committed = map[string]int64{}
	if g, err := super.Admin().DescribeGroup(ctx, "billing"); err == nil {
		for _, p := range g.Partitions {
			s.committed[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = p.Committed
		}
	}
	bs, _, err := super.Admin().ListBridges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		s.bridges = append(s.bridges, b.Name)
	}
	return s
}

func (s snapshot) String() string {
	return fmt.Sprintf("topics %v, high watermarks %v, committed %v, bridges %v", s.topics, s.hw, s.committed, s.bridges)
}

// TestPermissionMatrix runs every operation as users with produce-only,
// consume-only, admin and no rights: each allowed case works, each denied case
// returns a not-authorized error naming the topic or group and changes nothing.
func TestPermissionMatrix(t *testing.T) {
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	url := node.ClientURL()
	super := connectAs(t, url, "super")
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 2})
	prod, err := super.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	for i := range 4 {
		if err := prod.ProduceSync(ctx, &qxd.Record{Topic: "orders", Partition: int32(i % 2), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	_ = prod.Close(ctx)
	committed := func(t *testing.T) int64 {
		g, err := super.Admin().DescribeGroup(ctx, "billing")
		if err != nil {
			return -1
		}
		for _, p := range g.Partitions {
			if p.Topic == "orders" && p.Partition == 0 {
				return p.Committed
			}
		}
		return -1
	}

	type op struct {
		name    string
		run     func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error
		allowed []string
		denied  *semantics.Error
		names   string           // the topic or group the error must name
		check   func(*testing.T) // after an allowed run
	}
	ops := []op{
		{
			name: "create topic", allowed: []string{"admin"}, denied: semantics.ErrTopicAuthorizationFailed, names: "newtopic",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				_, err := c.Admin().CreateTopic(ctx, "newtopic", qxd.TopicConfig{Partitions: 1})
				return err
			},
			check: func(t *testing.T) {
				if _, err := super.Admin().Topic(ctx, "newtopic"); err != nil {
					t.Errorf("newtopic not created: %v", err)
				}
				if err := super.Admin().DeleteTopic(ctx, "newtopic"); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "delete topic", allowed: []string{"admin"}, denied: semantics.ErrTopicAuthorizationFailed, names: "orders",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				if user == "admin" {
					qxdtest.CreateTopic(t, super, "victim", qxd.TopicConfig{Partitions: 1})
					return c.Admin().DeleteTopic(ctx, "victim")
				}
				return c.Admin().DeleteTopic(ctx, "orders")
			},
			check: func(t *testing.T) {
				if _, err := super.Admin().Topic(ctx, "victim"); !errors.Is(err, qxd.ErrUnknownTopic) {
					t.Errorf("victim still there: %v", err)
				}
			},
		},
		{
			name: "produce", allowed: []string{"producer"}, denied: semantics.ErrTopicAuthorizationFailed, names: "orders",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				p, err := c.NewProducer(qxd.DeliveryTimeout(5 * time.Second))
				if err != nil {
					return err
				}
				defer p.Close(ctx)
				return p.ProduceSync(ctx, &qxd.Record{Topic: "orders", Partition: 0, Value: []byte("x")})
			},
		},
		{
			name: "consume", allowed: []string{"consumer"}, denied: semantics.ErrTopicAuthorizationFailed, names: "orders",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				cons := qxdtest.NewConsumer(t, c)
				defer cons.Close(context.Background())
				if err := cons.Assign(ctx, qxd.Assignment{Topic: "orders", Partition: 0, Offset: qxd.AtStart()}); err != nil {
					return err
				}
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				recs, err := cons.Poll(pctx)
				if err == nil && len(recs) == 0 {
					err = errors.New("no records")
				}
				return err
			},
		},
		{
			name: "group commit", allowed: []string{"consumer"}, denied: semantics.ErrGroupAuthorizationFailed, names: "billing",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				cons := qxdtest.NewConsumer(t, c, qxd.Group("billing"))
				defer cons.Close(context.Background())
				return cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{{Topic: "orders", Partition: 0}: 2})
			},
			check: func(t *testing.T) {
				if got := committed(t); got != 2 {
					t.Errorf("committed offset %d, want 2", got)
				}
			},
		},
		{
			name: "group seek", allowed: []string{"consumer"}, denied: semantics.ErrGroupAuthorizationFailed, names: "billing",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				_, err := c.Admin().SeekGroup(ctx, "billing", "orders", []int32{0}, qxd.AtStart())
				return err
			},
			check: func(t *testing.T) {
				if got := committed(t); got != 0 {
					t.Errorf("committed offset %d after seek to start, want 0", got)
				}
			},
		},
		{
			name: "bridge", allowed: []string{"admin"}, denied: semantics.ErrClusterAuthorizationFailed, names: "bridges",
			run: func(ctx context.Context, t *testing.T, c *qxd.Client, user string) error {
				if _, err := c.Admin().CreateBridge(ctx, qxd.EgressBridge("out", "orders", "orders-out.{partition}", "fast")); err != nil {
					return err
				}
				return c.Admin().DeleteBridge(ctx, "out")
			},
		},
	}
	users := []string{"producer", "consumer", "admin", "nobody"}
	for _, o := range ops {
		for _, user := range users {
			t.Run(o.name+"/"+user, func(t *testing.T) {
				allowed := slices.Contains(o.allowed, user)
				c := connectAs(t, url, user)
				before := takeSnapshot(t, super)
				ctx := qxdtest.Context(t, 30*time.Second)
				start := time.Now()
				err := o.run(ctx, t, c, user)
				if allowed {
					if err != nil {
						t.Fatalf("%s as %s: %v", o.name, user, err)
					}
					if o.check != nil {
						o.check(t)
					}
					return
				}
				if !errors.Is(err, o.denied) {
					t.Fatalf("%s as %s: got %v, want %s", o.name, user, err, o.denied.Name)
				}
				if !strings.Contains(err.Error(), "not authorized") || !strings.Contains(err.Error(), o.names) {
					t.Errorf("%s as %s: error %q should say not authorized and name %q", o.name, user, err, o.names)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("%s as %s: the refusal took %v; it should be immediate", o.name, user, d)
				}
				if after := takeSnapshot(t, super); after.String() != before.String() {
					t.Errorf("%s as %s changed data:\nbefore %v\nafter  %v", o.name, user, before, after)
				}
			})
		}
	}
}

// TestInternalStateNotWritable checks that an ordinary user, even one with every
// right, cannot write qxd's own buckets and streams or subscribe to its services.
func TestInternalStateNotWritable(t *testing.T) {
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	super := connectAs(t, node.ClientURL(), "super")
	info := qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 1})
	nc := super.Conn()
	errs := make(chan error, 16)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	denied := []string{
		"$KV.qxd_topics." + semantics.TopicKey("orders"),
		"$KV.qxd_offsets.billing.orders.0",
		"$KV.qxd_groups.billing",
		"$KV.qxd_partitions." + info.ID + ".0",
		semantics.BatchSubject("orders", 0),
		"$JS.API.STREAM.DELETE." + semantics.StreamName("orders", 0),
		"$JS.API.STREAM.PURGE.KV_qxd_offsets",
		"$JS.API.STREAM.UPDATE.KV_qxd_topics",
		"$JS.API.DIRECT.GET.KV_qxd_offsets",
		"$JS.API.CONSUMER.CREATE.KV_qxd_groups.x",
	}
	for _, s := range denied {
		publishRefused(t, nc, errs, s, []byte("{}"))
	}
	for _, s := range []string{"qxd.w.>", "qxd.api.>", "qxd.grp.>", "_INBOX.>", "$KV.>"} {
		sub, err := nc.SubscribeSync(s)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("subscribe to %s: got %v", s, err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("subscribe to %s was not refused", s)
		}
		_ = sub.Unsubscribe()
	}
	// The topic record is as the node wrote it.
	got, err := super.Admin().Topic(qxdtest.Context(t, 5*time.Second), "orders")
	if err != nil || got.ID != info.ID {
		t.Fatalf("topic record changed: %+v, %v", got, err)
	}
}

// TestPermissionsFollowTopics checks that consume rights, which name each partition
// stream, follow topics created and given partitions after the user connected.
func TestPermissionsFollowTopics(t *testing.T) {
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	super := connectAs(t, node.ClientURL(), "super")
	c := connectAs(t, node.ClientURL(), "consumer")
	ctx := qxdtest.Context(t, 20*time.Second)
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 1})
	if _, err := super.Admin().AddPartitions(ctx, "orders", 3); err != nil {
		t.Fatal(err)
	}
	p, err := super.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "orders", Partition: 2, Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	_ = p.Close(ctx)
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "orders", Partition: 2, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	recs, err := cons.Poll(ctx)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "late" {
		t.Fatalf("poll partition 2: %v, %v", recs, err)
	}
}

func TestAuthenticationRejected(t *testing.T) {
	acct := qxdtest.NewAccount(t)
	other := qxdtest.NewAccount(t)
	goodCreds, _ := acct.WriteCreds(t, "svc", time.Now().Add(time.Hour))
	expiredCreds, _ := acct.WriteCreds(t, "old", time.Now().Add(-time.Minute))
	strangerCreds, _ := other.WriteCreds(t, "stranger", time.Time{})
	seed, seedKey := qxdtest.WriteSeed(t, "worker")
	cfg := securedConfig(t)
	cfg.Auth.Tokens = []server.TokenAuth{{Name: "ci", Token: "s3cret-token-value", Grant: semantics.Grant{Admin: []string{"*"}}}}
	cfg.Auth.Accounts = []server.AccountAuth{{Name: "team", PublicKey: acct.PublicKey, Grant: semantics.Grant{Admin: []string{"*"}}}}
	cfg.Auth.NKeys = []server.NKeyAuth{{Name: "worker", PublicKey: seedKey, Grant: semantics.Grant{Admin: []string{"*"}}}}
	node := qxdtest.StartNodeWith(t, cfg)
	url := node.ClientURL()

	ok := []struct {
		name string
		opt  qxd.ClientOption
	}{
		{"token", qxd.Token("s3cret-token-value")},
		{"creds", qxd.CredsFile(goodCreds)},
		{"nkey seed", qxd.CredsFile(seed)},
	}
	for _, tc := range ok {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			c, err := qxd.Connect(qxdtest.Context(t, 10*time.Second), url, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Admin().ListTopics(qxdtest.Context(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
		})
	}

	bad := []struct {
		name string
		opts []qxd.ClientOption
		want string
	}{
		{"wrong password", []qxd.ClientOption{qxd.UserInfo("producer", "nope")}, `password of user "producer"`},
		{"unknown user", []qxd.ClientOption{qxd.UserInfo("mallory", "x")}, `password of user "mallory"`},
		{"no credentials", nil, "requires credentials"},
		{"wrong token", []qxd.ClientOption{qxd.Token("guess-guess-guess")}, "check the token"},
		{"expired creds", []qxd.ClientOption{qxd.CredsFile(expiredCreds)}, "expired at"},
		{"expired creds at the node", []qxd.ClientOption{qxd.NATSOptions(rawCreds(t, expiredCreds)...)}, "authentication failed"},
		{"unknown account", []qxd.ClientOption{qxd.CredsFile(strangerCreds)}, "unknown to the node"},
	}
	for _, tc := range bad {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			c, err := qxd.Connect(qxdtest.Context(t, 10*time.Second), url, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, semantics.ErrAuthenticationFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an authentication error saying %q", err, tc.want)
			}
		})
	}
}

// TestCredsExpireWhileConnected checks that a connection ends when its JWT expires.
func TestCredsExpireWhileConnected(t *testing.T) {
	acct := qxdtest.NewAccount(t)
	creds, _ := acct.WriteCreds(t, "brief", time.Now().Add(2*time.Second))
	cfg := securedConfig(t)
	cfg.Auth.Accounts = []server.AccountAuth{{PublicKey: acct.PublicKey, Grant: semantics.Grant{Admin: []string{"*"}}}}
	node := qxdtest.StartNodeWith(t, cfg)
	c, err := qxd.Connect(qxdtest.Context(t, 10*time.Second), node.ClientURL(), qxd.CredsFile(creds),
		qxd.NATSOptions(nats.MaxReconnects(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Conn().IsClosed() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !c.Conn().IsClosed() {
		t.Fatal("connection still open after its credentials expired")
	}
}

// rawCreds authenticates with a creds file as the SDK does, without its check of
// the expiry, so that the node's check is tested.
func rawCreds(t *testing.T, path string) []nats.Option {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := nkeys.ParseDecoratedJWT(data)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return []nats.Option{nats.Nkey(pub, kp.Sign), nats.UserInfo("", tok)}
}

func tlsNode(t *testing.T, certs qxdtest.Certs, verify bool) *server.Node {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA, Verify: verify}
	return qxdtest.StartNodeWith(t, cfg)
}

func TestTLSClients(t *testing.T) {
	certs := qxdtest.GenerateCerts(t)
	strange := qxdtest.GenerateCerts(t) // another CA
	node := tlsNode(t, certs, false)
	url := node.ClientURL()
	connect := func(opts ...qxd.ClientOption) error {
		c, err := qxd.Connect(qxdtest.Context(t, 10*time.Second), url, opts...)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Admin().ListTopics(qxdtest.Context(t, 10*time.Second))
		if err == nil && !c.Conn().TLSRequired() {
			err = errors.New("connected without TLS")
		}
		return err
	}
	if err := connect(qxd.TLS(certs.CA, "", "")); err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	err := connect()
	if !errors.Is(err, semantics.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "--tls-ca") {
		t.Fatalf("plain client to a TLS node: got %v, want a clear TLS error naming --tls-ca", err)
	}
	err = connect(qxd.TLS(strange.CA, "", ""))
	if !errors.Is(err, semantics.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "not signed by an authority") {
		t.Fatalf("wrong CA: got %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	certs := qxdtest.GenerateCerts(t)
	strange := qxdtest.GenerateCerts(t)
	node := tlsNode(t, certs, true)
	url := node.ClientURL()
	connect := func(opts ...qxd.ClientOption) error {
		c, err := qxd.Connect(qxdtest.Context(t, 10*time.Second), url, opts...)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Admin().ListTopics(qxdtest.Context(t, 10*time.Second))
		return err
	}
	if err := connect(qxd.TLS(certs.CA, certs.ClientCert, certs.ClientKey)); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if err := connect(qxd.TLS(certs.CA, "", "")); !errors.Is(err, semantics.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("no client certificate: got %v", err)
	}
	if err := connect(qxd.TLS(certs.CA, strange.ClientCert, strange.ClientKey)); !errors.Is(err, semantics.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client certificate of another CA: got %v", err)
	}
}

// TestClusterRouteTLS runs a 3-node cluster whose routes use TLS, with
// authentication on, and replicates a topic over it.
func TestClusterRouteTLS(t *testing.T) {
	t.Parallel() // its own certificates, cluster and ports; no time bound
	certs := qxdtest.GenerateCerts(t)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	auth := securedConfig(t).Auth
	for i := range cfgs {
		cfgs[i].ClusterTLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA}
		cfgs[i].TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA}
		cfgs[i].Auth = auth
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	for _, n := range nodes {
		if n.NATSServer().NumRoutes() == 0 {
			t.Fatalf("node %s has no routes", n.Name())
		}
	}
	super := connectAs(t, qxdtest.ClientURLs(nodes), "super", qxd.TLS(certs.CA, "", ""))
	consumer := connectAs(t, nodes[2].ClientURL(), "consumer", qxd.TLS(certs.CA, "", ""))
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 2, Replicas: 3})
	ctx := qxdtest.Context(t, time.Minute)
	p, err := super.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "orders", Partition: 1, Value: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	_ = p.Close(ctx)
	// The consumer's node learns of the topic from the replicated topics bucket.
	cons := qxdtest.NewConsumer(t, consumer)
	defer cons.Close(context.Background())
	var aerr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		actx, cancel := context.WithTimeout(ctx, 7*time.Second)
		aerr = cons.Assign(actx, qxd.Assignment{Topic: "orders", Partition: 1, Offset: qxd.AtStart()})
		cancel()
		if aerr == nil {
			break
		}
	}
	if aerr != nil {
		t.Fatal(aerr)
	}
	recs, err := cons.Poll(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("poll: %v, %v", recs, err)
	}
}

// TestProduceRightsCoverDirectWriter checks the subjects a producer sends to
// after an election, the partition's writer on one node
// (semantics.WriterDirectSubject): produce rights on a topic reach its writers so,
// and nothing of another topic nor under a writer's subject.
func TestProduceRightsCoverDirectWriter(t *testing.T) {
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	super := connectAs(t, node.ClientURL(), "super")
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 1})
	qxdtest.CreateTopic(t, super, "other", qxd.TopicConfig{Partitions: 1})
	prod := connectAs(t, node.ClientURL(), "producer")
	nc := prod.Conn()
	errs := make(chan error, 16)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })

	var b semantics.BatchBuilder
	b.Append(&semantics.Record{Value: []byte("direct")})
	batch, err := b.Seal(nil, semantics.NoProducer, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	ctx := qxdtest.Context(t, 30*time.Second)
	// The writer answers: the request was allowed and reached it.
	var r semantics.ProduceReply
	for ctx.Err() == nil {
		m, err := nc.Request(semantics.WriterDirectSubject("orders", 0, node.Name()), batch, 2*time.Second)
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) { // the writer is starting
				time.Sleep(20 * time.Millisecond)
				continue
			}
			t.Fatalf("produce to the writer of orders/0 on %s: %v", node.Name(), err)
		}
		if r, err = semantics.ParseProduceReply(m.Data); err != nil || r.Err() != nil {
			t.Fatalf("produce to the writer of orders/0 on %s: %v, %v", node.Name(), err, r.Err())
		}
		break
	}
	if r.BaseOffset != 0 {
		t.Fatalf("stored at offset %d, want 0", r.BaseOffset)
	}
	select {
	case err := <-errs:
		t.Fatalf("allowed publish reported %v", err)
	default:
	}

	for _, s := range []string{
		semantics.WriterDirectSubject("other", 0, node.Name()),
		semantics.WriterDirectSubject("orders", 0, node.Name()) + ".x",
	} {
		publishRefused(t, nc, errs, s, batch)
	}
	// The other topic is as it was.
	d, err := super.Admin().DescribeTopic(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 0 {
		t.Errorf("topic other has high watermark %d, want 0", hw)
	}
}

// TestProducerLeaderLookupRights checks the lookup of a partition's leader a
// producer makes after its client moved: an identity that may consume the topic
// learns the node; one with produce rights alone is refused at once, not after
// the lookup's time runs out.
func TestProducerLeaderLookupRights(t *testing.T) {
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	super := connectAs(t, node.ClientURL(), "super")
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, 30*time.Second)

	leader, denied, err := qxd.StreamLeader(ctx, super, "orders", 0)
	if err != nil || denied || leader != node.Name() {
		t.Fatalf("super: leader %q, denied %v, err %v; want %q", leader, denied, err, node.Name())
	}
	prod := connectAs(t, node.ClientURL(), "producer")
	began := time.Now()
	leader, denied, err = qxd.StreamLeader(ctx, prod, "orders", 0)
	took := time.Since(began)
	if !denied || leader != "" {
		t.Fatalf("producer: leader %q, denied %v, err %v; want refused", leader, denied, err)
	}
	if took > 2*time.Second {
		t.Errorf("producer: refused after %v, want at once", took)
	}
	t.Logf("producer refused after %v", took.Round(time.Millisecond))
}

// publishRefused publishes data to subject on nc and checks that the server
// refuses it: a permissions violation naming subject comes on errs, nc's async
// error handler's channel, within 2 s.
func publishRefused(t *testing.T, nc *nats.Conn, errs <-chan error, subject string, data []byte) {
	t.Helper()
	if err := nc.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Errorf("publish to %s: got %v, want a permissions violation", subject, err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("publish to %s was not refused", subject)
	}
}
