package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestAdminServiceInProcess drives topic admin through Node.Admin, with typed
// requests and answers and no NATS request: create (again, with and without
// if-not-exists), describe, alter, add partitions, list, trim and delete.
func TestAdminServiceInProcess(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 60*time.Second)
	a := n.Admin()

	created, existed, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "svc.admin", Config: semantics.TopicConfig{Partitions: 2}})
	if err != nil || existed || created.State != semantics.TopicReady || created.Config.Partitions != 2 || created.ID == "" {
		t.Fatalf("create: %+v, existed %v, %v", created, existed, err)
	}
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "svc.admin"}); !errors.Is(err, semantics.ErrTopicExists) {
		t.Fatalf("create again: %v, want %v", err, semantics.ErrTopicExists)
	}
	again, existed, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "svc.admin", IfNotExists: true})
	if err != nil || !existed || again.ID != created.ID {
		t.Fatalf("create if not exists: %+v, existed %v, %v", again, existed, err)
	}
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "bad/name"}); !errors.Is(err, semantics.ErrInvalidTopic) {
		t.Fatalf("create with a bad name: %v, want %v", err, semantics.ErrInvalidTopic)
	}

	d, err := a.DescribeTopic(ctx, "svc.admin")
	if err != nil || d.Topic.ID != created.ID || len(d.Partitions) != 2 || d.Partitions[1].Problem != "" || d.Partitions[1].HighWatermark != 0 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	altered, err := a.AlterTopicConfig(ctx, semantics.AlterTopicConfigRequest{Name: "svc.admin", Set: map[string]string{"retention.ms": "3600000"}})
	if err != nil || altered.Config.Retention != time.Hour {
		t.Fatalf("alter: retention %v, %v; want 1h", altered.Config.Retention, err)
	}
	grown, err := a.AddPartitions(ctx, semantics.AddPartitionsRequest{Name: "svc.admin", Total: 3})
	if err != nil || grown.Config.Partitions != 3 {
		t.Fatalf("add partitions: %+v, %v", grown, err)
	}
	if _, err := a.AddPartitions(ctx, semantics.AddPartitionsRequest{Name: "svc.admin", Total: 2}); !errors.Is(err, semantics.ErrInvalidPartitions) {
		t.Fatalf("add partitions to fewer: %v, want %v", err, semantics.ErrInvalidPartitions)
	}

	// Records through the produce service, then trimmed through the admin service.
	appendWhenLed(ctx, t, n.Writers(), "svc.admin", 2, buildBatch(t, semantics.NoProducer, "a", "b"))
	appendWhenLed(ctx, t, n.Writers(), "svc.admin", 2, buildBatch(t, semantics.NoProducer, "c"))
	trimmed, err := a.DeleteRecords(ctx, semantics.DeleteRecordsRequest{Name: "svc.admin", Partition: 2, Offset: 2})
	if err != nil || trimmed.LogStartOffset != 2 || trimmed.Batches != 1 {
		t.Fatalf("trim: %+v, %v; want log start 2, one batch removed", trimmed, err)
	}
	if _, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: "svc.admin", Partition: 2, Offset: 1}); !errors.Is(err, semantics.ErrOffsetOutOfRange) {
		t.Fatalf("fetch below the log start: %v, want %v", err, semantics.ErrOffsetOutOfRange)
	}

	topics, err := a.ListTopics(ctx)
	if err != nil || len(topics) != 1 || topics[0].Name != "svc.admin" {
		t.Fatalf("list: %+v, %v", topics, err)
	}
	md, err := a.Metadata(ctx, semantics.MetadataRequest{Topics: []string{"svc.admin"}})
	if err != nil || len(md.Brokers) != 1 || md.Brokers[0].Name != n.Name() || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("metadata: %+v, %v", md, err)
	}
	if _, err := a.DeleteTopic(ctx, semantics.DeleteTopicRequest{Name: "svc.admin"}); err != nil {
		t.Fatal(err)
	}
	if gone, err := a.DeleteTopic(ctx, semantics.DeleteTopicRequest{Name: "svc.admin", IfExists: true}); err != nil || gone.Name != "" {
		t.Fatalf("delete if exists, gone: %+v, %v", gone, err)
	}
	if _, err := a.DescribeTopic(ctx, "svc.admin"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("describe after the delete: %v, want %v", err, semantics.ErrUnknownTopic)
	}
}

// deadlineService answers deadlineSubject with the time left to the deadline of
// the context the node's admin door handed it.
type deadlineService struct{}

const deadlineSubject = "qxd.api.test.deadline"

type deadlineRunning struct{}

func (deadlineService) Start(context.Context, server.Host) (server.Running, error) {
	return deadlineRunning{}, nil
}

func (deadlineRunning) Close(context.Context) {}

func (deadlineRunning) ServeAPI(ctx context.Context, m *nats.Msg) (any, bool) {
	if m.Subject != deadlineSubject {
		return nil, false
	}
	dl, ok := ctx.Deadline()
	return map[string]any{"has_deadline": ok, "left": time.Until(dl)}, true
}

// TestAdminRequestsHaveDeadline: the NATS door handles every admin API request
// under a context with a deadline (30 s), so a request stuck on a store is answered
// with its error instead of holding its handler.
func TestAdminRequestsHaveDeadline(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Services = []server.Service{deadlineService{}}
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	m, err := c.Conn().Request(deadlineSubject, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		HasDeadline bool          `json:"has_deadline"`
		Left        time.Duration `json:"left"`
	}
	if err := json.Unmarshal(m.Data, &got); err != nil {
		t.Fatalf("answer %q: %v", m.Data, err)
	}
	if !got.HasDeadline || got.Left <= 0 || got.Left > 30*time.Second {
		t.Fatalf("admin request context: deadline %v, %v left; want one within 30s", got.HasDeadline, got.Left)
	}
}

// hostCapture is a Service that keeps the Host it was started with, as a front
// door in its own package would.
type hostCapture struct{ hosts chan server.Host }

func (s hostCapture) Start(_ context.Context, h server.Host) (server.Running, error) {
	s.hosts <- h
	return deadlineRunning{}, nil
}

// TestHostGivesServices: a Service added by the embedder (a front door in another
// package) reaches the node's services through its Host, in process: it creates a
// topic, appends to it and reads it back.
func TestHostGivesServices(t *testing.T) {
	t.Parallel()
	hc := hostCapture{hosts: make(chan server.Host, 1)}
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Services = []server.Service{hc}
	qxdtest.StartNodeWith(t, cfg)
	h := <-hc.hosts
	ctx := qxdtest.Context(t, 30*time.Second)

	if _, _, err := h.Admin().CreateTopic(ctx, semantics.CreateTopicRequest{Name: "svc-host"}); err != nil {
		t.Fatal(err)
	}
	r := appendWhenLed(ctx, t, h.Writers(), "svc-host", 0, buildBatch(t, semantics.NoProducer, "a", "b"))
	res, err := h.Fetcher().Fetch(ctx, server.FetchRequest{Topic: "svc-host", Offset: 1})
	if err != nil || r.BaseOffset != 0 || res.HighWatermark != 2 || len(res.Batches) != 1 {
		t.Fatalf("append at %d; fetch: high watermark %d, %d batches, %v", r.BaseOffset, res.HighWatermark, len(res.Batches), err)
	}
	waitCoordinating(ctx, t, h.Groups())
}
