//go:build chaos

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// TestCutLeaderCatchUp cuts the node that leads the streams under write off from
// its peers for a few seconds while writes go on, then heals the cut and reports,
// for every stream, how long after the heal each replica was current again (the
// stream leader's view: current, no lag; the first look is when the writes stop,
// 3 s after the heal). It fails when a replica is not current within
// QXD_CATCHUP_MAX (default 30s) of the heal.
//
// The writes, each twice, through a connection to the cut node alone and through
// one to the two other nodes: a keyed qxd producer on a three-partition topic whose
// partitions the cut node leads, with five batches in flight per partition; and
// asynchronous publishes to a plain JetStream stream of three replicas led by the
// cut node. A leader that is cut off stays leader until it hears of a newer term
// or for JetStream's lost-quorum interval (10 s), and stores in its own log what
// it proposed; the new leaders, elected during the cut, store other entries at the
// same places of the log. After the heal the cut node must drop its suffix before
// it can take the new leaders' entries, which nats-server does one entry per round
// of its catch-up: see "After a network cut" in docs/operations.md.
//
// QXD_CATCHUP_CUT sets how long the node stays cut off (default 5s); QXD_DRILL_BIN
// runs another build of qxd; QXD_DRILL_LOGS keeps the nodes' logs there.
func TestCutLeaderCatchUp(t *testing.T) {
	hold := catchupEnvDuration(t, "QXD_CATCHUP_CUT", 5*time.Second)
	bound := catchupEnvDuration(t, "QXD_CATCHUP_MAX", 30*time.Second)
	lab := newNetnsLab(t, 3)
	bin := drillBin(t)
	loadBefore := loadAvg()
	cl := startProcCluster(t, bin, lab.layout())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitWatching(ctx, t, cl)

	// Every stream led by one node, the victim (n1): the leaderships are moved
	// there.
	victim, vi := cl.nodes[0], 0
	admin := connect(t, cl.urls())
	nc, err := nats.Connect(cl.urls())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const plain = "CATCHUP"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: plain, Subjects: []string{"catchup.>"}, Replicas: 3,
		Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create the plain stream: %v", err)
	}
	const topic = "catchup"
	const parts = 3
	if _, err := admin.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: parts, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	streams := []string{plain}
	for p := range int32(parts) {
		streams = append(streams, semantics.StreamName(topic, p))
	}
	for _, s := range streams {
		if err := moveStreamLeader(ctx, nc, js, s, victim.name); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s leads %v", victim.name, streams)

	// The writers: on a connection to the victim alone, whose writes during the cut
	// the victim stores and its peers never see, and on one to the two other nodes,
	// whose writes the new leaders store during the cut.
	only := []nats.Option{nats.IgnoreDiscoveredServers(), nats.DontRandomize(), nats.Timeout(2 * time.Second)}
	vjs := connectJetStream(t, victim.url(), only, jetstream.WithPublishAsyncMaxPending(512), jetstream.WithPublishAsyncTimeout(3*time.Second))
	hjs := connectJetStream(t, cl.nodes[1].url()+","+cl.nodes[2].url(), only, jetstream.WithPublishAsyncMaxPending(512), jetstream.WithPublishAsyncTimeout(3*time.Second))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published, publishErrs atomic.Int64
	publish := func(js jetstream.JetStream) {
		defer wg.Done()
		payload := make([]byte, 1024)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := js.PublishAsync(fmt.Sprintf("catchup.k%d", i%16), payload); err != nil {
				publishErrs.Add(1)
				time.Sleep(5 * time.Millisecond)
				continue
			}
			published.Add(1)
		}
	}
	wg.Add(2)
	go publish(vjs)
	go publish(hjs)
	var produced, produceErrs atomic.Int64
	keys := partitionKeys(parts)
	produce := func(prod *qxd.Producer, p int32) {
		defer wg.Done()
		val := make([]byte, 512)
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := prod.Produce(ctx, &qxd.Record{Topic: topic, Key: keys[p], Value: val}, func(_ *qxd.Record, err error) {
				if err != nil {
					produceErrs.Add(1)
				} else {
					produced.Add(1)
				}
			})
			if err != nil {
				produceErrs.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	for _, urls := range []string{victim.url(), cl.nodes[1].url() + "," + cl.nodes[2].url()} {
		prod, err := connect(t, urls, only...).NewProducer(qxd.Linger(time.Millisecond), qxd.MaxInFlight(5),
			qxd.DeliveryTimeout(5*time.Second), qxd.RequestTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = prod.Close(ctx) }()
		for p := range int32(parts) {
			wg.Add(1)
			go produce(prod, p)
		}
	}
	time.Sleep(3 * time.Second)

	if err := lab.cut(vi); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("cut %s off for %v (load %s)", victim.name, hold, loadAvg())
	time.Sleep(hold)
	if err := lab.heal(vi); err != nil {
		t.Fatal(err)
	}
	healAt := time.Now()
	t.Logf("healed %s's links", victim.name)
	// Writes go on for a while after the heal, then stop so that lag can reach 0.
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("writes: %d published (%d refused), %d records produced (%d failed)",
		published.Load(), publishErrs.Load(), produced.Load(), produceErrs.Load())

	// Each stream's replicas, as the stream's leader sees them, until all are current.
	caughtUp := map[string]time.Duration{}
	lastSeen := map[string]string{}
	deadline := healAt.Add(bound + 30*time.Second)
	for len(caughtUp) < len(streams) && time.Now().Before(deadline) {
		for _, s := range streams {
			if _, ok := caughtUp[s]; ok {
				continue
			}
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := js.Stream(ictx, s)
			var info *jetstream.StreamInfo
			if err == nil {
				info, err = st.Info(ictx)
			}
			icancel()
			if err != nil {
				lastSeen[s] = err.Error()
				continue
			}
			state, behind := streamReplicaState(info)
			lastSeen[s] = state
			if !behind {
				caughtUp[s] = time.Since(healAt)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	var worst time.Duration
	for _, s := range streams {
		if d, ok := caughtUp[s]; ok {
			t.Logf("%s: every replica current %v after the heal (%v after the cut)", s, d.Round(100*time.Millisecond),
				(d + healAt.Sub(cutAt)).Round(100*time.Millisecond))
			worst = max(worst, d)
		} else {
			t.Logf("%s: not caught up %v after the heal: %s", s, time.Since(healAt).Round(time.Second), lastSeen[s])
			worst = max(worst, time.Since(healAt))
		}
	}
	warnings := 0
	for _, n := range cl.nodes {
		for _, l := range strings.Split(n.log(1<<30), "\n") {
			if strings.Contains(l, "Expected first catchup entry") {
				warnings++
			}
			if strings.Contains(l, "level=WARN") && !cutAt.After(catchupLogTime(l, cutAt)) {
				t.Logf("%s: %s", n.name, l)
			}
		}
	}
	t.Logf("SUMMARY cut %v of the leader of %d streams: slowest stream's replicas current %v after the heal; %d \"Expected first catchup entry\" warnings; load %s before, %s after",
		hold, len(streams), worst.Round(100*time.Millisecond), warnings, loadBefore, loadAvg())
	if worst > bound {
		t.Errorf("a replica was not current %v after the heal (want at most %v)", worst.Round(100*time.Millisecond), bound)
	}
	if dir := os.Getenv("QXD_DRILL_LOGS"); dir != "" {
		for _, n := range cl.nodes {
			if err := os.WriteFile(dir+"/"+n.name+".log", []byte(n.log(1<<30)), 0o644); err != nil {
				t.Errorf("keep %s's log: %v", n.name, err)
			}
		}
	}
}

// streamReplicaState says how the stream's leader sees each replica, and whether
// any is behind (not current, lagging or offline).
func streamReplicaState(info *jetstream.StreamInfo) (string, bool) {
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "no leader", true
	}
	behind := false
	parts := []string{"leader " + info.Cluster.Leader}
	for _, r := range info.Cluster.Replicas {
		parts = append(parts, fmt.Sprintf("%s current=%t lag=%d offline=%t", r.Name, r.Current, r.Lag, r.Offline))
		if !r.Current || r.Lag > 0 || r.Offline {
			behind = true
		}
	}
	slices.Sort(parts[1:])
	return strings.Join(parts, "; "), behind
}

// moveStreamLeader moves the leadership of stream to node with JetStream's
// step-down until node leads it.
func moveStreamLeader(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, stream, node string) error {
	var last string
	for range 20 {
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := js.Stream(ictx, stream)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = st.Info(ictx)
		}
		cancel()
		if err == nil && info.Cluster != nil {
			if info.Cluster.Leader == node {
				return nil
			}
			last = "leader " + info.Cluster.Leader
			if info.Cluster.Leader != "" {
				req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, node)
				_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(req), 3*time.Second)
			}
		} else if err != nil {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("could not move stream %s's leadership to %s: %s", stream, node, last)
}

// catchupEnvDuration reads a Go duration from the environment variable name, or
// returns def.
func catchupEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v (use a Go duration such as 30s)", name, s, err)
	}
	return d
}

// catchupLogTime is the time of a node's log line, or def when it has none.
func catchupLogTime(l string, def time.Time) time.Time {
	if at, ok := logTime(l); ok {
		return at
	}
	return def
}
