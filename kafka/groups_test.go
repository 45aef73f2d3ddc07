package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// A Kafka client's consumer group runs on the coordinator the SDK uses: its
// commits are the group's committed offsets as the SDK describes them, and
// offsets set through the SDK are where a Kafka group member starts.
func TestKafkaGroupSharesCoordinator(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "bills", qxd.TopicConfig{Partitions: 3})
	ctx := ctxFor(t, 90*time.Second)
	prod := kafkaClient(t, n, kgo.DefaultProduceTopic("bills"))
	for i := range 30 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	end, err := kadm.NewClient(prod).ListEndOffsets(ctx, "bills")
	if err != nil {
		t.Fatal(err)
	}

	// Two members of one group share the partitions and read every record once.
	newMember := func() *kgo.Client {
		return kafkaClient(t, n, kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("bills"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond))
	}
	m1, m2 := newMember(), newMember()
	seen := map[string]int{}
	for len(seen) < 30 {
		for _, m := range []*kgo.Client{m1, m2} {
			pctx, cancel := contextWithTimeout(ctx, 200*time.Millisecond)
			fs := m.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) { seen[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++ })
			if err := m.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of 30 records", len(seen))
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %s read %d times", k, n)
		}
	}

	d, err := c.Admin().DescribeGroup(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Members) != 2 || d.State != "Stable" {
		t.Errorf("SDK describes %d members in state %s, want 2, Stable", len(d.Members), d.State)
	}
	for _, p := range d.Partitions {
		want, _ := end.Lookup("bills", p.Partition)
		if p.Committed != want.Offset || p.Lag != 0 {
			t.Errorf("SDK sees partition %d committed at %d (lag %d), want %d", p.Partition, p.Committed, p.Lag, want.Offset)
		}
	}
	// Kafka's DescribeGroups shows the same members and their partitions.
	adm0 := kadm.NewClient(m1)
	dg, err := adm0.DescribeGroups(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	g := dg["billing"]
	assigned := 0
	for _, m := range g.Members {
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range a.Topics {
				assigned += len(tp.Partitions)
			}
		}
		if m.ClientHost != "/127.0.0.1" {
			t.Errorf("DescribeGroups: member %s has client host %q, want /127.0.0.1 (its address, as Kafka gives it)", m.MemberID, m.ClientHost)
		}
	}
	if g.State != "Stable" || len(g.Members) != 2 || assigned != 3 {
		t.Errorf("DescribeGroups: state %s, %d members, %d partitions assigned; want Stable, 2, 3", g.State, len(g.Members), assigned)
	}
	var sdkAssigned int
	for _, m := range d.Members {
		sdkAssigned += len(m.Partitions)
	}
	if sdkAssigned != 3 {
		t.Errorf("SDK describes %d partitions assigned to the Kafka members, want 3", sdkAssigned)
	}
	m1.Close()
	m2.Close()

	// The group is empty now: the SDK sets partition 0 back to offset 2, and a
	// new Kafka member starts there.
	if _, err := c.Admin().SeekGroup(ctx, "billing", "bills", []int32{0}, qxd.At(2)); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(prod)
	offs, err := adm.FetchOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("bills", 0); !ok || o.At != 2 {
		t.Fatalf("Kafka client sees partition 0 committed at %+v, want 2", o)
	}
	m3 := newMember()
	e0, _ := end.Lookup("bills", 0)
	var first int64 = -1
	got := 0
	for got < int(e0.Offset-2) && ctx.Err() == nil {
		m3.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Partition == 0 {
				if first < 0 {
					first = r.Offset
				}
				got++
			}
		})
	}
	if first != 2 {
		t.Fatalf("new member read partition 0 from %d, want 2 (the SDK's seek)", first)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["billing"]; !ok {
		t.Fatalf("ListGroups: %v, want billing", groups.Groups())
	}
	// DeleteGroups refuses a group with members, and deletes it once empty.
	if r, err := adm.DeleteGroups(ctx, "billing"); err != nil || !errors.Is(r["billing"].Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete a group with a member: %v %v, want NON_EMPTY_GROUP", err, r["billing"].Err)
	}
	m3.Close()
	if r, err := adm.DeleteGroups(ctx, "billing"); err != nil || r["billing"].Err != nil {
		t.Fatalf("delete: %v %v", err, r["billing"].Err)
	}
	if _, err := c.Admin().DescribeGroup(ctx, "billing"); !errors.Is(err, semantics.ErrGroupIDNotFound) {
		t.Fatalf("after DeleteGroups the SDK sees %v, want GROUP_ID_NOT_FOUND", err)
	}
}

// When a Kafka member dies (its connections fail and its heartbeats stop), the
// coordinator evicts it after its session timeout and the other member takes its
// partitions, starting from the committed offsets: nothing committed is skipped and
// every record is read.
func TestKafkaGroupMemberDies(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "work", qxd.TopicConfig{Partitions: 4})
	ctx := ctxFor(t, 90*time.Second)
	prod := kafkaClient(t, n, kgo.DefaultProduceTopic("work"))
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := prod.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 40)

	var dead atomic.Bool
	var mu sync.Mutex
	var conns []net.Conn
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		if dead.Load() {
			return nil, errors.New("member is dead")
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, network, host)
		if err == nil {
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
		return conn, err
	}
	opts := []kgo.Opt{kgo.ConsumerGroup("workers"), kgo.ConsumeTopics("work"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(300 * time.Millisecond)}
	doomed := kafkaClient(t, n, append(opts, kgo.Dialer(dial))...)
	survivor := kafkaClient(t, n, opts...)

	seen := map[string]bool{}
	read := func(m *kgo.Client) {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		m.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		_ = m.CommitUncommittedOffsets(ctx)
	}
	for len(seen) < 40 && ctx.Err() == nil {
		read(doomed)
		read(survivor)
	}
	if len(seen) < 40 {
		t.Fatalf("read %d of 40 records before the member died", len(seen))
	}
	// The doomed member dies: its connections break and it cannot reconnect.
	dead.Store(true)
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()
	produce(40, 80)
	start := time.Now()
	for len(seen) < 80 && ctx.Err() == nil {
		read(survivor)
	}
	if len(seen) < 80 {
		t.Fatalf("the survivor read %d of 80 records after the other member died", len(seen))
	}
	t.Logf("the survivor had every record %v after the other member died", time.Since(start).Round(100*time.Millisecond))
	d, err := c.Admin().DescribeGroup(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Members) != 1 {
		t.Fatalf("group has %d members after one died, want 1", len(d.Members))
	}
}

// A static member (group.instance.id) that restarts within its session timeout
// takes its own place again, as in Kafka: the group keeps two members (not a
// third), the restarted client is given the partitions it had at once (not after
// its predecessor's session), and nothing rebalances: the generation stays and the
// other member is revoked nothing. The restarted client's join metadata differs
// from its last (Kafka's clients put their owned partitions in it); the group
// would still select the same assignor, which is what Kafka's coordinator checks.
func TestKafkaStaticMemberRestart(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "static", qxd.TopicConfig{Partitions: 4})
	ctx := ctxFor(t, 90*time.Second)
	var revoked atomic.Int32
	assigned := func(dst *sync.Map) kgo.Opt {
		return kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { dst.Store("parts", m["static"]) })
	}
	base := []kgo.Opt{kgo.ConsumerGroup("statics"), kgo.ConsumeTopics("static"), kgo.SessionTimeout(6 * time.Second), kgo.Balancers(kgo.RangeBalancer()),
		kgo.HeartbeatInterval(300 * time.Millisecond)}
	var aParts, bParts, a2Parts sync.Map
	a, err := kgo.NewClient(append(base, kgo.SeedBrokers(n.KafkaAddr()), kgo.InstanceID("a"), assigned(&aParts))...)
	if err != nil {
		t.Fatal(err)
	}
	b := kafkaClient(t, n, append(base, kgo.InstanceID("b"), assigned(&bParts),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { revoked.Add(1) }))...)
	stable := func(want int) groups.GroupDescription {
		t.Helper()
		for {
			for _, cl := range []*kgo.Client{a, b} {
				if cl != nil {
					pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
					cl.PollFetches(pctx)
					cancel()
				}
			}
			d, err := c.Admin().DescribeGroup(ctx, "statics")
			if err == nil && d.State == groups.Stable && len(d.Members) == want {
				n := 0
				for _, m := range d.Members {
					n += len(m.Partitions)
				}
				if n == 4 {
					return groups.GroupDescription{State: d.State, Generation: d.Generation}
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("group not stable with %d members: %+v %v", want, d, err)
			}
		}
	}
	before := stable(2)
	pa, _ := aParts.Load("parts")
	// a stops without leaving (a static member's close keeps its membership) and
	// comes back under the same instance id.
	a.Close()
	a = nil
	restarted := time.Now()
	a2 := kafkaClient(t, n, append(base, kgo.InstanceID("a"), assigned(&a2Parts))...)
	a = a2
	var pa2 any
	for ok := false; !ok && ctx.Err() == nil; pa2, ok = a2Parts.Load("parts") {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		a2.PollFetches(pctx)
		cancel()
	}
	took := time.Since(restarted)
	after := stable(2)
	t.Logf("generation %d before the restart, %d after; other member revoked %d times; partitions back after %v",
		before.Generation, after.Generation, revoked.Load(), took.Round(time.Millisecond))
	if fmt.Sprint(pa2) != fmt.Sprint(pa) {
		t.Errorf("restarted static member got %v, had %v", pa2, pa)
	}
	if after.Generation != before.Generation || revoked.Load() != 0 {
		t.Errorf("the restart rebalanced: generation %d before, %d after; the other member was revoked partitions %d times",
			before.Generation, after.Generation, revoked.Load())
	}
	if took >= 6*time.Second {
		t.Errorf("the restarted member got its partitions back after %v, its predecessor's session timeout", took)
	}
}
