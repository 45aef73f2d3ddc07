package qxd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// waitGroupMembers waits until group has n members, each with a partition when n
// is above 0, and returns its description.
func waitGroupMembers(t *testing.T, ctx context.Context, c *qxd.Client, group string, n int) qxd.GroupDescription {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := c.Admin().DescribeGroup(ctx, group)
		if err == nil && len(d.Members) == n && (n == 0 || d.State == qxd.GroupStable) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %+v (%v), want %d members", group, d.Members, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMemberLeavesWhenPollingStops subscribes a member that polls once and then
// stops: after the max poll interval it leaves the group, well within its session
// timeout, and another member takes its partitions; when it polls again it rejoins.
func TestMemberLeavesWhenPollingStops(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "stops", qxd.TopicConfig{Partitions: 2})
	lost := make(chan []qxd.TopicPartition, 1)
	stuck := qxdtest.NewConsumer(t, c, qxd.Group("stops"), qxd.SessionTimeout(20*time.Second),
		qxd.HeartbeatInterval(200*time.Millisecond), qxd.MaxPollInterval(time.Second),
		qxd.OnLost(func(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
			select {
			case lost <- tps:
			default:
			}
		}))
	if err := stuck.Subscribe(ctx, "stops"); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	stuck.Poll(pctx)
	cancel()
	waitGroupMembers(t, ctx, c, "stops", 1)
	start := time.Now()
	select {
	case tps := <-lost:
		t.Logf("the member that stopped polling lost %v after %v", tps, time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a member that stopped polling kept its partitions")
	}
	waitGroupMembers(t, ctx, c, "stops", 0)
	other := qxdtest.NewConsumer(t, c, qxd.Group("stops"), qxd.SessionTimeout(20*time.Second),
		qxd.HeartbeatInterval(200*time.Millisecond))
	if err := other.Subscribe(ctx, "stops"); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, other, 2)
	// Polling again rejoins.
	polling, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for polling.Err() == nil {
			pctx, cancel := context.WithTimeout(polling, 100*time.Millisecond)
			stuck.Poll(pctx)
			cancel()
		}
	}()
	waitGroupMembers(t, ctx, c, "stops", 2)
	stop()
	<-done
}

// TestSubscribeContextEndsMembership cancels the context given to Subscribe: the
// member leaves the group at once (long before its session timeout) and Poll says
// why it has nothing to return.
func TestSubscribeContextEndsMembership(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "subctx", qxd.TopicConfig{Partitions: 2})
	cons := qxdtest.NewConsumer(t, c, qxd.Group("subctx"), qxd.SessionTimeout(30*time.Second))
	sctx, cancel := context.WithCancel(ctx)
	if err := cons.Subscribe(sctx, "subctx"); err != nil {
		t.Fatal(err)
	}
	waitGroupMembers(t, ctx, c, "subctx", 1)
	cancel()
	start := time.Now()
	waitGroupMembers(t, ctx, c, "subctx", 0)
	t.Logf("left %v after the subscription's context ended", time.Since(start).Round(time.Millisecond))
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	_, err := cons.Poll(pctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "Subscribe") {
		t.Fatalf("Poll after the subscription's context ended: %v, want an error saying so", err)
	}
}

// TestPauseSurvivesRebalance pauses a partition, then makes the group rebalance
// twice (a member joins and leaves): the partition comes back paused, and Poll
// returns none of its records until Resume.
func TestPauseSurvivesRebalance(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "paused", qxd.TopicConfig{Partitions: 2})
	cons := qxdtest.NewConsumer(t, c, qxd.Group("paused"), qxd.SessionTimeout(5*time.Second))
	if err := cons.Subscribe(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, cons, 2)
	gen, _ := cons.Generation()
	p0 := qxd.TopicPartition{Topic: "paused", Partition: 0}
	cons.Pause(p0)

	other := qxdtest.NewConsumer(t, c, qxd.Group("paused"), qxd.SessionTimeout(5*time.Second))
	if err := other.Subscribe(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	waitGroupMembers(t, ctx, c, "paused", 2)
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, _ := cons.Generation()
		if g >= gen+2 && len(cons.Assigned()) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation %d with %v, want %d with both partitions", g, cons.Assigned(), gen+2)
		}
		time.Sleep(20 * time.Millisecond)
	}

	p, err := c.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for part := range int32(2) {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "paused", Partition: part, Value: []byte(fmt.Sprint(part))}); err != nil {
			t.Fatal(err)
		}
	}
	// Poll until partition 1's record is in, and half a second more.
	got := map[int32]int{}
	var end time.Time
	for end.IsZero() || time.Now().Before(end) {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		recs, _ := cons.Poll(pctx)
		cancel()
		for _, r := range recs {
			got[r.Partition]++
		}
		if got[1] > 0 && end.IsZero() {
			end = time.Now().Add(500 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Fatalf("read %v by partition, want partition 1's record", got)
		}
	}
	if got[0] != 0 || got[1] != 1 {
		t.Fatalf("read %v by partition with partition 0 paused, want only partition 1's record", got)
	}
	if err := cons.Resume(ctx, p0); err != nil {
		t.Fatal(err)
	}
	for got[0] == 0 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[r.Partition]++
		}
	}
}

// TestConsumerCloseBoundedByContext closes a group member while its node is down:
// Close returns when its context ends, not after a fixed wait.
func TestConsumerCloseBoundedByContext(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 60*time.Second)
	_, n, c := startRestartable(t, ctx)
	qxdtest.CreateTopic(t, c, "closing", qxd.TopicConfig{Partitions: 1})
	cons, err := c.NewConsumer(qxd.Group("closing"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Subscribe(ctx, "closing"); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, cons, 1)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	cons.Close(cctx)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Close with a 1s context took %v", took)
	}
}

// TestMemberClientID sets the client id: the group's description shows it.
func TestMemberClientID(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	c, err := qxd.Connect(ctx, "", qxd.InProcess(n), qxd.ClientID("billing-7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qxdtest.CreateTopic(t, c, "clientid", qxd.TopicConfig{Partitions: 1})
	cons := qxdtest.NewConsumer(t, c, qxd.Group("clientid"))
	if err := cons.Subscribe(ctx, "clientid"); err != nil {
		t.Fatal(err)
	}
	d := waitGroupMembers(t, ctx, c, "clientid", 1)
	if got := d.Members[0].ClientID; got != "billing-7" {
		t.Fatalf("member's client id %q, want billing-7", got)
	}
	if _, err := qxd.Connect(ctx, "", qxd.InProcess(n), qxd.ClientID("")); !errors.Is(err, qxd.ErrInvalidConfig) {
		t.Fatalf("connect with an empty client id: %v, want ErrInvalidConfig", err)
	}
}

// TestBlockRebalanceOnPoll makes the group rebalance while a member holds records
// Poll returned it: the member gives up its partitions (OnRevoked) only after
// AllowRebalance.
func TestBlockRebalanceOnPoll(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "block", qxd.TopicConfig{Partitions: 2})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "block", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	revoked := make(chan time.Time, 4)
	cons := qxdtest.NewConsumer(t, c, qxd.Group("block"), qxd.BlockRebalanceOnPoll(),
		qxd.SessionTimeout(3*time.Second), qxd.RebalanceTimeout(20*time.Second),
		qxd.OnRevoked(func(context.Context, *qxd.Consumer, []qxd.TopicPartition) {
			select {
			case revoked <- time.Now():
			default:
			}
		}))
	if err := cons.Subscribe(ctx, "block"); err != nil {
		t.Fatal(err)
	}
	if recs, err := cons.Poll(ctx); err != nil || len(recs) == 0 {
		t.Fatalf("poll: %d records, %v", len(recs), err)
	}
	other := qxdtest.NewConsumer(t, c, qxd.Group("block"), qxd.SessionTimeout(3*time.Second))
	if err := other.Subscribe(ctx, "block"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-revoked:
		t.Fatal("partitions revoked while the application held polled records")
	case <-time.After(5 * time.Second): // beyond the session timeout: the member heartbeats while it waits
	}
	allowed := time.Now()
	cons.AllowRebalance()
	select {
	case at := <-revoked:
		t.Logf("revoked %v after AllowRebalance", at.Sub(allowed).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("partitions not revoked after AllowRebalance")
	}
	waitGroupMembers(t, ctx, c, "block", 2)
}
