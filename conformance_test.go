package qxd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/conformance"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// sdkFrontDoor runs the conformance suite through the Go SDK, each member on its own
// connection, as separate processes would be.
type sdkFrontDoor struct {
	urls      string
	c         *qxd.Client
	replicas  int
	assignors []string // the members' assignors; the default when empty
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
	client, err := qxd.Connect(context.Background(), f.urls, qxd.NATSOptions(nats.ReconnectWait(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	copts := []qxd.ConsumerOption{qxd.Group(group), qxd.SessionTimeout(opts.SessionTimeout), qxd.AutoCommit(200 * time.Millisecond)}
	if opts.InstanceID != "" {
		copts = append(copts, qxd.InstanceID(opts.InstanceID))
	}
	if len(f.assignors) > 0 {
		copts = append(copts, qxd.Assignors(f.assignors...))
	}
	cons := qxdtest.NewConsumer(t, client, copts...)
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

func (m *sdkMember) Close()            { m.cons.Close(context.Background()) }
func (m *sdkMember) Kill()             { m.client.Conn().Close() }
func (m *sdkMember) StallHeartbeats()  { qxd.PauseHeartbeats(m.cons) }
func (m *sdkMember) Generation() int32 { g, _ := m.cons.Generation(); return g }

func TestGroupConformance(t *testing.T) {
	n := qxdtest.StartNode(t)
	conformance.RunGroups(t, &sdkFrontDoor{urls: n.ClientURL(), c: qxdtest.Connect(t, n), replicas: 1})
}

// TestGroupConformanceCooperative runs the suite with members that rebalance
// incrementally (cooperative-sticky), keeping their partitions while they rejoin.
func TestGroupConformanceCooperative(t *testing.T) {
	n := qxdtest.StartNode(t)
	conformance.RunGroups(t, &sdkFrontDoor{urls: n.ClientURL(), c: qxdtest.Connect(t, n), replicas: 1,
		assignors: []string{"cooperative-sticky"}})
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

// TestGroupConformanceClusterCooperative kills the coordinator's node under
// members that rebalance incrementally.
func TestGroupConformanceClusterCooperative(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c, err := qxd.Connect(context.Background(), qxdtest.ClientURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	conformance.RunGroupsCluster(t, &sdkClusterFrontDoor{sdkFrontDoor: sdkFrontDoor{urls: qxdtest.ClientURLs(nodes), c: c, replicas: 3,
		assignors: []string{"cooperative-sticky"}}, nodes: nodes})
}

// sdkFailoverFrontDoor runs a cluster whose nodes the tests kill and restart.
type sdkFailoverFrontDoor struct {
	sdkClusterFrontDoor
	t     *testing.T
	mu    sync.Mutex
	cfgs  []server.Config
	alive map[string]bool
}

func newFailoverFrontDoor(t *testing.T) *sdkFailoverFrontDoor {
	cfgs := qxdtest.ClusterConfigs(t, 3)
	nodes := qxdtest.StartCluster(t, cfgs)
	c, err := qxd.Connect(context.Background(), qxdtest.ClientURLs(nodes), qxd.NATSOptions(nats.ReconnectWait(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f := &sdkFailoverFrontDoor{t: t, cfgs: cfgs, alive: map[string]bool{}}
	f.sdkClusterFrontDoor = sdkClusterFrontDoor{sdkFrontDoor: sdkFrontDoor{urls: qxdtest.ClientURLs(nodes), c: c, replicas: 3}, nodes: nodes}
	for _, n := range nodes {
		f.alive[n.Name()] = true
	}
	return f
}

func (f *sdkFailoverFrontDoor) KillLeaderOf(t *testing.T, topic string, p int32) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if f.alive[n.Name()] && n.NATSServer().JetStreamIsStreamLeader("$G", semantics.StreamName(topic, p)) {
			n.NATSServer().Shutdown()
			f.alive[n.Name()] = false
			return n.Name()
		}
	}
	t.Fatalf("no node leads %s/%d", topic, p)
	return ""
}

func (f *sdkFailoverFrontDoor) Nodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, n := range f.nodes {
		if f.alive[n.Name()] {
			out = append(out, n.Name())
		}
	}
	return out
}

func (f *sdkFailoverFrontDoor) Restart(t *testing.T, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.nodes {
		if n.Name() != name {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Fatalf("stop %s: %v", name, err)
		}
		nn, err := server.Start(ctx, f.cfgs[i])
		if err != nil {
			t.Fatalf("restart %s: %v", name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = nn.Close(ctx)
		})
		f.nodes[i] = nn
		return
	}
	t.Fatalf("no node %s", name)
}

func (f *sdkFailoverFrontDoor) ReadLog(ctx context.Context, topic string) (map[int32][]conformance.LogRecord, error) {
	// Every partition must answer with its offsets: one between leaders has none
	// yet, and reading fewer records than are stored would report them lost.
	var d qxd.TopicDescription
	for {
		var err error
		d, err = f.c.Admin().DescribeTopic(ctx, topic)
		if err == nil {
			problem := ""
			for _, p := range d.Partitions {
				if p.Problem != "" {
					problem = p.Problem
				}
			}
			if problem == "" {
				break
			}
			err = errors.New(problem)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("describe %s: %w (last: %v)", topic, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	cons, err := f.c.NewConsumer()
	if err != nil {
		return nil, err
	}
	defer cons.Close(context.Background())
	var as []qxd.Assignment
	left := map[int32]int64{}
	for _, p := range d.Partitions {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p.Partition, Offset: qxd.AtStart()})
		if p.HighWatermark > p.LogStartOffset {
			left[p.Partition] = p.HighWatermark
		}
	}
	if err := cons.Assign(ctx, as...); err != nil {
		return nil, err
	}
	out := map[int32][]conformance.LogRecord{}
	for len(left) > 0 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			return nil, fmt.Errorf("read %s up to %v: %w", topic, left, err)
		}
		for _, r := range recs {
			out[r.Partition] = append(out[r.Partition], conformance.LogRecord{Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)})
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		}
	}
	return out, nil
}
