//go:build chaos

package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// TestKafkaFaultDrill drills Kafka clients through a sick partition leader: three
// node processes in their own network namespaces, a franz-go producer (keyed
// records, acks=all, idempotent) and a franz-go group member, both bootstrapped
// with every node's Kafka address. The node that leads the groups bucket (the
// group's coordinator) and some of the topic's partitions gets the fault named by
// QXD_KAFKA_FAULT:
//
//   - kill: SIGKILL, restarted after QXD_CUT_HOLD (15 s);
//   - pause: SIGSTOP, SIGCONT after QXD_CUT_HOLD;
//   - cut: its link to the other nodes down (its clients still reach it), up
//     after QXD_CUT_HOLD;
//   - pair: cut from the next node only (a blackhole route to the other's
//     cluster address in each one's namespace), while the third reaches both;
//     healed after QXD_CUT_HOLD. Both cut nodes live: the next node's
//     partitions count as a healthy node's.
//
// Every key is produced one record at a time and every acknowledgement timed; the
// test reports the longest wait for a partition the faulty node led and for one a
// healthy node led, and fails when one exceeds kafkaDrillBound (the faulty node's
// partitions, JetStream's election and a second more) or kafkaDrillHealthyBound
// (the healthy nodes'). Every record handed to the producer must be
// acknowledged (one never acknowledged waited until the run's end, and counts
// so for its partition); nothing acknowledged may be lost, doubled or reordered
// in the log, and every acknowledged record reaches the group.
//
// The producer gives up on a request after 5 s (ProduceRequestTimeout 4 s,
// RequestTimeoutOverhead 1 s), as docs/kafka.md recommends; with
// QXD_KAFKA_TIMEOUTS=default it keeps franz-go's 20 s, and a pause is then
// reported without the faulty node's bound: a client waits for its request in
// flight on the paused node until the node wakes or the request times out, which
// no server can shorten (see kafkaDrillTimeouts).
func TestKafkaFaultDrill(t *testing.T) {
	r := startKafkaDrill(t)
	d := newKafkaDrillLedger()
	member, err := kgo.NewClient(kgo.SeedBrokers(r.seeds...), kgo.ConsumerGroup(kafkaDrillGroup), kgo.ConsumeTopics(kafkaDrillTopic),
		kgo.FetchMaxWait(500*time.Millisecond), kgo.ClientID("kafka-drill-member"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	popts := []kgo.Opt{kgo.SeedBrokers(r.seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(2 * time.Minute), kgo.ClientID("kafka-drill-producer")}
	if r.short {
		// A produce request unanswered for 4 s + 1 s is abandoned and sent
		// again, to another broker once the metadata names one (franz-go's
		// defaults are 10 s + 10 s). The overhead is also how long every
		// other wait on the paused node lasts (a Metadata read, a new
		// connection's ApiVersions), up to four of them when franz-go asks
		// the paused node for the metadata: with 3 s + 2 s that came to
		// 9.3-11.1 s, over the drill's bound once.
		produce, overhead := kafkaDrillFranzTimeouts(t)
		popts = append(popts, kgo.ProduceRequestTimeout(produce), kgo.RequestTimeoutOverhead(overhead))
	}
	if dir := os.Getenv("QXD_TEST_KEEP_LOGS"); dir != "" {
		f, err := os.CreateTemp(dir, "kafka-drill-producer-*.log")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		t.Logf("producer log in %s", f.Name())
		popts = append(popts, kgo.WithLogger(kgo.BasicLogger(f, kafkaDrillLogLevel(), func() string { return time.Now().Format("15:04:05.000 ") })))
	}
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for k := range kafkaDrillKeys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Appendf(nil, "key-%02d", k)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := &kgo.Record{Topic: kafkaDrillTopic, Key: key, Value: fmt.Appendf(nil, "%s/%09d", key, i)}
				began := time.Now()
				d.send(string(rec.Value), began)
				if err := prod.ProduceSync(r.ctx, rec).FirstErr(); err != nil {
					d.fail(string(rec.Value))
					t.Logf("produce %s: %v", rec.Value, err)
					return
				}
				d.ack(string(rec.Value), rec.Partition, rec.Offset, began, time.Now())
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	memberDone := make(chan struct{})
	go func() {
		defer close(memberDone)
		for r.ctx.Err() == nil {
			fs := member.PollFetches(r.ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(rec *kgo.Record) { d.consume(string(rec.Value)) })
		}
	}()
	r.warmUp(t, d)
	faultAt := r.faultAndBack(t)
	time.Sleep(10 * time.Second)
	close(stop)
	wg.Wait()
	// Every record acknowledged reaches the member.
	for wait := time.Now(); d.missing() > 0 && time.Since(wait) < 45*time.Second; time.Sleep(200 * time.Millisecond) {
	}
	member.Close()
	<-memberDone
	r.verdict(t, d, "franz-go", faultAt, time.Now())
}

// The drill's topic and group: kafkaDrillKeys keys over kafkaDrillPartitions
// partitions of three replicas.
const (
	kafkaDrillTopic      = "kafka-drill"
	kafkaDrillGroup      = "g-kafka-drill"
	kafkaDrillPartitions = 6
	kafkaDrillKeys       = 12
)

// kafkaDrill is a Kafka fault drill's cluster: three node processes in network
// namespaces with their Kafka listeners on the lab's client links, the drill's
// topic, and the node that gets the fault (the groups bucket's leader, so also
// the group's coordinator).
type kafkaDrill struct {
	ctx    context.Context
	fault  string        // kill, pause or cut (QXD_KAFKA_FAULT)
	hold   time.Duration // how long the node stays down (QXD_CUT_HOLD)
	short  bool          // the clients run with the recommended short request timeouts
	lab    *netnsLab
	cl     *procCluster
	admin  *qxd.Client
	victim *procNode
	vi     int
	seeds  []string       // every node's Kafka address
	led    map[int32]bool // the partitions the victim led just before the fault
}

// startKafkaDrill reads the drill's settings, starts the cluster, creates the
// topic and picks the node to harm. It skips with -short and where network
// namespaces cannot be made (not root).
func startKafkaDrill(t *testing.T) *kafkaDrill {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a network of namespaces and starts three qxd processes; skipped with -short")
	}
	r := &kafkaDrill{fault: os.Getenv("QXD_KAFKA_FAULT"), led: map[int32]bool{}}
	if r.fault == "" {
		r.fault = "cut"
	}
	if !slices.Contains([]string{"kill", "pause", "cut", "pair"}, r.fault) {
		t.Fatalf("QXD_KAFKA_FAULT=%q: use kill (SIGKILL, then restart), pause (SIGSTOP, then SIGCONT), cut (links down, then up) or pair (cut from the next node only)", r.fault)
	}
	r.short = kafkaDrillTimeouts(t)
	r.hold = cutHold(t)
	r.lab = newNetnsLab(t, 3)
	bin := drillBin(t)
	layout := r.lab.layout()
	for i := range r.lab.nodes {
		layout.kafka = append(layout.kafka, r.lab.clientIP(i)+":9092")
	}
	r.cl = startProcCluster(t, bin, layout)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx

	r.admin = connect(t, r.cl.urls())
	if _, err := r.admin.Admin().CreateTopic(ctx, kafkaDrillTopic, qxd.TopicConfig{Partitions: kafkaDrillPartitions, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	buckets := bucketLeaders(ctx, t, r.cl.urls())
	r.victim = r.cl.node(buckets[semantics.GroupsBucket])
	if r.victim == nil {
		t.Fatalf("the groups bucket's leader %q is not one of the nodes", buckets[semantics.GroupsBucket])
	}
	r.vi = slices.Index(r.cl.nodes, r.victim)
	for _, n := range r.cl.nodes {
		r.seeds = append(r.seeds, n.kafka)
	}
	return r
}

// kafkaDrillTimeouts says whether the drill's clients bound their requests as
// docs/kafka.md recommends (QXD_KAFKA_TIMEOUTS=short, the default) or keep
// their own defaults (QXD_KAFKA_TIMEOUTS=default: franz-go 20 s, librdkafka
// 60 s).
func kafkaDrillTimeouts(t *testing.T) bool {
	t.Helper()
	switch v := os.Getenv("QXD_KAFKA_TIMEOUTS"); v {
	case "", "short":
		return true
	case "default":
		return false
	default:
		t.Fatalf("QXD_KAFKA_TIMEOUTS=%q: use short (the request timeouts docs/kafka.md recommends) or default (the client's own)", v)
		return false
	}
}

// kafkaDrillFranzTimeouts is the franz-go producer's ProduceRequestTimeout and
// RequestTimeoutOverhead with short timeouts: 4 s and 1 s, or the pair
// QXD_KAFKA_FRANZ_TIMEOUTS names ("3s,2s"), to compare how the two shares of one
// bound play out (docs/kafka.md, "When a node stops answering").
func kafkaDrillFranzTimeouts(t *testing.T) (produce, overhead time.Duration) {
	t.Helper()
	v := os.Getenv("QXD_KAFKA_FRANZ_TIMEOUTS")
	if v == "" {
		return 4 * time.Second, time.Second
	}
	p, o, ok := strings.Cut(v, ",")
	produce, err1 := time.ParseDuration(p)
	overhead, err2 := time.ParseDuration(o)
	if !ok || err1 != nil || err2 != nil || produce <= 0 || overhead <= 0 {
		t.Fatalf("QXD_KAFKA_FRANZ_TIMEOUTS=%q: want the produce timeout and the overhead, as in 3s,2s", v)
	}
	return produce, overhead
}

// timeouts names the clients' request timeouts for the log.
func (r *kafkaDrill) timeouts() string {
	if r.short {
		if v := os.Getenv("QXD_KAFKA_FRANZ_TIMEOUTS"); v != "" {
			return "short client timeouts (franz-go " + v + ")"
		}
		return "short client timeouts"
	}
	return "default client timeouts"
}

// kafkaDrillSettle is how long the producer runs before the fault: past the
// metadata reads a client makes as it starts (franz-go reads the metadata again
// 5 s after its first read, then only every 5 minutes or after an error). A
// fault in those seconds meets a read the client would not make later, which
// can move it early: in two pause runs of the first version of the drill (the
// fault 2 s after the group's first record, about 3 s after the producer's
// start) franz-go moved after 2.6 and 3.0 s, where a fault 10 s in costs it
// its request timeout, 5 s.
const kafkaDrillSettle = 10 * time.Second

// warmUp waits for the group to read its first record, for every node to watch
// its cluster and for the producer to have run kafkaDrillSettle, then notes the
// partitions the victim leads.
func (r *kafkaDrill) warmUp(t *testing.T, d *kafkaDrillLedger) {
	t.Helper()
	for wait := time.Now(); d.consumedCount() == 0; time.Sleep(100 * time.Millisecond) {
		if time.Since(wait) > 45*time.Second {
			t.Fatalf("the group member consumed nothing within 45 s")
		}
	}
	waitWatching(r.ctx, t, r.cl)
	time.Sleep(2 * time.Second)
	time.Sleep(time.Until(d.firstAck().Add(kafkaDrillSettle)))
	for p := range int32(kafkaDrillPartitions) {
		if l, err := leaderOf(r.ctx, r.admin, kafkaDrillTopic, p); err == nil && l == r.victim.name {
			r.led[p] = true
		}
	}
	if len(r.led) == 0 || len(r.led) == kafkaDrillPartitions {
		t.Fatalf("want %s to lead some partitions but not all (it leads %d of %d)", r.victim.name, len(r.led), kafkaDrillPartitions)
	}
}

// faultAndBack harms the victim, holds it so for r.hold and brings it back. It
// returns when the fault began.
func (r *kafkaDrill) faultAndBack(t *testing.T) time.Time {
	t.Helper()
	faultAt := time.Now()
	switch r.fault {
	case "kill":
		if err := r.victim.kill(); err != nil {
			t.Fatal(err)
		}
	case "pause":
		if err := r.victim.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	case "cut":
		if err := r.lab.cut(r.vi); err != nil {
			t.Fatal(err)
		}
	case "pair":
		if err := r.lab.cutPair(r.vi, (r.vi+1)%len(r.cl.nodes)); err != nil {
			t.Fatal(err)
		}
		t.Logf("cut between %s and %s only", r.victim.name, r.cl.nodes[(r.vi+1)%len(r.cl.nodes)].name)
	}
	t.Logf("%s %s (coordinates the group, leads %v) for %v", r.fault, r.victim.name, slices.Sorted(maps.Keys(r.led)), r.hold)
	time.Sleep(r.hold - time.Since(faultAt))
	switch r.fault {
	case "kill":
		if err := r.victim.start(); err != nil {
			t.Fatal(err)
		}
	case "pause":
		if err := r.victim.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	case "cut":
		if err := r.lab.heal(r.vi); err != nil {
			t.Fatal(err)
		}
	case "pair":
		if err := r.lab.healPair(r.vi, (r.vi+1)%len(r.cl.nodes)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s is back (%s)", r.victim.name, map[string]string{"kill": "restarted", "pause": "SIGCONT", "cut": "healed", "pair": "healed"}[r.fault])
	return faultAt
}

// verdict reads the log back, logs the SUMMARY line and fails the test where the
// waits pass their bounds, a record handed to the producer was never
// acknowledged, or one acknowledged was lost, doubled, reordered or never read
// by the group (kafkaDrillLedger.judge). The faulty node's bound is not applied
// to a pause with the client's default timeouts: the client waits for its
// request in flight on the paused node up to its timeout (the SUMMARY line says
// so).
func (r *kafkaDrill) verdict(t *testing.T, d *kafkaDrillLedger, client string, faultAt, endAt time.Time) {
	t.Helper()
	bounded := r.short || r.fault != "pause"
	v := d.judge(r.led, bounded, faultAt, endAt)
	lost, doubled, reordered := kafkaDrillCheckLog(r.ctx, t, r.seeds, kafkaDrillTopic, d)
	bound := fmt.Sprintf("bound %v / %v", kafkaDrillBound, kafkaDrillHealthyBound)
	if !bounded {
		bound = fmt.Sprintf("no bound for the faulty node's partitions (default client timeouts wait out a pause) / %v", kafkaDrillHealthyBound)
	}
	t.Logf("SUMMARY kafka %s %s %v of %s, %s: longest produce wait %v (p%d, led by %s), %v (p%d, led by a healthy node), %s; %d records acknowledged, %d failed, %d never acknowledged; log: %d lost, %d doubled, %d out of order; group: %d never consumed, %d consumed again; load %s",
		client, r.fault, r.hold, r.victim.name, r.timeouts(), v.faulty.Round(time.Millisecond), v.faultyP, r.victim.name,
		v.healthy.Round(time.Millisecond), v.healthyP, bound, d.ackedCount(), d.failedCount(), v.unacked, lost, doubled, reordered, v.missing, d.readAgain(), loadAvg())
	for _, p := range slices.Sorted(maps.Keys(v.longest)) {
		t.Logf("p%d (led by %s before the fault: %v): longest wait %v, from %v after the fault", p, r.victim.name, r.led[p], v.longest[p].Round(time.Millisecond), v.began[p].Sub(faultAt).Round(time.Millisecond))
	}
	for _, problem := range v.problems {
		t.Error(problem)
	}
	if lost+doubled+reordered > 0 {
		t.Errorf("the log lost %d acknowledged records, holds %d twice and %d out of their key's order", lost, doubled, reordered)
	}
	r.keepLogs(t)
}

// keepLogs copies every node's logs, one file per start (<node>-<start>.log),
// to the directory QXD_DRILL_LOGS names, if it names one
// (QXD_TEST_NODE_LOG_LEVEL=debug for qxd's debug lines).
func (r *kafkaDrill) keepLogs(t *testing.T) {
	t.Helper()
	dir := os.Getenv("QXD_DRILL_LOGS")
	if dir == "" {
		return
	}
	for _, n := range r.cl.nodes {
		paths, _ := filepath.Glob(filepath.Join(n.logDir, n.name+"-*.log"))
		for _, path := range paths {
			b, err := os.ReadFile(path)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
			}
			if err != nil {
				t.Errorf("keep %s's log %s: %v", n.name, path, err)
			}
		}
	}
}

// kafkaDrillLogLevel is the producer log's level: debug with
// QXD_KAFKA_DRILL_DEBUG=1, else info.
func kafkaDrillLogLevel() kgo.LogLevel {
	if os.Getenv("QXD_KAFKA_DRILL_DEBUG") == "1" {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelInfo
}

// kafkaDrillCheckLog reads every partition from its start with a client of its
// own and counts the acknowledged records not at their acknowledged offset (lost),
// the records stored twice, and the records of a key stored out of the order the
// key's producer sent them.
func kafkaDrillCheckLog(ctx context.Context, t *testing.T, seeds []string, topic string, d *kafkaDrillLedger) (lost, doubled, reordered int) {
	t.Helper()
	d.mu.Lock()
	want := map[int32]int64{} // partition → offset past the last acknowledged record
	for _, a := range d.acked {
		want[a.partition] = max(want[a.partition], a.offset+1)
	}
	d.mu.Unlock()
	offs := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range want {
		offs[topic][p] = kgo.NewOffset().AtStart()
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(offs), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stored := map[string][]int64{} // value → offsets holding it
	last := map[string]int64{}     // key → last sequence read
	next := map[int32]int64{}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for rctx.Err() == nil {
		done := true
		for p, w := range want {
			if next[p] < w {
				done = false
			}
		}
		if done {
			break
		}
		fs := c.PollFetches(rctx)
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
			v := string(r.Value)
			stored[v] = append(stored[v], r.Offset)
			k, seq, _ := strings.Cut(v, "/")
			n, _ := strconv.ParseInt(seq, 10, 64)
			if l, ok := last[k]; ok && n <= l {
				reordered++
			}
			last[k] = n
		})
	}
	if rctx.Err() != nil {
		t.Errorf("reading the log back: %v (read to %v, want %v)", rctx.Err(), next, want)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for v, a := range d.acked {
		if !slices.Contains(stored[v], a.offset) {
			lost++
		}
	}
	for _, o := range stored {
		if len(o) > 1 {
			doubled++
		}
	}
	return lost, doubled, reordered
}
