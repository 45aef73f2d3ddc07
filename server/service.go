package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// Service is a part of a node that its embedder adds through Config.Services: NATS
// bridges, a front door. A node starts every service once its own services (topics,
// writers, groups) are up, before it serves the admin API, and stops them before its
// partition writers, so that what a service took is stored and answered. The same
// Service starts on every node of a process (a test cluster shares one Config), so
// it keeps its state in what Start returns.
type Service interface {
	// Start starts the service on the node h stands for. In a cluster still
	// electing leaders it fails and the node calls it again until ctx ends, so a
	// failed Start releases what it took; an error wrapped with Permanent stops
	// the node's start at once.
	Start(ctx context.Context, h Host) (Running, error)
}

// Permanent marks err, from a Service's Start, as one that trying again cannot
// fix (a bad address, a port in use): the node does not retry, and fails to start
// with err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Running is a started Service.
type Running interface {
	// Close stops the service within ctx. The node calls it once.
	Close(ctx context.Context)
}

// APIServer is a Running that answers some of the admin API's subjects
// (semantics.API*), which the node receives in its admin queue group.
type APIServer interface {
	// ServeAPI answers m, or returns false when m's subject is not the service's.
	// The node sends the answer as JSON.
	ServeAPI(ctx context.Context, m *nats.Msg) (resp any, ok bool)
}

// Host is what a Service gets from the node it runs on.
type Host interface {
	// Name is the node's name.
	Name() string
	// Conn is the node's in-process connection for its services.
	Conn() *nats.Conn
	// JetStream is the JetStream API over Conn.
	JetStream() jetstream.JetStream
	// Logger is the node's logger.
	Logger() *slog.Logger
	// Clustered reports whether the node's JetStream is clustered.
	Clustered() bool
	// IsStreamLeader reports whether this node leads stream (always, on a single
	// node): a service that must run on one node runs where a stream of its own
	// is led.
	IsStreamLeader(stream string) bool
	// Replicas is the replication factor for a service's own streams: the one of
	// qxd's buckets now.
	Replicas() int
	// OpenBucket opens the service's KV bucket, creating it as qxd's own buckets
	// are (cfg.Replicas is set by the node), and keeps its replicas raised with
	// theirs as the cluster grows.
	OpenBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
	// Topic reads a topic's metadata; semantics.ErrUnknownTopic when there is none.
	Topic(ctx context.Context, name string) (semantics.TopicMeta, error)
	// Checkpoint reads the next offset the last checkpoint of a partition records
	// (of the topic with ID topicID).
	Checkpoint(ctx context.Context, topicID string, p int32) (int64, error)
	// ResetOffsets sets a consumer group's committed offsets.
	ResetOffsets(ctx context.Context, group string, offsets map[semantics.TopicPartition]int64) error

	// The node's services, in process, for a front door a Service adds (a Kafka
	// listener): the same the node's NATS handlers call.

	// Writers is the produce service.
	Writers() *Writers
	// Fetcher is the fetch service.
	Fetcher() *Fetcher
	// Groups is the group coordinator.
	Groups() GroupCoordinator
	// Admin is the admin service.
	Admin() *Admin

	// For a service that watches the node (server/httpapi):

	// Observe registers o to see the node's appends and answered requests until
	// remove is called.
	Observe(o Observer) (remove func())
	// Ready reports what keeps the node from serving clients: JetStream not running
	// or not current with a meta leader, the partition writers not started. None
	// when the node is ready.
	Ready() []string
	// Sync is the node's sync setting (Config.Sync).
	Sync() time.Duration
	// KafkaFetchSessions reads the Kafka listener's fetch session figures; false
	// when the node has no Kafka listener.
	KafkaFetchSessions() (kafka.FetchSessionStats, bool)
	// KafkaFetchReads counts the batches the Kafka listener read for fetches,
	// from its own store and through NATS; false when the node has no Kafka
	// listener.
	KafkaFetchReads() (KafkaFetchReads, bool)
	// WriterReplays counts the batches the partition writers' loads replayed,
	// from the node's own store and through NATS.
	WriterReplays() WriterReplays
	// WriterLoadLookups counts the partition writers' loads' reads of their
	// stream state, stored checkpoint and abort markers, from the node's own
	// store and with JetStream API requests.
	WriterLoadLookups() WriterLoadLookups

	// For a front door that authenticates its clients (server/httpapi):

	// AuthEnabled reports whether the node's clients must authenticate (Config.Auth).
	AuthEnabled() bool
	// Authenticate checks a user name and password against the node's users, as
	// the NATS and Kafka ports check them (a user "" with a token as password
	// checks the node's tokens), and returns the identity's name and grant.
	Authenticate(user, password string) (name string, grant semantics.Grant, err error)
}

// nodeHost is a node as the Host of its services.
type nodeHost struct {
	n    *Node
	meta *metadata
}

var _ Host = nodeHost{}

func (h nodeHost) Name() string                      { return h.n.cfg.Name }
func (h nodeHost) Conn() *nats.Conn                  { return h.n.nc }
func (h nodeHost) JetStream() jetstream.JetStream    { return h.n.js }
func (h nodeHost) Logger() *slog.Logger              { return h.n.log }
func (h nodeHost) Clustered() bool                   { return h.n.ns.JetStreamIsClustered() }
func (h nodeHost) IsStreamLeader(stream string) bool { return h.n.isStreamLeader(stream) }
func (h nodeHost) Replicas() int                     { return h.n.metaReplicas() }

func (h nodeHost) OpenBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	// As for qxd's own buckets (see startServices): the target replicas, or as many
	// nodes as are up while a new cluster forms; upkeep raises them later.
	cfg.Replicas = h.n.targetMetaReplicas()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := openBucket(actx, h.n.js, cfg)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeNoPeers {
		if r := h.n.metaReplicas(); r < cfg.Replicas {
			h.n.log.Info("system buckets created with fewer replicas until more nodes are up", "replicas", r, "target", cfg.Replicas)
			cfg.Replicas = r
			kv, err = openBucket(actx, h.n.js, cfg)
		}
	}
	if err != nil {
		return nil, err
	}
	h.n.hostBucket(cfg.Bucket)
	return kv, nil
}

func (h nodeHost) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return h.meta.getTopic(ctx, name)
}

func (h nodeHost) Checkpoint(ctx context.Context, topicID string, p int32) (int64, error) {
	ck, err := h.meta.getCheckpoint(ctx, topicID, p)
	return ck.Next, err
}

func (h nodeHost) Writers() *Writers         { return h.n.Writers() }
func (h nodeHost) Fetcher() *Fetcher         { return h.n.Fetcher() }
func (h nodeHost) Groups() GroupCoordinator  { return h.n.Groups() }
func (h nodeHost) Admin() *Admin             { return h.n.Admin() }
func (h nodeHost) Observe(o Observer) func() { return h.n.obs.add(o) }
func (h nodeHost) Ready() []string           { return h.n.ready() }
func (h nodeHost) Sync() time.Duration       { return h.n.cfg.Sync }
func (h nodeHost) AuthEnabled() bool         { return h.n.auth != nil }

func (h nodeHost) KafkaFetchSessions() (kafka.FetchSessionStats, bool) {
	return h.n.KafkaFetchSessions()
}

func (h nodeHost) KafkaFetchReads() (KafkaFetchReads, bool) { return h.n.KafkaFetchReads() }

func (h nodeHost) WriterReplays() WriterReplays { return h.n.WriterReplays() }
func (h nodeHost) WriterLoadLookups() WriterLoadLookups {
	return h.n.WriterLoadLookups()
}

func (h nodeHost) Authenticate(user, password string) (string, semantics.Grant, error) {
	if h.n.auth == nil {
		return "", semantics.Grant{}, errors.New("the node has no users: it authenticates no one")
	}
	return h.n.auth.checkUserOrToken(user, password)
}

func (h nodeHost) ResetOffsets(ctx context.Context, group string, offsets map[semantics.TopicPartition]int64) error {
	if h.n.groups == nil || h.n.groups.offsets == nil {
		return semantics.Errorf(semantics.ErrUnavailable, "offsets store not open; retry")
	}
	return h.n.groups.offsets.Reset(ctx, group, offsets)
}

// hostBucket adds a service's bucket to the buckets upkeep raises the replicas of.
func (n *Node) hostBucket(bucket string) {
	n.servicesMu.Lock()
	defer n.servicesMu.Unlock()
	if !slices.Contains(n.hostedBuckets, bucket) {
		n.hostedBuckets = append(n.hostedBuckets, bucket)
	}
}

// buckets returns qxd's own buckets and the services'.
func (n *Node) buckets() []string {
	n.servicesMu.Lock()
	defer n.servicesMu.Unlock()
	return append(slices.Clone(systemBuckets), n.hostedBuckets...)
}

// startHosted starts the embedder's services (Config.Services) in order; when one
// fails, it stops those started before it.
func (n *Node) startHosted(ctx context.Context, meta *metadata) error {
	h := nodeHost{n: n, meta: meta}
	for i, s := range n.cfg.Services {
		var run Running
		var permanent error
		err := retryClustered(ctx, n, func() error {
			var err error
			run, err = s.Start(ctx, h)
			if errors.As(err, new(permanentError)) {
				permanent = err
				return nil // no retry
			}
			return err
		})
		if permanent != nil {
			err = permanent
		}
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
			n.stopHosted(sctx) // those started before it
			cancel()
			return fmt.Errorf("start service %d (%T): %w", i, s, err)
		}
		n.servicesMu.Lock()
		n.services = append(n.services, run)
		n.servicesMu.Unlock()
	}
	return nil
}

// stopHosted stops the started services, all at once, within ctx.
func (n *Node) stopHosted(ctx context.Context) {
	n.servicesMu.Lock()
	running := n.services
	n.services = nil
	n.servicesMu.Unlock()
	done := make(chan struct{}, len(running))
	for _, r := range running {
		go func() {
			defer func() { done <- struct{}{} }()
			r.Close(ctx)
		}()
	}
	for range running {
		<-done
	}
}

// serveHosted offers an admin request to the services; false when none serves its
// subject.
func (n *Node) serveHosted(ctx context.Context, m *nats.Msg) (any, bool) {
	n.servicesMu.Lock()
	running := slices.Clone(n.services)
	n.servicesMu.Unlock()
	for _, r := range running {
		if a, ok := r.(APIServer); ok {
			if resp, ok := a.ServeAPI(ctx, m); ok {
				return resp, true
			}
		}
	}
	return nil, false
}
