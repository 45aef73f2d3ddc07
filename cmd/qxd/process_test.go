package main

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
)

// TestProcessClusterSIGKILL runs three real "qxd server" processes, SIGKILLs the one
// that leads partition 0 while a keyed producer and a three-member group run, and
// restarts it on its data. Every acknowledged record must be stored exactly once
// where its acknowledgement said, offsets dense, each key in order, and the group
// must have read everything (invariants 1, 2 and 5 of docs/architecture.md, across a real
// process death: no graceful shutdown, no leadership hand-off).
func TestProcessClusterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three qxd processes; skipped with -short")
	}
	began := time.Now()
	bin := buildQxd(t)
	cl := startProcCluster(t, bin, loopbackLayout(t, 3))
	t.Logf("3 node processes ready after %v", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const topic = "proc-kill"
	c := connect(t, cl.urls())
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 6, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	led := newLedger()
	grp := startGroup(ctx, t, cl.urls(), "g-proc-kill", topic, 3, led)
	prodClient := connect(t, cl.urls())
	prod := startProducer(ctx, t, prodClient, topic, "p", led, qxd.DeliveryTimeout(30*time.Second))
	time.Sleep(3 * time.Second)

	leader, err := leaderOf(ctx, c, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	victim := cl.node(leader)
	if victim == nil {
		t.Fatalf("partition 0's leader %q is not one of the test's nodes", leader)
	}
	before := led.ackedCount()
	if err := victim.kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("SIGKILLed node %s, the leader of partition 0, after %d records were acknowledged", victim.name, before)
	time.Sleep(3 * time.Second)

	if err := cl.restart(ctx, victim); err != nil {
		t.Fatalf("restart %s: %v", victim.name, err)
	}
	t.Logf("node %s restarted on its data and ready %v after the kill", victim.name, time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	prod.halt()

	led.mu.Lock()
	acked, produced, failed, lastErr := len(led.acked), led.produced, led.failed, led.lastErr
	stall, stallAt := led.stall, led.stallAt
	led.mu.Unlock()
	t.Logf("%d records produced, %d acknowledged, %d failed; failover time (longest produce call) %v, begun %v after the kill",
		produced, acked, failed, stall.Round(time.Millisecond), stallAt.Sub(killedAt).Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("%d records failed although two of three replicas stayed up; last error: %v", failed, lastErr)
	}
	if acked <= before {
		t.Errorf("nothing was acknowledged after the kill (%d before, %d at the end)", before, acked)
	}

	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := waitRead(rctx, led); err != nil {
		t.Error(err)
		t.Logf("the members' view:\n%s", grp.state())
		if d, err := c.Admin().DescribeGroup(ctx, "g-proc-kill"); err == nil {
			t.Logf("the coordinator's view: %+v", d)
		}
	}
	grp.halt()
	rctx, rcancel = context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()

	if err := waitInSync(rctx, c, 3); err != nil {
		t.Logf("before reading the log: %v", err)
	}
	log, err := readLog(rctx, c, topic)
	if err != nil {
		t.Fatal(err)
	}
	led.mu.Lock()
	rep := checkLog(log, led.acked)
	led.mu.Unlock()
	t.Logf("log: %d records stored, %d of them never acknowledged, %d duplicates, %d acknowledged records lost",
		rep.stored, rep.unacked, rep.duplicates, len(rep.lost))
	rep.report(t)

	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}
