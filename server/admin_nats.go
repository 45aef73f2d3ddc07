package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// adminTimeout bounds one admin API request: the NATS door handles each under a
// context with this deadline, so a request stuck on a bucket or a stream between
// leaders is answered with its error and does not hold its handler.
const adminTimeout = 30 * time.Second

// adminDoor is the NATS door of the admin service: it takes the admin API
// (semantics.API*) on every node, over a queue group, and, node to node, this node's
// leadership hand-off requests and address. Each request is decoded, handed to the
// Admin service (or to the embedder's services) and its answer encoded.
type adminDoor struct {
	admin   *Admin
	nc      *nats.Conn
	node    string                                       // this node's name, for its hand-off subject
	hosted  func(context.Context, *nats.Msg) (any, bool) // the embedder's services' API
	handOff func(*nats.Msg)                              // answers a hand-off request
	obs     *observers
	wg      sync.WaitGroup

	sub  *nats.Subscription
	hsub *nats.Subscription // this node's leadership hand-off requests
	isub *nats.Subscription // this node's address, for metadata requests
}

func (d *adminDoor) start() error {
	sub, err := d.nc.QueueSubscribe(semantics.APIAllSubjects, semantics.APIQueueGroup, func(m *nats.Msg) {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.serve(m)
		}()
	})
	if err != nil {
		return fmt.Errorf("start admin API: %w", err)
	}
	d.sub = sub
	d.hsub, err = d.nc.Subscribe(semantics.HandOffSubject(d.node), func(m *nats.Msg) {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.handOff(m)
		}()
	})
	if err != nil {
		return fmt.Errorf("start admin API: %w", err)
	}
	d.isub, err = d.nc.Subscribe(semantics.NodeInfoSubject, d.admin.serveNodeInfo)
	if err != nil {
		return fmt.Errorf("start admin API: %w", err)
	}
	// Make sure the server has the subscriptions before the node reports ready.
	return d.nc.Flush()
}

func (d *adminDoor) stop() {
	for _, s := range []*nats.Subscription{d.sub, d.hsub, d.isub} {
		if s != nil {
			s.Unsubscribe()
		}
	}
	d.wg.Wait()
}

// serve answers one admin API request within adminTimeout (a repair within
// repairTimeout).
func (d *adminDoor) serve(m *nats.Msg) {
	timeout := adminTimeout
	if op, _ := semantics.SplitTopicAPISubject(m.Subject); op == semantics.APITopicRepair {
		timeout = repairTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := json.Marshal(d.handle(ctx, m))
	if err != nil {
		b, _ = json.Marshal(semantics.TopicResponse{Error: semantics.NewAPIError(err)})
	}
	d.obs.answeredJSON(m.Subject, b)
	_ = m.Respond(b)
}

// handle decodes m by its subject, calls the Admin method for it and returns the
// answer to encode.
func (d *adminDoor) handle(ctx context.Context, m *nats.Msg) any {
	a := d.admin
	fail := func(err error) *semantics.APIError { return semantics.NewAPIError(err) }
	bad := func(err error) *semantics.APIError {
		return fail(semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err))
	}
	// Per-topic subjects (semantics.TopicAPISubject) carry the topic, so that
	// permissions can name it; the body must name the same topic.
	subject, err := topicSubject(m)
	if err != nil {
		return semantics.TopicResponse{Error: fail(err)}
	}
	switch subject {
	case semantics.APITopicCreate:
		var req semantics.CreateTopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.TopicResponse{Error: bad(err)}
		}
		t, existed, err := a.CreateTopic(ctx, req)
		resp := topicResponse(t, err)
		resp.Existed = existed
		return resp
	case semantics.APITopicDelete:
		var req semantics.DeleteTopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.TopicResponse{Error: bad(err)}
		}
		t, err := a.DeleteTopic(ctx, req)
		if err == nil && t.Name == "" {
			return semantics.TopicResponse{} // IfExists, and there was none
		}
		return topicResponse(t, err)
	case semantics.APITopicAlterConfig:
		var req semantics.AlterTopicConfigRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.TopicResponse{Error: bad(err)}
		}
		return topicResponse(a.AlterTopicConfig(ctx, req))
	case semantics.APITopicDeleteRecords:
		var req semantics.DeleteRecordsRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.DeleteRecordsResponse{Error: bad(err)}
		}
		r, err := a.DeleteRecords(ctx, req)
		if err != nil {
			return semantics.DeleteRecordsResponse{Error: fail(err)}
		}
		return semantics.DeleteRecordsResponse{LogStartOffset: r.LogStartOffset, Batches: r.Batches}
	case semantics.APITopicAddPartitions:
		var req semantics.AddPartitionsRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.TopicResponse{Error: bad(err)}
		}
		return topicResponse(a.AddPartitions(ctx, req))
	case semantics.APITopicList:
		topics, err := a.ListTopics(ctx)
		return semantics.ListTopicsResponse{Error: fail(err), Topics: topics}
	case semantics.APITopicRebalance:
		var req semantics.TopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.RebalanceResponse{Error: bad(err)}
		}
		r, err := a.RebalanceTopic(ctx, req.Name)
		return semantics.RebalanceResponse{Error: fail(err), Moves: r.Moves, LeadersMoved: r.LeadersMoved}
	case semantics.APITopicDescribe:
		var req semantics.TopicRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.DescribeTopicResponse{Error: bad(err)}
		}
		d, err := a.DescribeTopic(ctx, req.Name)
		if err != nil {
			return semantics.DescribeTopicResponse{Error: fail(err)}
		}
		return semantics.DescribeTopicResponse{Topic: &d.Topic, Partitions: d.Partitions}
	case semantics.APITopicVerify:
		var req semantics.VerifyPartitionRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.VerifyPartitionResponse{Error: bad(err)}
		}
		resp, err := a.VerifyPartition(ctx, req)
		if err != nil {
			return semantics.VerifyPartitionResponse{Error: fail(err)}
		}
		return resp
	case semantics.APITopicRepair:
		var req semantics.RepairPartitionRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.RepairPartitionResponse{Error: bad(err)}
		}
		resp, err := a.RepairPartition(ctx, req)
		resp.Error = fail(err)
		return resp
	case semantics.APITopicReportDamage:
		var req semantics.ReportDamageRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.ReportDamageResponse{Error: bad(err)}
		}
		return semantics.ReportDamageResponse{Error: fail(a.ReportDamage(ctx, req))}
	case semantics.APIClusterInfo:
		info, err := a.ClusterInfo(ctx)
		if err != nil {
			return semantics.ClusterInfo{Error: fail(err)}
		}
		return info
	case semantics.APIClusterMetadata:
		var req semantics.MetadataRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.Metadata{Error: bad(err)}
		}
		md, err := a.Metadata(ctx, req)
		if err != nil {
			return semantics.Metadata{Error: fail(err)}
		}
		return md
	}
	if resp, ok := d.hosted(ctx, m); ok {
		return resp
	}
	return semantics.TopicResponse{Error: fail(unknownSubject(m.Subject))}
}

func topicResponse(t semantics.TopicMeta, err error) semantics.TopicResponse {
	if err != nil {
		return semantics.TopicResponse{Error: semantics.NewAPIError(err)}
	}
	return semantics.TopicResponse{Topic: &t}
}

// unknownSubject is the error for an admin subject no part of the node serves.
func unknownSubject(subject string) error {
	if _, ok := semantics.CutSubject(subject, semantics.APIBridgePrefix); ok {
		return semantics.Errorf(semantics.ErrInvalidRequest,
			"%s: this node does not host bridges: run it with 'qxd server' (embedded: add bridge.Service to server.Config.Services)", subject)
	}
	return semantics.Errorf(semantics.ErrInvalidRequest, "unknown API subject %s", subject)
}
