//go:build chaos

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// TestKafkaCutOffNode runs three node processes in their own network namespaces
// (each with a Kafka listener on its client link) and cuts off, for 15 s
// (QXD_CUT_HOLD), the node that coordinates groups and leads some partitions, while
// franz-go clients bootstrapped with every node use it:
//
//   - a producer that sends, one record at a time, to a partition the cut-off node
//     leads and to one a healthy node leads must keep producing through the
//     others: no record waits longer than kafkaCutProduceBound for its
//     acknowledgement;
//   - a group member whose coordinator is the cut-off node must keep consuming:
//     every record acknowledged during the cut reaches it within
//     kafkaCutConsumeBound of its acknowledgement;
//   - after the heal the node serves a Kafka client that knows only it.
//
// It reports the longest produce waits and consume lag of every run.
func TestKafkaCutOffNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a network of namespaces and starts three qxd processes; skipped with -short")
	}
	hold := cutHold(t)
	const (
		// The cut is seen within isolatedAfter (2.5 s); the majority elects new
		// stream leaders within RAFT's election timeout (4–9 s), and franz-go
		// reads the metadata again at most every 5 s (MetadataMinAge) once a
		// refused connection or a partition without a leader asks it to. Before
		// the node suspended its Kafka listener, a record waited 15.4–16.4 s.
		kafkaCutProduceBound = 14 * time.Second
		// The member must keep consuming; its lag was 10–12.4 s before too.
		kafkaCutConsumeBound = 20 * time.Second
		partitions           = 6
	)
	lab := newNetnsLab(t, 3)
	bin := drillBin(t)
	layout := lab.layout()
	for i := range lab.nodes {
		layout.kafka = append(layout.kafka, lab.clientIP(i)+":9092")
	}
	cl := startProcCluster(t, bin, layout)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const topic, groupID = "kafka-cut-off", "g-kafka-cut-off"
	admin := connect(t, cl.urls())
	if _, err := admin.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: partitions, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	buckets := bucketLeaders(ctx, t, cl.urls())
	victim := cl.node(buckets[semantics.GroupsBucket])
	if victim == nil {
		t.Fatalf("the groups bucket's leader %q is not one of the nodes", buckets[semantics.GroupsBucket])
	}
	vi := slices.Index(cl.nodes, victim)
	victimP, healthyP := int32(-1), int32(-1)
	for p := range int32(partitions) {
		l, err := leaderOf(ctx, admin, topic, p)
		switch {
		case err != nil:
		case l == victim.name && victimP < 0:
			victimP = p
		case l != victim.name && healthyP < 0:
			healthyP = p
		}
	}
	if victimP < 0 || healthyP < 0 {
		t.Fatalf("want a partition %s leads and one it does not (got p%d and p%d)", victim.name, victimP, healthyP)
	}
	var seeds []string
	for _, n := range cl.nodes {
		seeds = append(seeds, n.kafka)
	}

	// acked: when each record (by value) was acknowledged; consumed: when the
	// group member first got it.
	var mu sync.Mutex
	acked := map[string]time.Time{}
	consumed := map[string]time.Time{}
	type wait struct {
		began time.Time
		took  time.Duration
	}
	waits := map[int32][]wait{}

	member, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(500*time.Millisecond), kgo.ClientID("kafka-cut-member"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	popts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(2 * time.Minute), kgo.ClientID("kafka-cut-producer")}
	if dir := os.Getenv("QXD_TEST_KEEP_LOGS"); dir != "" {
		// The producer's own log, beside the nodes'.
		f, err := os.CreateTemp(dir, "kafka-cut-producer-*.log")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		t.Logf("producer log in %s", f.Name())
		popts = append(popts, kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") })))
	}
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range []int32{victimP, healthyP} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%09d", p, i)}
				began := time.Now()
				if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Errorf("produce %s: %v", r.Value, err)
					return
				}
				now := time.Now()
				mu.Lock()
				acked[string(r.Value)] = now
				waits[p] = append(waits[p], wait{began, now.Sub(began)})
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	memberDone := make(chan struct{})
	go func() {
		defer close(memberDone)
		for ctx.Err() == nil {
			fs := member.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if _, ok := consumed[string(r.Value)]; !ok {
					consumed[string(r.Value)] = now
				}
			})
			mu.Unlock()
		}
	}()

	// The member consumes before the cut, through its coordinator on the victim.
	for wait := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := len(consumed)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Since(wait) > 45*time.Second {
			t.Fatalf("the group member consumed nothing within 45 s")
		}
	}
	coord := kmsg.NewPtrFindCoordinatorRequest()
	coord.CoordinatorKey = groupID
	if resp, err := coord.RequestWith(ctx, member); err == nil && resp.ErrorCode == 0 {
		if want := victim.kafka; fmt.Sprintf("%s:%d", resp.Host, resp.Port) != want {
			t.Logf("the group's coordinator is at %s:%d, not on %s (%s)", resp.Host, resp.Port, victim.name, want)
		}
	}
	waitWatching(ctx, t, cl)
	time.Sleep(time.Second)

	if err := lab.cut(vi); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("cut %s (coordinates groups, leads p%d; p%d is led elsewhere) off for %v", victim.name, victimP, healthyP, hold)
	// Once the node counts itself cut off (2.5 s), a client that knows only it
	// must not be told that it leads, nor be left waiting: it is refused, or told
	// of no leader within 5 s.
	time.Sleep(5 * time.Second)
	var claimed string
	var metaErr error
	if only, err := kgo.NewClient(kgo.SeedBrokers(victim.kafka), kgo.RequestRetries(0)); err == nil {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		mctx, mcancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := req.RequestWith(mctx, only)
		mcancel()
		only.Close()
		metaErr = err
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					for _, b := range resp.Brokers {
						if b.NodeID == p.Leader && fmt.Sprintf("%s:%d", b.Host, b.Port) == victim.kafka {
							claimed += fmt.Sprintf(" p%d", p.Partition)
						}
					}
				}
			}
		}
		t.Logf("Metadata asked of %s 5 s after the cut: err %v, it leads:%s", victim.name, err, claimed)
	}
	time.Sleep(hold - time.Since(cutAt))
	if err := lab.heal(vi); err != nil {
		t.Fatal(err)
	}
	healedAt := time.Now()
	t.Logf("healed %s's link", victim.name)
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	// Every record acknowledged reaches the member.
	for wait := time.Now(); time.Since(wait) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
		mu.Lock()
		missing := 0
		for v := range acked {
			if _, ok := consumed[v]; !ok {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
	}
	member.Close()
	<-memberDone

	mu.Lock()
	longest := map[int32]time.Duration{}
	for p, ws := range waits {
		for _, w := range ws {
			if w.began.Add(w.took).After(cutAt) && w.began.Before(healedAt) {
				longest[p] = max(longest[p], w.took)
			}
		}
	}
	var lag time.Duration
	var missing []string
	during := 0
	for v, at := range acked {
		if at.Before(cutAt) {
			continue
		}
		got, ok := consumed[v]
		if !ok {
			missing = append(missing, v)
			continue
		}
		if at.Before(healedAt) {
			during++
			lag = max(lag, got.Sub(at))
		}
	}
	mu.Unlock()
	slices.Sort(missing)
	t.Logf("SUMMARY cut %v of %s: longest produce wait p%d (cut-off leader) %v, p%d (healthy leader) %v; %d records acknowledged during the cut, longest consume lag %v; load %s",
		hold, victim.name, victimP, longest[victimP].Round(time.Millisecond), healthyP, longest[healthyP].Round(time.Millisecond),
		during, lag.Round(time.Millisecond), loadAvg())
	for _, p := range []int32{victimP, healthyP} {
		if longest[p] > kafkaCutProduceBound {
			t.Errorf("a record to p%d waited %v for its acknowledgement during the cut, want at most %v", p, longest[p].Round(time.Millisecond), kafkaCutProduceBound)
		}
	}
	var dial *net.OpError
	switch {
	case claimed != "":
		t.Errorf("%s answered Metadata during the cut as the leader of%s, want the connection refused or no leader", victim.name, claimed)
	case metaErr != nil && !(errors.As(metaErr, &dial) && dial.Op == "dial"):
		t.Errorf("Metadata asked of %s during the cut: %v, want the connection refused or an answer naming no leader on it", victim.name, metaErr)
	}
	if during == 0 {
		t.Errorf("no record was acknowledged during the cut")
	}
	if lag > kafkaCutConsumeBound {
		t.Errorf("a record acknowledged during the cut reached the group member %v later, want at most %v", lag.Round(time.Millisecond), kafkaCutConsumeBound)
	}
	if len(missing) > 0 {
		t.Errorf("%d records acknowledged after the cut never reached the group member (first %s)", len(missing), missing[0])
	}

	// After the heal the node serves a Kafka client that knows only it: a new
	// client each time, so that it knows no other broker.
	for {
		only, err := kgo.NewClient(kgo.SeedBrokers(victim.kafka))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err = only.Ping(pctx)
		pcancel()
		only.Close()
		if err == nil {
			t.Logf("%s serves a Kafka client that knows only it %v after the heal", victim.name, time.Since(healedAt).Round(time.Millisecond))
			return
		}
		if time.Since(healedAt) > 45*time.Second {
			t.Fatalf("%s does not serve a Kafka client 45 s after the heal: %v", victim.name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
