package qxd_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/conformance"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// sdkFrontDoor runs the conformance suite through the Go SDK, each member on its own
// connection, as separate processes would be.
type sdkFrontDoor struct {
	urls     string
	c        *qxd.Client
	replicas int
}

func (f *sdkFrontDoor) CreateTopic(t *testing.T, name string, partitions int32) {
	qxdtest.CreateTopic(t, f.c, name, qxd.TopicConfig{Partitions: partitions, Replicas: f.replicas})
}

func (f *sdkFrontDoor) Produce(ctx context.Context, topic string, keys, values [][]byte) ([]conformance.Position, error) {
	p, err := f.c.NewProducer(qxd.Linger(time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer p.Close(ctx)
	recs := make([]*qxd.Record, len(keys))
	for i := range keys {
		recs[i] = &qxd.Record{Topic: topic, Key: keys[i], Value: values[i]}
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		return nil, err
	}
	out := make([]conformance.Position, len(recs))
	for i, r := range recs {
		out[i] = conformance.Position{Partition: r.Partition, Offset: r.Offset}
	}
	return out, nil
}

type sdkMember struct {
	name   string
	client *qxd.Client
	cons   *qxd.Consumer
	rec    *conformance.Recorder
}

func (f *sdkFrontDoor) NewMember(t *testing.T, group string, topics []string, opts conformance.MemberOptions, rec *conformance.Recorder) conformance.Member {
	t.Helper()
	client, err := qxd.Connect(context.Background(), f.urls, qxd.WithNATSOptions(nats.ReconnectWait(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	copts := []qxd.ConsumerOption{qxd.Group(group), qxd.SessionTimeout(opts.SessionTimeout), qxd.AutoCommit(200 * time.Millisecond)}
	if opts.InstanceID != "" {
		copts = append(copts, qxd.InstanceID(opts.InstanceID))
	}
	cons := client.NewConsumer(copts...)
	m := &sdkMember{name: opts.Name, client: client, cons: cons, rec: rec}
	qxd.SetDeliveryHook(cons, func(_ string, gen int32, recs []qxd.Record) {
		now := time.Now()
		ds := make([]conformance.Delivery, len(recs))
		for i, r := range recs {
			ds[i] = conformance.Delivery{Member: opts.Name, Generation: gen, Partition: r.Partition, Offset: r.Offset, At: now}
		}
		rec.Delivered(ds...)
	})
	if err := cons.Subscribe(context.Background(), topics...); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *sdkMember) Poll(ctx context.Context) (int, error) {
	recs, err := m.cons.Poll(ctx)
	return len(recs), err
}

func (m *sdkMember) Commit(ctx context.Context) error {
	pos := map[int32]int64{}
	for _, tp := range m.cons.Assigned() {
		if off, ok := m.cons.Position(tp.Topic, tp.Partition); ok {
			pos[tp.Partition] = off
		}
	}
	if err := m.cons.Commit(ctx); err != nil {
		return err
	}
	now := time.Now()
	for p, off := range pos {
		m.rec.Committed(conformance.CommitEvent{Member: m.name, Partition: p, Offset: off, At: now})
	}
	return nil
}

func (m *sdkMember) Close()            { m.cons.Close() }
func (m *sdkMember) Kill()             { m.client.Conn().Close() }
func (m *sdkMember) StallHeartbeats()  { qxd.PauseHeartbeats(m.cons) }
func (m *sdkMember) Generation() int32 { g, _ := m.cons.Generation(); return g }

func TestGroupConformance(t *testing.T) {
	n := qxdtest.StartNode(t)
	conformance.RunGroups(t, &sdkFrontDoor{urls: n.ClientURL(), c: qxdtest.Connect(t, n), replicas: 1})
}

type sdkClusterFrontDoor struct {
	sdkFrontDoor
	nodes []*server.Node
}

func (f *sdkClusterFrontDoor) KillCoordinator(t *testing.T) string {
	for _, n := range f.nodes {
		if n.NATSServer().JetStreamIsStreamLeader("$G", "KV_qxd_groups") {
			n.NATSServer().Shutdown()
			return n.Name()
		}
	}
	t.Fatal("no node leads the groups bucket")
	return ""
}

func (f *sdkClusterFrontDoor) CommittedOffsets(ctx context.Context, group string) (map[int32]int64, error) {
	d, err := f.c.Admin().DescribeGroup(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range d.Partitions {
		out[p.Partition] = p.Committed
	}
	return out, nil
}

func TestGroupConformanceCluster(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c, err := qxd.Connect(context.Background(), qxdtest.ClientURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	conformance.RunGroupsCluster(t, &sdkClusterFrontDoor{sdkFrontDoor: sdkFrontDoor{urls: qxdtest.ClientURLs(nodes), c: c, replicas: 3}, nodes: nodes})
}
