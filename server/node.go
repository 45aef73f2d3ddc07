package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/semantics"
)

// How often a node pings its clients and the other nodes' routes, and how many pings
// may go unanswered before it drops the connection.
const (
	clientPingInterval = 20 * time.Second
	routePingInterval  = 2 * time.Second
	maxPingsOut        = 3
)

// jsErrCodeNoPeers is JetStream's error code for a stream it cannot place: fewer
// nodes are up than it has replicas.
const jsErrCodeNoPeers jetstream.ErrorCode = 10005

// writerConns is how many in-process connections a node's partition writers share:
// one per core, up to 4. Every batch crosses a writer's connection twice (request in,
// append out), and one connection's read loop and flusher would carry them all one
// after the other.
func writerConns() int { return min(runtime.GOMAXPROCS(0), 4) }

// writerConn returns the in-process connection the writer of partition p of topic
// uses.
func (n *Node) writerConn(topic string, p int32) *nats.Conn {
	if len(n.wconns) == 0 {
		return n.nc
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	return n.wconns[(h.Sum32()+uint32(p))%uint32(len(n.wconns))]
}

// Node is one qxd node: an embedded NATS server with JetStream and the qxd services
// (admin API, partition writers) around it.
type Node struct {
	cfg  Config
	log  *slog.Logger
	nlog *natsLogger
	ns   *natsserver.Server

	nc *nats.Conn // in-process connection the services use
	js jetstream.JetStream
	// epochs finds partitions' Kafka leader epochs.
	epochs *epochs
	// wconns are the partition writers' in-process connections (see writerConns); the
	// writer of a partition uses the one writerConn picks.
	wconns []*nats.Conn

	auth        *authenticator // nil without authentication
	internalKey nkeys.KeyPair  // the services' identity when auth is on

	admin   *Admin
	api     *adminDoor // the admin API's NATS door
	txnAPI  *txnDoor   // the transaction state's NATS door
	writers *writerManager
	groups  *groupService
	txns    *txnService
	fetch   *Fetcher
	obs     observers   // the services' Observers (Host.Observe)
	kafka   *kafkaFront // nil without a Kafka listener
	replays storeReads  // the batches the writers' loads replayed (writer.replayer)
	lookups storeReads  // the writers' loads' stream state, checkpoint and abort-marker reads (writer.load)

	// The embedder's services (Config.Services), once started, and the buckets they
	// opened through their Host.
	servicesMu    sync.Mutex
	services      []Running
	hostedBuckets []string

	// configuredNodes is how many nodes the peer list names, this one included.
	configuredNodes int
	upkeep          upkeep
	rebalance       rebalanceState // the upkeep loop's own
	repairs         autoRepairs    // the automatic repair's (repair_auto.go)
	lock            *dataDirLock

	// isolated is set while the node cannot reach a majority of its cluster
	// (isolation.go).
	isolated atomic.Bool
	// cutPeer names the node whose way to this one is cut while both reach a
	// third (the isolation watch's cutFrom, confirmed by this node's RAFT
	// groups); empty otherwise.
	cutPeer atomic.Pointer[string]
	// handingOff is until when (Unix nanoseconds) a hand-off this node asked
	// for may still be electing its successor: the election watch makes no
	// group it led campaign early meanwhile (raft_campaign.go).
	handingOff atomic.Int64
	// probes is the isolation watch of a clustered node once its upkeep runs:
	// which nodes answer its probes (Kafka's Metadata asks it which leaders are
	// silent).
	probes atomic.Pointer[isolationWatch]
	// electionChecked and woke are when (Unix nanoseconds) the election watch
	// last checked the node's groups and when it last saw the node wake from a
	// pause (raft_campaign.go): Kafka's Metadata holds the leaders a woken
	// node's stale view names (kafkaBackend.wokeAt).
	electionChecked, woke atomic.Int64
	// storeMismatch, when set, is taken by the writers for the reason this
	// nats-server's file store is not laid out as qxd expects
	// (store_durability.go): they cannot set their stores' durability. Only tests
	// set it, to see what a node does with a nats-server qxd does not match.
	storeMismatch atomic.Pointer[string]
	// noDurabilityTick, when set, has the writers' background ticks leave their
	// stores' durability alone (writer.background), so that only what else
	// applies it does. Only tests set it, to see a change of a topic's
	// durability applied without a tick.
	noDurabilityTick atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Start validates cfg, starts the embedded server and the services, and returns when
// the node serves clients. A port in use or an unusable data dir is an error that
// says so.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
		if cfg.Name == "" {
			cfg.Name = "qxd"
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.Name)
	if err := checkDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n, err := start(ctx, cfg, log)
	if err != nil {
		lock.release()
		return nil, err
	}
	n.lock = lock
	return n, nil
}

// start starts the node of Start once its data dir is locked.
func start(ctx context.Context, cfg Config, log *slog.Logger) (*Node, error) {
	host, portStr, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(portStr)
	if port != 0 {
		if err := checkPortFree(cfg.Listen); err != nil {
			return nil, err
		}
	} else {
		port = natsserver.RANDOM_PORT
	}
	if err := checkKafkaPortFree(cfg.KafkaListen); err != nil {
		return nil, err
	}

	opts := &natsserver.Options{
		ServerName:             cfg.Name,
		Host:                   host,
		Port:                   port,
		JetStream:              true,
		StoreDir:               cfg.DataDir,
		MaxPayload:             cfg.MaxPayload,
		MaxPending:             cfg.MaxPending,
		NoSigs:                 true,
		Debug:                  cfg.NATSDebug,
		DisableJetStreamBanner: true,
		// A silently cut connection (a network partition drops packets without a
		// reset) is noticed after MaxPingsOut unanswered pings, not after NATS's
		// default of minutes.
		PingInterval: clientPingInterval,
		MaxPingsOut:  maxPingsOut,
		// A node that stops on purpose tells its clients to move (lame-duck
		// mode, see Close), gives them lameDuckGrace to do so, then closes the
		// rest within lameDuckDuration.
		LameDuckGracePeriod: lameDuckGrace,
		LameDuckDuration:    lameDuckDuration,
	}
	syncOptions(cfg.Sync, opts)
	cfgNodes := 1
	if cfg.clustered() {
		hp, _ := cfg.clusterAddr()
		cport, _ := strconv.Atoi(hp[1])
		if cport == 0 {
			cport = natsserver.RANDOM_PORT
		} else if err := checkPortFree(net.JoinHostPort(hp[0], hp[1])); err != nil {
			return nil, fmt.Errorf("cluster %w", err)
		}
		name := cfg.ClusterName
		if name == "" {
			name = "qxd"
		}
		opts.Cluster = natsserver.ClusterOpts{Name: name, Host: hp[0], Port: cport,
			PingInterval: routePingInterval, MaxPingsOut: maxPingsOut}
		var self []string
		opts.Routes, self = peerRoutes(ctx, cfg.Peers, hp[0], portString(cport))
		cfgNodes = len(opts.Routes) + 1
		if len(self) > 0 {
			log.Debug("peers that are this node are not routed to", "peers", self)
		}
	}
	if err := applyTLS(cfg, opts); err != nil {
		return nil, err
	}
	var auth *authenticator
	var internalKey nkeys.KeyPair
	if cfg.Auth.Enabled() {
		var err error
		if auth, internalKey, err = newAuthenticator(cfg.Auth, log); err != nil {
			return nil, err
		}
		opts.CustomClientAuthentication = auth
		opts.AlwaysEnableNonce = true // nkey and JWT clients sign it
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure embedded NATS server: %w", err)
	}
	nlog := &natsLogger{log: log}
	ns.SetLoggerV2(nlog, cfg.NATSDebug, false, false)
	n := &Node{cfg: cfg, log: log, nlog: nlog, ns: ns, auth: auth, internalKey: internalKey, configuredNodes: cfgNodes}
	if auth != nil {
		auth.reg.ns = ns
	}

	ns.Start()
	if err := n.waitReady(ctx); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	if err := n.startServices(ctx); err != nil {
		n.shutdownServer()
		return nil, err
	}
	n.startUpkeep()
	log.Info("node started", "listen", n.ClientURL(), "data", cfg.DataDir, "sync", FormatSync(cfg.Sync))
	if cfg.Sync != SyncAlways {
		log.Warn("node does not sync appends to disk before acknowledging them: a power failure can lose the acknowledged records, committed offsets and topic changes of up to the sync interval (run with --sync always to keep them)",
			"sync", FormatSync(cfg.Sync))
	}
	return n, nil
}

// syncOptions sets the embedded server's fsync policy from Config.Sync. With
// SyncAlways, nats-server syncs a single-replica stream's store on every write and a
// replicated stream's RAFT log before the append is acknowledged, as it does the
// JetStream meta log; docs/operations.md ("Durability") lists what that covers.
func syncOptions(sync time.Duration, opts *natsserver.Options) {
	if sync == SyncAlways {
		opts.SyncAlways = true
		opts.SyncInterval = 2 * time.Minute // the background sync, as nats-server's "sync_interval: always" sets it
		return
	}
	opts.SyncAlways = false
	opts.SyncInterval = sync
}

// waitReady waits until the server takes connections and JetStream is healthy: in a
// cluster, until a meta leader is elected, which needs a majority of the nodes up.
// A single node must be ready within 30s; a cluster node waits as long as ctx lets it.
func (n *Node) waitReady(ctx context.Context) error {
	start := time.Now()
	lastLog := start
	for {
		if err := n.nlog.fatalErr(); err != nil {
			return fmt.Errorf("start node %q: %w", n.cfg.Name, err)
		}
		if n.ns.ReadyForConnections(50*time.Millisecond) && n.ns.JetStreamEnabled() {
			if !n.cfg.clustered() {
				return nil
			}
			h := n.ns.Healthz(&natsserver.HealthzOptions{JSMetaOnly: true})
			if h.Status == "ok" {
				return nil
			}
			if time.Since(lastLog) > 5*time.Second {
				lastLog = time.Now()
				n.log.Info("waiting for the cluster: a majority of the nodes must be up (for a brand-new cluster's first start, all nodes but one)",
					"nodes", n.configuredNodes, "status", h.Error)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("start node %q: %w", n.cfg.Name, err)
		}
		if !n.cfg.clustered() && time.Since(start) > 30*time.Second {
			return fmt.Errorf("start node %q: not ready after 30s (listen %s, data %s)", n.cfg.Name, n.cfg.Listen, n.cfg.DataDir)
		}
	}
}

// ClusterURL is the address other nodes route to ("" for a single node).
func (n *Node) ClusterURL() string {
	if !n.cfg.clustered() {
		return ""
	}
	addr := n.ns.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats://" + addr.String()
}

// clusterSize is the number of JetStream nodes the cluster knows, 1 for a single node.
func (n *Node) clusterSize() int {
	if !n.ns.JetStreamIsClustered() {
		return 1
	}
	info, err := n.ns.Jsz(&natsserver.JSzOptions{})
	if err != nil || info.Meta == nil {
		return 1
	}
	return max(1, info.Meta.Size)
}

func (n *Node) startServices(ctx context.Context) error {
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(n.ns), nats.Name("qxd-node-" + n.cfg.Name),
		nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)}, internalOptions(n.internalKey)...)...)
	if err != nil {
		return fmt.Errorf("connect services to the embedded server: %w", err)
	}
	n.nc = nc
	n.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	for i := range writerConns() {
		wc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(n.ns),
			nats.Name(fmt.Sprintf("qxd-node-%s-writers-%d", n.cfg.Name, i)),
			nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)}, internalOptions(n.internalKey)...)...)
		if err != nil {
			return fmt.Errorf("connect partition writers to the embedded server: %w", err)
		}
		n.wconns = append(n.wconns, wc)
	}
	// qxd's buckets get their target replicas if the cluster can place them; a
	// cluster that formed before all its nodes are up cannot, and they are created
	// with as many as nodes are up, to be raised once more are (see upkeep.go).
	replicas := n.targetMetaReplicas()
	var meta *metadata
	err = retryClustered(ctx, n, func() error {
		// Bound each attempt: a request can go unanswered while leaders change.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		meta, err = openMetadata(actx, n.js, replicas)
		if err == nil {
			n.groups, err = newGroupService(actx, n.groupEnv(), meta, replicas)
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeNoPeers {
			if r := n.metaReplicas(); r < replicas {
				n.log.Info("system buckets created with fewer replicas until more nodes are up", "replicas", r, "target", replicas)
				replicas = r
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if n.auth != nil {
		if err := n.auth.reg.watch(ctx, meta.topics); err != nil {
			return fmt.Errorf("watch topics for permissions: %w", err)
		}
	}
	n.epochs = &epochs{n: n, groups: map[string]raftGroup{}}
	n.writers = newWriterManager(writerEnv{log: n.log, node: n.ns.Name(), conn: n.writerConn, reads: n.nc, store: n.replayStore, replays: &n.replays, lookups: &n.lookups, leads: n, checkpoints: meta, obs: &n.obs,
		epoch: n.epochs.of, producerIdle: n.cfg.ProducerIDExpiration, syncAlways: n.cfg.Sync == SyncAlways,
		stores: n.storeSync, noDurabilityTick: &n.noDurabilityTick}, meta.topics)
	// The topics watch needs the topics bucket's leader, which may be changing
	// while another node is down: retry as for the buckets.
	if err := retryClustered(ctx, n, func() error { return n.writers.start(ctx) }); err != nil {
		return err
	}
	n.groups.run()
	if err := retryClustered(ctx, n, func() error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		n.txns, err = newTxnService(actx, n.log, n.js, coordinatorLeadership{n}, replicas, n.Writers(), n.groups.offsets, meta, n.groups)
		return err
	}); err != nil {
		return err
	}
	n.groups.txns.Store(n.txns)
	n.txns.run()
	n.fetch = &Fetcher{nc: n.nc, topics: meta, checkpoints: meta, writers: n.Writers(), obs: &n.obs,
		damage: meta, log: n.log, node: n.ns.Name()}
	var perms *permRegistry
	if n.auth != nil {
		perms = n.auth.reg
	}
	n.admin = &Admin{log: n.log, nc: n.nc, js: n.js, meta: meta, ns: n.ns, place: n,
		follow: nodeTopics{writers: n.writers, perms: perms}, offsets: n.groups.offsets, sync: n.cfg.Sync,
		stable: &stableOffsets{nc: n.nc, node: n.cfg.Name, writers: n.Writers()}, reaches: n.reaches}
	if err := n.startHosted(ctx, meta); err != nil {
		return err
	}
	n.api = &adminDoor{admin: n.admin, nc: n.nc, node: n.cfg.Name, hosted: n.serveHosted, handOff: n.serveHandOff, obs: &n.obs}
	if err := n.api.start(); err != nil {
		return err
	}
	n.txnAPI = &txnDoor{nc: n.nc, node: n.cfg.Name, writers: n.Writers(), txns: n.Transactions(), obs: &n.obs}
	if err := n.txnAPI.start(); err != nil {
		return err
	}
	return n.startKafka()
}

// groupEnv is what the group coordinator's host gets from the node.
func (n *Node) groupEnv() groupEnv {
	cfg := coordinator.DefaultConfig()
	cfg.Logger = n.log
	if n.cfg.GroupInitialRebalanceDelay > 0 {
		cfg.InitialRebalanceDelay = n.cfg.GroupInitialRebalanceDelay
	}
	return groupEnv{log: n.log, nc: n.nc, js: n.js, leads: coordinatorLeadership{n}, cfg: cfg, obs: &n.obs}
}

// The node's services, in process: what its NATS handlers call, and what another
// front door calls alike.

// Writers returns the node's produce service.
func (n *Node) Writers() *Writers { return &Writers{m: n.writers} }

// Fetcher returns the node's fetch service.
func (n *Node) Fetcher() *Fetcher { return n.fetch }

// Groups returns the node's group service. One node of a cluster coordinates the
// groups at a time: the one that leads the qxd_groups bucket's stream. On the
// others every method fails with NOT_COORDINATOR (semantics.ErrNotCoordinator), as
// a Kafka broker that is not a group's coordinator answers; the service follows
// leadership, so the same value serves when this node takes over.
func (n *Node) Groups() GroupCoordinator { return n.groups }

// Transactions returns the node's transaction service. One node of a cluster
// coordinates transactions at a time: the one that coordinates groups (it leads
// the qxd_groups bucket's stream); on the others every request fails with
// NOT_COORDINATOR.
func (n *Node) Transactions() *Transactions { return &Transactions{s: n.txns} }

// Admin returns the node's admin service.
func (n *Node) Admin() *Admin { return n.admin }

var (
	_ streamLeadership = (*Node)(nil)
	_ placement        = (*Node)(nil)
	_ topicFollowers   = nodeTopics{}
)

// nodeTopics tells a node's writers and permissions of a topic change made on this
// node, so that producers and clients of this node may use it as soon as the admin
// request is answered.
type nodeTopics struct {
	writers *writerManager
	perms   *permRegistry // nil without authentication
}

func (f nodeTopics) topicChanged(ctx context.Context, t semantics.TopicMeta) {
	f.writers.sync(ctx, t)
	if f.perms != nil {
		f.perms.setTopic(t.Name, &semantics.TopicPerms{Name: t.Name, ID: t.ID, Partitions: t.Config.Partitions})
	}
}

func (f nodeTopics) topicRemoved(ctx context.Context, name string) {
	f.writers.forget(ctx, name)
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// ClientURL is the nats:// URL clients connect to.
func (n *Node) ClientURL() string { return n.ns.ClientURL() }

// NATSServer exposes the embedded server, for tests and tools that need it.
func (n *Node) NATSServer() *natsserver.Server { return n.ns }

// InProcessConn implements nats.InProcessConnProvider, so a client in the same
// process can connect without a socket.
func (n *Node) InProcessConn() (net.Conn, error) { return n.ns.InProcessConn() }

// isStreamLeader reports whether this node leads stream. A node that is not part of
// a cluster leads every stream it has.
func (n *Node) isStreamLeader(stream string) bool {
	if !n.ns.JetStreamIsClustered() {
		return true
	}
	return n.ns.JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, stream)
}

// Close stops the services (writers finish what they have in flight), drains the
// services' connection and shuts the server down, within cfg.ShutdownTimeout or
// ctx, whichever ends first. Close is idempotent.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		// Background upkeep first: nothing moves leaders or buckets during a stop.
		n.stopUpkeep()
		n.stopKafka(ctx)
		// Stop serving first: writers finish and answer what they have in flight,
		// then hand every leadership off, so producers and group members move to other
		// nodes at once instead of after an election timeout.
		if n.api != nil {
			n.api.stop()
		}
		if n.txnAPI != nil {
			n.txnAPI.stop()
		}
		// Before the writers, which it writes markers through.
		if n.txns != nil {
			n.txns.stop()
		}
		// The last node of a cluster to stop has no quorum: the JetStream API has no
		// meta leader and replicated buckets and partitions take no writes. Every
		// request of its services (a watch's consumer delete, a last checkpoint)
		// would wait out its timeout; with their connection closed they fail at
		// once. What they would have written could not be written anyway. Peers
		// that die during the stop (killed a moment before it) make this node the
		// last one up while it stops: the same then happens at that moment.
		last := n.lastUp()
		var became atomic.Bool
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		if last {
			n.becomeLast(wcancel)
		} else {
			stopWatch := n.watchLastUp(ctx, func() {
				became.Store(true)
				n.becomeLast(wcancel)
			})
			defer stopWatch()
		}
		// Before the writers: ingest bridges finish and answer what they took.
		n.stopHosted(ctx)
		handOffStart := time.Now()
		var handed []string
		if !last {
			handed = n.handOffPartitions(wctx)
		}
		if n.writers != nil {
			// With no other node up, appends in flight and the last checkpoints of
			// replicated partitions and buckets cannot reach a quorum. Waiting for
			// them only delays the stop; what was not acknowledged is retried by
			// its producer once a quorum is back.
			if err := n.writers.stop(wctx); err != nil && ctx.Err() == nil {
				n.log.Debug("writers stopped with appends or checkpoints unfinished: no quorum", "err", err)
			} else {
				errs = append(errs, err)
			}
		}
		if n.groups != nil {
			n.groups.stop()
		}
		hctx, hcancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout/2)
		handed = append(handed, n.handOffLeadership(hctx)...)
		hcancel()
		// Clients are sent away (lame-duck mode, below) once every leadership
		// handed off has its successor serving: meanwhile this node's clients
		// keep producing through it, to the successors.
		if len(handed) > 0 && !became.Load() {
			sctx, scancel := context.WithDeadline(ctx, handOffStart.Add(successorsWait))
			if left := n.awaitSuccessors(sctx, handed); len(left) > 0 {
				names := make([]string, len(left))
				for i, s := range left {
					names[i] = leadershipName(s)
				}
				slices.Sort(names)
				n.log.Warn("stopping without a serving successor for some leaderships handed off: not elected or their writers not answering",
					"leaderships", strings.Join(names, ", "), "waited", time.Since(handOffStart).Round(time.Millisecond))
			} else {
				n.log.Info("the leaderships handed off have successors serving", "streams", len(handed),
					"took", time.Since(handOffStart).Round(time.Millisecond))
			}
			scancel()
		}
		for _, wc := range n.wconns {
			wc.Close() // the writers stopped: nothing is in flight on them
		}
		if n.nc != nil {
			drained := make(chan struct{})
			n.nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
			if err := n.nc.Drain(); err == nil {
				select {
				case <-drained:
				case <-ctx.Done():
					n.nc.Close()
				}
			}
		}
		if n.auth != nil {
			n.auth.reg.stop()
		}
		if n.cfg.clustered() && !last && !became.Load() {
			mctx, mcancel := context.WithTimeout(ctx, metaHandOffWait)
			n.awaitMetaHandedOff(mctx, n.handOffMeta())
			mcancel()
			n.lameDuck(ctx)
		}
		n.shutdownServer()
		n.lock.release()
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// metaHandOffWait bounds how long a stopping node waits for its step-down from
// JetStream's meta group (handOffMeta) before lame-duck mode, which steps it down
// again if it still leads and waits a second.
const metaHandOffWait = 500 * time.Millisecond

// lastNodeWriterStop bounds the writers' stop on a node that no other node of its
// cluster is up with.
const lastNodeWriterStop = 2 * time.Second

// becomeLast is what a node does once it is the last of its cluster up while it
// stops: it closes its services' connection, so that their requests to the
// JetStream API fail at once instead of waiting for a meta leader, and it ends
// the writers' stop (through endWriters) lastNodeWriterStop later.
func (n *Node) becomeLast(endWriters context.CancelFunc) {
	if n.nc != nil {
		n.nc.Close()
	}
	time.AfterFunc(lastNodeWriterStop, endWriters)
}

// watchLastUp calls became once, when this node finds itself the last one of its
// cluster up, checking every 100 ms until ctx ends or stop is called.
func (n *Node) watchLastUp(ctx context.Context, became func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	go everyTick(ctx, 100*time.Millisecond, func() bool {
		if !n.lastUp() {
			return true
		}
		n.log.Debug("no other node is up any more: stopping without waiting for a quorum")
		became()
		return false
	})
	return cancel
}

// everyTick calls f every d until ctx ends or f returns false.
func everyTick(ctx context.Context, d time.Duration, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !f() {
			return
		}
	}
}

// lastUp reports whether this node is in a cluster and no other node of it is up.
func (n *Node) lastUp() bool {
	if !n.cfg.clustered() {
		return false
	}
	// No route to any peer: none is up that this node can reach, whatever the
	// meta group still thinks. A peer that died without a goodbye (a kill, a
	// crash) counts as online there for seconds after its routes are gone.
	if n.ns.NumRoutes() == 0 {
		return true
	}
	for _, name := range n.onlineNodes() {
		if name != n.cfg.Name {
			return false
		}
	}
	return true
}

// The lame-duck mode of a node that stops on purpose: clients are told to move
// (nats.go calls its LameDuckModeHandler; the SDK reconnects to another node at
// once), and those still connected after lameDuckGrace are closed, spread over
// the rest of lameDuckDuration.
const (
	lameDuckGrace    = 500 * time.Millisecond
	lameDuckDuration = time.Second
)

// lameDuck stops the client listener, tells the clients that the node is stopping
// and closes their connections (NATS's lame-duck mode), so that clients move to
// the other nodes while this one still serves them instead of being cut off with
// what they had just written. It ends with the server's shutdown, or when ctx
// ends. The node's own connections are closed before it.
func (n *Node) lameDuck(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.ns.LameDuckShutdown()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.ns.Shutdown()
		<-done
	}
}

func (n *Node) shutdownServer() {
	for _, wc := range n.wconns {
		wc.Close()
	}
	if n.nc != nil && !n.nc.IsClosed() {
		n.nc.Close()
	}
	n.ns.Shutdown()
	n.ns.WaitForShutdown()
}

func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir %q is unusable: %w (choose another with --data)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".qxd-write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %q is not writable: %w (fix its permissions or choose another with --data)", dir, err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

func checkPortFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen address %s is not available: %w (stop what uses it or choose another with --listen)", addr, err)
	}
	return l.Close()
}

// retryClustered runs f until it succeeds; in a cluster, metadata operations fail
// while leaders are still being elected, so they are retried until ctx ends.
func retryClustered(ctx context.Context, n *Node, f func() error) error {
	for {
		err := f()
		if err == nil || !n.cfg.clustered() {
			return err
		}
		n.log.Debug("cluster not ready for metadata yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reaches is what this node's answers to semantics.NodeInfoSubject say of the
// nodes it reaches (semantics.BrokerInfo.Reaches); nil before its upkeep runs.
func (n *Node) reaches() map[string]int64 {
	w := n.probes.Load()
	if w == nil {
		return nil
	}
	return w.reaches(time.Now(), routedServers(n.ns))
}
