//go:build chaos

package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
)

// TestSIGSTOPDrill pauses (SIGSTOP) the node that leads partition 0 of a
// six-partition, three-replica topic for QXD_DRILL_PAUSE (default 15s), or with
// QXD_DRILL_FAULT=kill or stop SIGKILLs it or stops it cleanly (SIGTERM) and
// restarts it after that long, while a producer sends to every partition, one record
// in flight per partition. It reports for each partition the longest time a record
// waited for its acknowledgement, split into the partitions the faulty node led and
// those healthy nodes led. The producer connects to a healthy node first, or to the
// faulty one with QXD_DRILL_VIA=paused. QXD_DRILL_BIN runs a prebuilt qxd binary
// instead of building this tree's (to measure another version with the same drill).
// It fails if a record failed, or if a partition led by a healthy node waited more
// than QXD_DRILL_HEALTHY_MAX (default none: report only).
func TestSIGSTOPDrill(t *testing.T) {
	pause := 15 * time.Second
	if s := os.Getenv("QXD_DRILL_PAUSE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("QXD_DRILL_PAUSE=%q: %v (use a Go duration such as 15s)", s, err)
		}
		pause = d
	}
	var healthyMax time.Duration
	if s := os.Getenv("QXD_DRILL_HEALTHY_MAX"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("QXD_DRILL_HEALTHY_MAX=%q: %v (use a Go duration such as 1s)", s, err)
		}
		healthyMax = d
	}
	fault := os.Getenv("QXD_DRILL_FAULT")
	switch fault {
	case "":
		fault = "pause"
	case "pause", "kill", "stop":
	default:
		t.Fatalf("QXD_DRILL_FAULT=%q: use pause (SIGSTOP, then SIGCONT), kill (SIGKILL, then restart) or stop (SIGTERM, then restart)", fault)
	}
	via := os.Getenv("QXD_DRILL_VIA")
	if via != "" && via != "paused" && via != "healthy" {
		t.Fatalf("QXD_DRILL_VIA=%q: use paused or healthy", via)
	}
	bin := os.Getenv("QXD_DRILL_BIN")
	if bin == "" {
		bin = buildQxd(t)
	}
	cl := startProcCluster(t, bin, loopbackLayout(t, 3))
	ctx, cancel := context.WithTimeout(context.Background(), pause+5*time.Minute)
	defer cancel()

	const topic = "drill"
	const parts = 6
	admin := connect(t, cl.urls())
	if _, err := admin.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: parts, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	// Let leader balancing spread the partitions before the drill.
	time.Sleep(5 * time.Second)
	victimName, err := leaderOf(ctx, admin, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	victim := cl.node(victimName)
	leaders := make([]string, parts)
	for p := range int32(parts) {
		if leaders[p], err = leaderOf(ctx, admin, topic, p); err != nil {
			t.Fatal(err)
		}
	}
	var urls []string
	for _, n := range cl.nodes {
		if n != victim {
			urls = append(urls, n.url())
		}
	}
	if via == "paused" {
		urls = append([]string{victim.url()}, urls...)
	} else {
		urls = append(urls, victim.url())
	}
	pc := connect(t, strings.Join(urls, ","), nats.DontRandomize())
	prod, err := pc.NewProducer(qxd.RecordPartition(), qxd.Linger(0), qxd.DeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	type worst struct {
		wait  time.Duration
		began time.Time
		n     int
	}
	var mu sync.Mutex
	var failed int
	var lastErr error
	res := make([]worst, parts)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range int32(parts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				done := make(chan error, 1)
				r := &qxd.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)}
				if err := prod.Produce(ctx, r, func(_ *qxd.Record, err error) { done <- err }); err != nil {
					done <- err
				}
				err := <-done
				took := time.Since(began)
				mu.Lock()
				res[p].n++
				if err != nil {
					failed++
					lastErr = err
				}
				if took > res[p].wait {
					res[p].wait, res[p].began = took, began
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	mu.Lock()
	for p := range res {
		res[p] = worst{}
	}
	mu.Unlock()

	pausedAt := time.Now()
	switch fault {
	case "pause":
		if err := victim.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Logf("SIGSTOP %s (leads partition 0) for %v; producer connected via %s; leaders %v", victim.name, pause, urls[0], leaders)
		time.Sleep(pause)
		if err := victim.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		t.Logf("SIGCONT %s", victim.name)
	case "kill", "stop":
		if fault == "kill" {
			err = victim.kill()
		} else {
			err = victim.stop(30 * time.Second)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s %s (leads partition 0) after %v; restart in %v; producer connected via %s; leaders %v",
			map[string]string{"kill": "SIGKILLed", "stop": "stopped (SIGTERM)"}[fault], victim.name,
			time.Since(pausedAt).Round(time.Millisecond), pause, urls[0], leaders)
		time.Sleep(pause)
		if err := cl.restart(ctx, victim); err != nil {
			t.Fatalf("restart %s: %v", victim.name, err)
		}
		t.Logf("%s restarted and ready", victim.name)
	}
	time.Sleep(20 * time.Second)
	close(stop)
	wg.Wait()
	_ = prod.Close(ctx)

	var sick, healthy time.Duration
	var lines []string
	for p, w := range res {
		kind := "healthy"
		if leaders[p] == victim.name {
			kind = "faulty"
			sick = max(sick, w.wait)
		} else {
			healthy = max(healthy, w.wait)
		}
		lines = append(lines, fmt.Sprintf("p%d (%s leader %s): longest ack wait %v, begun %v after SIGSTOP, %d records",
			p, kind, leaders[p], w.wait.Round(time.Millisecond), w.began.Sub(pausedAt).Round(time.Millisecond), w.n))
	}
	sort.Strings(lines)
	for _, l := range lines {
		t.Log(l)
	}
	t.Logf("SUMMARY fault=%s for %v via=%s: longest ack wait, partitions the faulty node led %v, partitions healthy nodes led %v; %d records failed",
		fault, pause, map[bool]string{true: "paused", false: "healthy"}[via == "paused"], sick.Round(time.Millisecond), healthy.Round(time.Millisecond), failed)
	if failed > 0 {
		t.Errorf("%d records failed; last error: %v", failed, lastErr)
	}
	if healthyMax > 0 && healthy > healthyMax {
		t.Errorf("a partition led by a healthy node waited %v for an acknowledgement (want at most %v)", healthy, healthyMax)
	}
	// The nodes' warnings, and the leadership changes of the drill's partitions
	// (JetStream's notices, logged at --log-level debug:
	// QXD_TEST_NODE_LOG_LEVEL=debug).
	for _, n := range cl.nodes {
		for _, l := range strings.Split(n.log(1<<30), "\n") {
			if strings.Contains(l, "QXD_"+topic) && strings.Contains(l, "stream leader") || strings.Contains(l, "level=WARN") {
				t.Logf("%s: %s", n.name, l)
			}
		}
	}
	if t.Failed() {
		for _, n := range cl.nodes {
			t.Logf("log of %s:\n%s", n.name, n.log(6000))
		}
	}
}
