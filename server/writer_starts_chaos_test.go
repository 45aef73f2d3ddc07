//go:build chaos

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// lockedBuffer is a bytes.Buffer safe for the node's loggers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n"))
}

// TestWriterStartsMeasure measures how long the writers of many partitions take
// to start on the nodes that come to lead them at once, under a producer, and
// prints each writer's start and its steps. QXD_WS_PARTS sets the partitions
// (default 36, three replicas); QXD_WS_FAULT the fault: "handoff" (default)
// hands every partition over to one node at once, "shutdown" shuts down the node
// that leads the most without a hand-off, and the others elect new leaders.
func TestWriterStartsMeasure(t *testing.T) {
	parts := 36
	if v, err := strconv.Atoi(os.Getenv("QXD_WS_PARTS")); err == nil {
		parts = v
	}
	fault := cmpOr(os.Getenv("QXD_WS_FAULT"), "handoff")
	cfgs := qxdtest.ClusterConfigs(t, 3)
	logs := make([]*lockedBuffer, len(cfgs))
	for i := range cfgs {
		logs[i] = &lockedBuffer{}
		cfgs[i].Logger = slog.New(slog.NewJSONHandler(logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 3*time.Minute)
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "wsm"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: int32(parts), Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	var acked, failed atomic.Int64
	pctx, stopProducing := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		for i := 0; pctx.Err() == nil; i++ {
			_ = p.Produce(pctx, &qxd.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%(parts*4)), Value: fmt.Appendf(nil, "v%d", i)},
				func(_ *qxd.Record, err error) {
					if err != nil {
						failed.Add(1)
					} else {
						acked.Add(1)
					}
				})
		}
	}()
	defer func() { stopProducing(); pwg.Wait() }()
	time.Sleep(3 * time.Second)
	// When each stream's new leader was elected: JetStream's advisory, as the
	// nodes see it first.
	var elMu sync.Mutex
	elected := map[string]time.Time{}
	for _, n := range nodes {
		nc, err := nats.Connect(n.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, "*"), func(m *nats.Msg) {
			var a struct {
				Stream string `json:"stream"`
			}
			if json.Unmarshal(m.Data, &a) != nil {
				return
			}
			now := time.Now()
			elMu.Lock()
			if _, ok := elected[a.Stream]; !ok {
				elected[a.Stream] = now
			}
			elMu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	leaders := map[string][]string{}
	for i := range int32(parts) {
		s := semantics.StreamName(topic, i)
		l := streamLeader(nodes, s)
		leaders[l] = append(leaders[l], s)
	}
	t.Logf("before the fault: %d acked, leaders %v", acked.Load(), counts(leaders))
	var target *server.Node
	t0 := time.Now()
	switch fault {
	case "handoff":
		target = nodes[0]
		var wg sync.WaitGroup
		for l, streams := range leaders {
			if l == target.Name() {
				continue
			}
			for _, s := range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := target.HandOffVia(ctx, l, s, target.Name()); err != nil {
						t.Logf("hand %s off from %s: %v", s, l, err)
					}
				}()
			}
		}
		wg.Wait()
	case "shutdown":
		victim := nodes[0]
		for _, n := range nodes {
			if len(leaders[n.Name()]) > len(leaders[victim.Name()]) {
				victim = n
			}
		}
		t.Logf("shutting down %s, which leads %d partitions", victim.Name(), len(leaders[victim.Name()]))
		t0 = time.Now()
		victim.NATSServer().Shutdown()
	default:
		t.Fatalf("QXD_WS_FAULT=%q: want handoff or shutdown", fault)
	}
	// Every partition led again, and every writer on the new leaders started.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		led := 0
		for i := range int32(parts) {
			if l := streamLeader(nodes, semantics.StreamName(topic, i)); l != "" {
				led++
			}
		}
		if led == parts && acked.Load() > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	t.Logf("after the fault: %d acked, %d failed", acked.Load(), failed.Load())
	type start struct {
		node                                        string
		afterElection                               time.Duration
		partition                                   int
		at, took                                    time.Duration
		info, ck, epoch, replay, aborted, loadTotal time.Duration
	}
	var starts []start
	for i, l := range logs {
		loads := map[int]start{}
		for _, line := range l.lines() {
			var r struct {
				Time       time.Time `json:"time"`
				Msg        string    `json:"msg"`
				Topic      string    `json:"topic"`
				Partition  int       `json:"partition"`
				Took       int64     `json:"took"`
				StreamInfo int64     `json:"stream_info"`
				Checkpoint int64     `json:"checkpoint"`
				Epoch      int64     `json:"epoch"`
				Replay     int64     `json:"replay"`
				Aborted    int64     `json:"aborted"`
			}
			if json.Unmarshal(line, &r) != nil || r.Topic != topic || r.Time.Before(t0) {
				continue
			}
			switch r.Msg {
			case "writer loaded its partition's state":
				loads[r.Partition] = start{info: time.Duration(r.StreamInfo), ck: time.Duration(r.Checkpoint), epoch: time.Duration(r.Epoch),
					replay: time.Duration(r.Replay), aborted: time.Duration(r.Aborted), loadTotal: time.Duration(r.Took)}
			case "writer started":
				s := loads[r.Partition]
				s.node, s.partition, s.at, s.took = cfgs[i].Name, r.Partition, r.Time.Sub(t0), time.Duration(r.Took)
				elMu.Lock()
				if e, ok := elected[semantics.StreamName(topic, int32(r.Partition))]; ok && e.After(t0) {
					s.afterElection = r.Time.Sub(e)
				}
				elMu.Unlock()
				starts = append(starts, s)
			}
		}
	}
	slices.SortFunc(starts, func(a, b start) int { return int(a.at - b.at) })
	var sum, maxTook, maxAfter time.Duration
	var afters []time.Duration
	for _, s := range starts {
		sum += s.took
		maxTook = max(maxTook, s.took)
		maxAfter = max(maxAfter, s.afterElection)
		afters = append(afters, s.afterElection)
		t.Logf("%s %s/%d started at +%v, %v after its election advisory, took %v (load %v: stream_info %v checkpoint %v epoch %v replay %v aborted %v)",
			s.node, topic, s.partition, s.at.Round(time.Millisecond), s.afterElection.Round(time.Millisecond), s.took.Round(time.Millisecond), s.loadTotal.Round(time.Millisecond), s.info.Round(time.Millisecond),
			s.ck.Round(time.Millisecond), s.epoch.Round(time.Millisecond), s.replay.Round(time.Millisecond), s.aborted.Round(time.Millisecond))
	}
	if len(starts) == 0 {
		t.Fatal("no writer started after the fault")
	}
	last := starts[len(starts)-1].at
	median := starts[len(starts)/2].at
	slices.Sort(afters)
	t.Logf("SUMMARY fault=%s partitions=%d writers_started=%d first=+%v median=+%v last=+%v longest_start=%v sum_of_starts=%v election_to_started median=%v max=%v",
		fault, parts, len(starts), starts[0].at.Round(time.Millisecond), median.Round(time.Millisecond), last.Round(time.Millisecond),
		maxTook.Round(time.Millisecond), sum.Round(time.Millisecond), afters[len(afters)/2].Round(time.Millisecond), maxAfter.Round(time.Millisecond))
}

func counts(m map[string][]string) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
