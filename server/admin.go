package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// admin serves the topic API (semantics.API*) on every node, over a queue group.
type admin struct {
	n    *Node
	meta *metadata
	sub  *nats.Subscription
	hsub *nats.Subscription // this node's leadership hand-off requests
	isub *nats.Subscription // this node's address, for metadata requests
	wg   sync.WaitGroup
}

func newAdmin(n *Node, meta *metadata) *admin { return &admin{n: n, meta: meta} }

func (a *admin) start() error {
	sub, err := a.n.nc.QueueSubscribe(semantics.APIAllSubjects, semantics.APIQueueGroup, func(m *nats.Msg) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.serve(m)
		}()
	})
	if err != nil {
		return fmt.Errorf("start admin API: %w", err)
	}
	a.sub = sub
	a.hsub, err = a.n.nc.Subscribe(handOffSubject(a.n.cfg.Name), func(m *nats.Msg) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.n.serveHandOff(m)
		}()
	})
	if err != nil {
		return fmt.Errorf("start admin API: %w", err)
	}
	a.isub, err = a.n.nc.Subscribe(semantics.NodeInfoSubject, a.serveNodeInfo)
	if err != nil {
		return fmt.Errorf("start admin API: %w", err)
	}
	// Make sure the server has the subscriptions before the node reports ready.
	return a.n.nc.Flush()
}

func (a *admin) stop() {
	for _, s := range []*nats.Subscription{a.sub, a.hsub, a.isub} {
		if s != nil {
			s.Unsubscribe()
		}
	}
	a.wg.Wait()
}

// adminTimeout bounds one admin operation.
const adminTimeout = 30 * time.Second

// dedupeWindow is the duplicate window of partition streams; see streamConfig.
const dedupeWindow = time.Second

func (a *admin) serve(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var resp any
	bad := func(err error) error {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err)
	}
	// Per-topic subjects (semantics.TopicAPISubject) carry the topic, so that
	// permissions can name it; the body must name the same topic.
	subject, serr := topicSubject(m)
	if serr != nil {
		b, _ := json.Marshal(semantics.TopicResponse{Error: semantics.NewAPIError(serr)})
		_ = m.Respond(b)
		return
	}
	switch subject {
	case semantics.APITopicCreate:
		var req semantics.CreateTopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.TopicResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		t, err := a.createTopic(ctx, req.Name, req.Config)
		if req.IfNotExists && errors.Is(err, semantics.ErrTopicExists) && t.State == semantics.TopicReady {
			resp = semantics.TopicResponse{Topic: &t, Existed: true}
			break
		}
		resp = topicResponse(t, err)
	case semantics.APITopicDelete:
		var req semantics.DeleteTopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.TopicResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		t, err := a.deleteTopic(ctx, req.Name)
		if req.IfExists && errors.Is(err, semantics.ErrUnknownTopic) {
			resp = semantics.TopicResponse{}
			break
		}
		resp = topicResponse(t, err)
	case semantics.APITopicAlterConfig:
		var req semantics.AlterTopicConfigRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.TopicResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		t, err := a.alterTopicConfig(ctx, req)
		resp = topicResponse(t, err)
	case semantics.APITopicDeleteRecords:
		var req semantics.DeleteRecordsRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.DeleteRecordsResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		resp = a.deleteRecords(ctx, req)
	case semantics.APITopicAddPartitions:
		var req semantics.AddPartitionsRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.TopicResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		t, err := a.addPartitions(ctx, req.Name, req.Total)
		resp = topicResponse(t, err)
	case semantics.APITopicList:
		topics, err := a.listTopics(ctx)
		resp = semantics.ListTopicsResponse{Error: semantics.NewAPIError(err), Topics: topics}
	case semantics.APITopicRebalance:
		var req semantics.TopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.RebalanceResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		resp = a.rebalance(ctx, req.Name)
	case semantics.APITopicDescribe:
		var req semantics.TopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.DescribeTopicResponse{Error: semantics.NewAPIError(bad(err))}
			break
		}
		resp = a.describeTopic(ctx, req.Name)
	case semantics.APIClusterInfo:
		resp = a.clusterInfo(ctx)
	case semantics.APIClusterMetadata:
		var req semantics.MetadataRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			resp = semantics.Metadata{Error: semantics.NewAPIError(bad(err))}
			break
		}
		resp = a.metadata(ctx, req)
	default:
		var ok bool
		if resp, ok = a.n.serveHosted(ctx, m); !ok {
			resp = semantics.TopicResponse{Error: semantics.NewAPIError(unknownSubject(m.Subject))}
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(semantics.TopicResponse{Error: semantics.NewAPIError(err)})
	}
	_ = m.Respond(b)
}

func topicResponse(t semantics.TopicMeta, err error) semantics.TopicResponse {
	if err != nil {
		return semantics.TopicResponse{Error: semantics.NewAPIError(err)}
	}
	return semantics.TopicResponse{Topic: &t}
}

// jetStreamPeers is how many nodes can hold a replica.
func (a *admin) jetStreamPeers() int { return a.n.clusterSize() }

func streamConfig(t semantics.TopicMeta, p int32) jetstream.StreamConfig {
	c := t.Config
	cfg := jetstream.StreamConfig{
		Name:        semantics.StreamName(t.Name, p),
		Description: fmt.Sprintf("qxd topic %s partition %d", t.Name, p),
		Subjects:    []string{semantics.StreamSubject(t.Name, p)},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxMsgs:     -1,
		MaxBytes:    c.RetentionBytes,
		MaxMsgSize:  c.MaxMessageBytes + 4096,
		AllowDirect: true,
		DenyDelete:  true,
		Metadata: map[string]string{
			"qxd.topic": t.Name, "qxd.topic_id": t.ID, "qxd.partition": strconv.Itoa(int(p)),
		},
	}
	if c.Retention > 0 && !c.Compact {
		cfg.MaxAge = c.Retention
	}
	// Writers tag every append with a message id only to chain appends (see
	// writer.go); JetStream's duplicate tracking of those ids is not needed, so its
	// window is kept short to keep its memory small.
	cfg.Duplicates = dedupeWindow
	if cfg.MaxAge > 0 && cfg.MaxAge < cfg.Duplicates {
		cfg.Duplicates = cfg.MaxAge
	}
	if c.Compact {
		cfg.MaxMsgsPerSubject = 1
		cfg.AllowMsgTTL = true
	}
	if c.Async() {
		cfg.PersistMode = jetstream.AsyncPersistMode
	}
	return cfg
}

func (a *admin) createTopic(ctx context.Context, name string, cfg semantics.TopicConfig) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	given := cfg
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return semantics.TopicMeta{}, fmt.Errorf("topic %q: %w", name, err)
	}
	if peers := a.jetStreamPeers(); cfg.Replicas > peers {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidReplicationFactor,
			"topic %q: %d replicas cannot be placed: the cluster has %d node(s) with JetStream; use --replicas %d or add nodes",
			name, cfg.Replicas, peers, peers)
	}
	t, err := a.meta.getTopic(ctx, name)
	switch {
	case errors.Is(err, semantics.ErrUnknownTopic):
		t = semantics.TopicMeta{Name: name, ID: semantics.NewTopicID(), Config: cfg, State: semantics.TopicCreating, Created: time.Now().UTC(),
			Overrides: semantics.ConfigOverrides(given)}
		rev, err := a.meta.putTopic(ctx, t)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrTopicExists, "topic %q already exists", name)
			}
			return semantics.TopicMeta{}, fmt.Errorf("create topic %q: %w", name, err)
		}
		t.Revision = rev
	case err != nil:
		return semantics.TopicMeta{}, err
	case t.State == semantics.TopicReady:
		return t, semantics.Errorf(semantics.ErrTopicExists, "topic %q already exists (%d partitions, id %s)", name, t.Config.Partitions, t.ID)
	case t.State == semantics.TopicDeleting:
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is being deleted: run 'qxd topic delete %s' again to finish, then create it", name, name)
	case t.Config != cfg:
		return t, semantics.Errorf(semantics.ErrTopicExists,
			"topic %q is half-created with a different configuration: create it again with the same settings to finish, or delete it", name)
	}
	// Creating: make every partition's stream, then mark the topic ready. A retry after
	// a failure lands here too and finishes the job.
	for p := int32(0); p < t.Config.Partitions; p++ {
		if err := a.createStream(ctx, streamConfig(t, p)); err != nil {
			return t, semantics.Errorf(semantics.ErrTopicNotReady,
				"topic %q: create partition %d: %v; the topic is half-created: retry the create to finish it", name, p, err)
		}
	}
	t.State = semantics.TopicReady
	rev, err := a.meta.putTopic(ctx, t)
	if err != nil {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q: mark ready: %v; retry the create to finish it", name, err)
	}
	t.Revision = rev
	if moved, err := a.n.BalanceLeaders(ctx, []semantics.TopicMeta{t}); err != nil {
		a.n.log.Warn("partition leaders not balanced", "topic", name, "err", err)
	} else if moved > 0 {
		a.n.log.Debug("partition leaders balanced", "topic", name, "moved", moved)
	}
	a.n.writers.sync(ctx, t)
	a.n.topicChanged(t)
	a.n.log.Info("topic created", "topic", name, "partitions", t.Config.Partitions)
	return t, nil
}

func (a *admin) deleteTopic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return t, err
	}
	if t.State != semantics.TopicDeleting {
		t.State = semantics.TopicDeleting
		rev, err := a.meta.putTopic(ctx, t)
		if err != nil {
			return t, fmt.Errorf("delete topic %q: %w (retry)", name, err)
		}
		t.Revision = rev
	}
	a.n.writers.forget(ctx, name)
	for p := int32(0); p < t.Config.Partitions; p++ {
		err := a.n.js.DeleteStream(ctx, semantics.StreamName(name, p))
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return t, fmt.Errorf("delete topic %q: partition %d: %w (retry the delete to finish)", name, p, err)
		}
		_ = a.meta.parts.Purge(ctx, semantics.CheckpointKey(t.ID, p))
	}
	// Groups' committed offsets go with the topic, as in Kafka. Those left behind
	// (this fails, or a member commits meanwhile) name this topic's id, so the
	// offsets store ignores them once the topic is gone or created again.
	if _, err := a.n.groups.offsets.DeleteTopicOffsets(ctx, name); err != nil {
		a.n.log.Warn("committed offsets of a deleted topic not removed; they are ignored", "topic", name, "err", err)
	}
	if err := a.meta.topics.Purge(ctx, semantics.TopicKey(name)); err != nil {
		return t, fmt.Errorf("delete topic %q: remove its record: %w (retry the delete to finish)", name, err)
	}
	a.n.log.Info("topic deleted", "topic", name)
	return t, nil
}

func (a *admin) addPartitions(ctx context.Context, name string, total int32) (semantics.TopicMeta, error) {
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return t, err
	}
	if t.State != semantics.TopicReady {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", name, t.State)
	}
	if total <= t.Config.Partitions {
		return t, semantics.Errorf(semantics.ErrInvalidPartitions,
			"topic %q has %d partitions: the new count %d must be larger (partitions can only be added)", name, t.Config.Partitions, total)
	}
	if total > semantics.MaxPartitions {
		return t, semantics.Errorf(semantics.ErrInvalidPartitions, "topic %q: %d partitions is over the limit of %d", name, total, semantics.MaxPartitions)
	}
	nt := t
	nt.Config.Partitions = total
	for p := t.Config.Partitions; p < total; p++ {
		if _, err := a.n.js.CreateOrUpdateStream(ctx, streamConfig(nt, p)); err != nil {
			return t, fmt.Errorf("topic %q: create partition %d: %w (retry; nothing changed for producers yet)", name, p, err)
		}
	}
	rev, err := a.meta.putTopic(ctx, nt)
	if err != nil {
		return t, fmt.Errorf("topic %q: record the new partition count: %w (retry)", name, err)
	}
	nt.Revision = rev
	a.n.writers.sync(ctx, nt)
	a.n.topicChanged(nt)
	a.n.log.Info("partitions added", "topic", name, "partitions", total)
	return nt, nil
}

func (a *admin) listTopics(ctx context.Context) ([]semantics.TopicMeta, error) {
	var topics []semantics.TopicMeta
	err := kvscan.Scan(ctx, a.meta.topics, jetstream.AllKeys, func() { topics = []semantics.TopicMeta{} },
		func(e jetstream.KeyValueEntry) error {
			t, err := decodeTopic(e)
			if err != nil {
				return err
			}
			topics = append(topics, t)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return topics, nil
}

func (a *admin) describeTopic(ctx context.Context, name string) semantics.DescribeTopicResponse {
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.DescribeTopicResponse{Error: semantics.NewAPIError(err)}
	}
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return semantics.DescribeTopicResponse{Error: semantics.NewAPIError(err)}
	}
	resp := semantics.DescribeTopicResponse{Topic: &t}
	for p := int32(0); p < t.Config.Partitions; p++ {
		r := partition.NewReader(a.n.nc, name, p, false)
		pi := semantics.PartitionInfo{Partition: p, Stream: r.Stream}
		o, err := r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
			ck, err := a.meta.getCheckpoint(ctx, t.ID, p)
			return ck.Next, err
		})
		if err != nil {
			pi.Problem = err.Error()
		} else {
			pi.Leader, pi.Replicas, pi.InSync = o.Leader, o.Replicas, o.InSync
			pi.LogStartOffset, pi.HighWatermark = o.LogStart, o.HighWatermark
			pi.Batches, pi.Bytes = o.Msgs, o.Bytes
			pi.Records = o.HighWatermark - o.LogStart
			if t.Config.Compact {
				pi.Records = int64(o.Msgs)
			}
		}
		resp.Partitions = append(resp.Partitions, pi)
	}
	return resp
}

func (a *admin) rebalance(ctx context.Context, name string) semantics.RebalanceResponse {
	t, err := a.meta.getTopic(ctx, name)
	if err == nil && t.State != semantics.TopicReady {
		err = semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", name, t.State)
	}
	if err != nil {
		return semantics.RebalanceResponse{Error: semantics.NewAPIError(err)}
	}
	moves, leaders, err := a.n.RebalanceTopic(ctx, t)
	if moves == nil {
		moves = []string{}
	}
	return semantics.RebalanceResponse{Error: semantics.NewAPIError(err), Moves: moves, LeadersMoved: leaders}
}

// createStream creates (or updates) a partition stream. Right after a cluster forms,
// or while a node rejoins, JetStream can refuse placement because it has not yet seen
// every peer online: that is retried for a while.
func (a *admin) createStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := a.n.js.CreateOrUpdateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != 10005 /* no suitable peers for placement */ || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// unknownSubject is the error for an admin subject no part of the node serves.
func unknownSubject(subject string) error {
	if strings.HasPrefix(subject, semantics.APIBridgePrefix) {
		return semantics.Errorf(semantics.ErrInvalidRequest,
			"%s: this node does not host bridges: run it with 'qxd server' (embedded: add bridge.Service to server.Config.Services)", subject)
	}
	return semantics.Errorf(semantics.ErrInvalidRequest, "unknown API subject %s", subject)
}
