package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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

// The exactly-once conformance test: a consume-transform-produce pipeline of SDK
// members — each a consumer of group "eos" reading eos-in read-committed and a
// transactional producer writing eos-out, the input offsets committed in the
// output's transaction — runs on three real node processes while the input is
// produced, and members, partition leaders and the node coordinating
// transactions are killed. At the end the read-committed output holds exactly
// one transformed copy of every input record, each key's copies in the input's
// order, and the group's committed offsets are the input's ends.
//
// TestExactlyOnceKills (default suite) kills one member in the middle of a
// transaction and SIGKILLs the coordinating node once. TestExactlyOnceChaos
// (chaos tag, `just eos`) kills at random for QXD_EOS_DURATION.
//
// QXD_EOS_WEAKEN=offsets-outside commits the input offsets outside the
// transaction, after it (at-least-once): the test must then fail with
// duplicates, which shows it can.

// eosPlan is one run of the pipeline.
type eosPlan struct {
	client     string // the members' client: "sdk" (default), "franz-go" (GroupTransactSession on the Kafka listeners) or "librdkafka" (confluent-kafka Python processes on them)
	partitions int32
	members    int
	keys       int
	rate       int           // input records a second
	load       time.Duration // how long the input is produced
	// faults returns the faults to inject, in order, each after a pause; nil
	// for none. Called while the input is produced.
	faults func(i int) (eosFault, time.Duration, bool)
}

// eosFault is one fault of the run.
type eosFault int

const (
	faultMember      eosFault = iota // a member dies in the middle of a transaction
	faultCoordinator                 // SIGKILL of the node leading the groups bucket (transaction coordinator)
	faultLeader                      // SIGKILL of the node leading a random partition of eos-in or eos-out
)

func (f eosFault) String() string {
	return [...]string{"member", "coordinator", "leader"}[f]
}

// TestExactlyOnceKills runs the pipeline of three members over six partitions on
// three node processes; a member dies in the middle of a transaction, and the
// node coordinating transactions is SIGKILLed under load and restarted.
func TestExactlyOnceKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three qxd processes; skipped with -short")
	}
	plan := eosPlan{partitions: 6, members: 3, keys: 30, rate: 300, load: 8 * time.Second,
		faults: func(i int) (eosFault, time.Duration, bool) {
			switch i {
			case 0:
				return faultMember, 2 * time.Second, true
			case 1:
				return faultCoordinator, time.Second, true
			}
			return 0, 0, false
		}}
	runEOS(t, plan)
}

// eosWeaken is the QXD_EOS_WEAKEN setting of the run.
func eosWeaken() string { return os.Getenv("QXD_EOS_WEAKEN") }

// runEOS runs plan and checks the output.
func runEOS(t *testing.T, plan eosPlan) {
	began := time.Now()
	bin := buildQxd(t)
	cl := startProcCluster(t, bin, loopbackLayout(t, 3))
	t.Logf("3 node processes ready after %v", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), plan.load+4*time.Minute)
	defer cancel()
	c := connect(t, cl.urls())
	for _, topic := range []string{"eos-in", "eos-out"} {
		if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: plan.partitions, Replicas: 3}); err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	run := &eosRun{t: t, urls: cl.urls(), weaken: eosWeaken(), stop: make(chan struct{})}
	for _, n := range cl.nodes {
		run.seeds = append(run.seeds, n.kafka)
	}
	if plan.client != "" && plan.client != "sdk" && run.weaken != "" {
		t.Fatalf("QXD_EOS_WEAKEN=%s applies to SDK members only", run.weaken)
	}
	if run.weaken != "" {
		t.Logf("WEAKENED: %s", run.weaken)
	}
	for i := range plan.members {
		m := &eosMember{run: run, id: i, client: plan.client}
		run.members = append(run.members, m)
		run.wg.Add(1)
		go m.loop(ctx)
	}

	// The input: keys k00..kNN, each key's values numbered in order.
	inClient := connect(t, cl.urls())
	in, err := inClient.NewProducer(qxd.DefaultTopic("eos-in"), qxd.DeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var inFailed atomic.Int64
	var inErr atomic.Value
	produced := make(chan int)
	go func() {
		total := int(plan.load.Seconds() * float64(plan.rate))
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		n := 0
		for n < total && ctx.Err() == nil {
			<-tick.C
			for due := int(time.Since(start).Seconds()*float64(plan.rate)) + 1; n < due && n < total; n++ {
				k := n % plan.keys
				r := &qxd.Record{Key: fmt.Appendf(nil, "k%02d", k), Value: fmt.Appendf(nil, "k%02d-%06d", k, n/plan.keys)}
				if err := in.Produce(ctx, r, func(_ *qxd.Record, err error) {
					if err != nil {
						inFailed.Add(1)
						inErr.Store(err)
					}
				}); err != nil {
					inFailed.Add(1)
					inErr.Store(err)
				}
			}
		}
		if err := in.Flush(ctx); err != nil {
			inErr.Store(err)
		}
		produced <- n
	}()

	// The faults, while the input goes in.
	var faults []string
	for i := 0; plan.faults != nil; i++ {
		f, after, ok := plan.faults(i)
		if !ok {
			break
		}
		select {
		case <-time.After(after):
		case <-ctx.Done():
		}
		what := run.inject(ctx, cl, c, f)
		faults = append(faults, what)
		t.Logf("fault %d at %v: %s", i+1, time.Since(began).Round(time.Millisecond), what)
	}
	sent := <-produced
	if err := in.Close(ctx); err != nil {
		t.Logf("close the input producer: %v", err)
	}
	if n := inFailed.Load(); n > 0 {
		// Not a failure of the pipeline: the input is what the log holds.
		t.Logf("%d of %d input records failed (last: %v); the check uses the input's log", n, sent, inErr.Load())
	}

	// Until the group committed the input's ends.
	ends := waitCommittedEnds(ctx, t, c, "eos", "eos-in")
	close(run.stop)
	run.wg.Wait()
	t.Logf("pipeline done %v after the start; %d input records sent; faults: %s; transactions committed %d, aborted or failed %d, member incarnations %d, members killed for hanging %d",
		time.Since(began).Round(time.Millisecond), sent, strings.Join(faults, ", "), run.commits.Load(), run.failures.Load(), run.incarnations.Load(), run.hung.Load())

	input, err := readLog(ctx, c, "eos-in")
	if err != nil {
		t.Fatal(err)
	}
	output := readCommittedLog(ctx, t, c, "eos-out")
	rep := checkEOS(input, output)
	t.Logf("input %d records, read-committed output %d records: %d input records missing, %d duplicated, %d keys out of order",
		rep.inputs, rep.outputs, rep.missing, rep.duplicated, rep.disordered)
	for _, p := range rep.problems {
		t.Error(p)
	}
	var total int64
	for _, e := range ends {
		total += e
	}
	if total != int64(rep.inputs) {
		t.Errorf("the group committed offsets summing to %d, but the input holds %d records", total, rep.inputs)
	}
}

// eosRun is the pipeline's shared state.
type eosRun struct {
	t       *testing.T
	urls    string
	seeds   []string // the nodes' Kafka listeners
	weaken  string
	stop    chan struct{}
	wg      sync.WaitGroup
	members []*eosMember

	commits      atomic.Int64
	failures     atomic.Int64
	incarnations atomic.Int64
	hung         atomic.Int64 // librdkafka members killed for hanging in a transaction
}

// inject runs fault f and returns what it did.
func (r *eosRun) inject(ctx context.Context, cl *procCluster, c *qxd.Client, f eosFault) string {
	switch f {
	case faultMember:
		m := r.members[rand.IntN(len(r.members))]
		m.kill.Store(true)
		return fmt.Sprintf("member %d dies in a transaction", m.id)
	case faultCoordinator, faultLeader:
		var name, why string
		if f == faultCoordinator {
			name, why = streamLeader(ctx, r.urls, semantics.KVStream(semantics.GroupsBucket)), "coordinates transactions"
		} else {
			topic := []string{"eos-in", "eos-out"}[rand.IntN(2)]
			p := rand.Int32N(6)
			var err error
			if name, err = leaderOf(ctx, c, topic, p); err != nil {
				return fmt.Sprintf("no leader of %s/%d to kill: %v", topic, p, err)
			}
			why = fmt.Sprintf("leads %s/%d", topic, p)
		}
		n := cl.node(name)
		if n == nil {
			return fmt.Sprintf("no node %q to kill (%s)", name, why)
		}
		if err := n.kill(); err != nil {
			r.t.Error(err)
		}
		killed := time.Now()
		time.Sleep(time.Duration(2+rand.IntN(3)) * time.Second)
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := cl.restart(rctx, n); err != nil {
			r.t.Errorf("restart %s: %v", n.name, err)
		}
		return fmt.Sprintf("SIGKILL of %s, which %s (back after %v)", n.name, why, time.Since(killed).Round(time.Millisecond))
	}
	return "?"
}

// streamLeader returns the node leading stream, "" when unknown.
func streamLeader(ctx context.Context, urls, stream string) string {
	nc, err := nats.Connect(urls)
	if err != nil {
		return ""
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return ""
	}
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(sctx, stream)
		cancel()
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return s.CachedInfo().Cluster.Leader
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ""
}

// eosMember is one member slot of the pipeline: an incarnation (client,
// consumer, transactional producer with id eos-<id>) runs until it dies or
// fails, and the next one takes its place, as a restarted process would.
type eosMember struct {
	run    *eosRun
	id     int
	client string       // as eosPlan's
	kill   atomic.Bool  // die in the middle of the next transaction
	begun  atomic.Int64 // librdkafka: when its open transaction began (Unix ns), 0 for none
}

func (m *eosMember) loop(ctx context.Context) {
	defer m.run.wg.Done()
	for ctx.Err() == nil {
		select {
		case <-m.run.stop:
			return
		default:
		}
		m.run.incarnations.Add(1)
		var again bool
		switch m.client {
		case "franz-go":
			again = m.franzIncarnation(ctx)
		case "librdkafka":
			again = m.pythonIncarnation(ctx)
		default:
			again = m.incarnation(ctx)
		}
		if !again {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// logf logs a member's event.
func (m *eosMember) logf(format string, args ...any) {
	m.run.t.Logf("%s member %d: %s", time.Now().Format("15:04:05.000"), m.id, fmt.Sprintf(format, args...))
}

// incarnation runs one incarnation of the member; it returns false when the run
// stops.
func (m *eosMember) incarnation(ctx context.Context) bool {
	c, err := qxd.Connect(ctx, m.run.urls, qxd.NATSOptions(nats.ReconnectWait(100*time.Millisecond)),
		qxd.ClientRequestTimeout(10*time.Second))
	if err != nil {
		m.logf("connect: %v", err)
		return true
	}
	abrupt := true
	defer func() {
		if abrupt {
			c.Close()
		}
	}()
	prod, err := c.NewProducer(qxd.TransactionalID(fmt.Sprintf("eos-%d", m.id)), qxd.DefaultTopic("eos-out"),
		qxd.TransactionTimeout(15*time.Second), qxd.DeliveryTimeout(30*time.Second))
	if err != nil {
		m.logf("transactional producer: %v", err)
		return true
	}
	cons, err := c.NewConsumer(qxd.Group("eos"), qxd.AutoCommit(0), qxd.Isolation(qxd.ReadCommitted),
		qxd.BlockRebalanceOnPoll(), qxd.MaxPollRecords(60), qxd.SessionTimeout(6*time.Second),
		qxd.HeartbeatInterval(500*time.Millisecond))
	if err != nil {
		m.logf("consumer: %v", err)
		return true
	}
	if err := cons.Subscribe(ctx, "eos-in"); err != nil {
		m.logf("subscribe: %v", err)
		return true
	}
	for {
		select {
		case <-m.run.stop:
			abrupt = false
			cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = cons.Close(cctx)
			_ = prod.Close(cctx)
			c.Close()
			return false
		default:
		}
		if ctx.Err() != nil {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		recs, err := cons.Poll(pctx)
		cancel()
		if err != nil && pctx.Err() == nil {
			m.logf("poll: %v; starting again", err)
			return true
		}
		if len(recs) == 0 {
			cons.AllowRebalance()
			continue
		}
		if err := m.transact(ctx, c, prod, cons, recs); err != nil {
			if errors.Is(err, errMemberDied) {
				return true
			}
			m.run.failures.Add(1)
			m.logf("transaction of %d records: %v", len(recs), err)
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			aerr := prod.AbortTransaction(actx)
			cancel()
			if aerr != nil && !errors.Is(aerr, qxd.ErrNoTransaction) {
				m.logf("abort: %v; starting again", aerr)
				return true
			}
			if err := rewind(ctx, cons); err != nil {
				m.logf("go back to the committed offsets: %v; starting again", err)
				return true
			}
		}
		cons.AllowRebalance()
	}
}

// errMemberDied: the member died as planned (its client closed abruptly).
var errMemberDied = errors.New("member died")

// transact turns recs into one transaction: the transformed records and the
// input's next offsets commit together.
func (m *eosMember) transact(ctx context.Context, c *qxd.Client, prod *qxd.Producer, cons *qxd.Consumer, recs []qxd.Record) error {
	if err := prod.BeginTransaction(); err != nil {
		return err
	}
	next := map[qxd.TopicPartition]qxd.OffsetAndMetadata{}
	for _, r := range recs {
		out := &qxd.Record{Key: r.Key, Value: fmt.Appendf(nil, "%s@%d/%d", r.Value, r.Partition, r.Offset)}
		if err := prod.Produce(ctx, out, nil); err != nil {
			return err
		}
		next[qxd.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = qxd.OffsetAndMetadata{Offset: r.Offset + 1}
	}
	die := m.kill.Swap(false)
	if die && m.run.weaken == "" {
		// Its records are in the log, its transaction open; the client goes
		// away without a word, as a killed process's does.
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = prod.Flush(fctx)
		cancel()
		c.Close()
		m.logf("died with %d records in its open transaction", len(recs))
		return errMemberDied
	}
	if m.run.weaken != "offsets-outside" {
		if err := prod.SendOffsetsToTransaction(ctx, cons, next); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := prod.CommitTransaction(cctx); err != nil {
		return err
	}
	m.run.commits.Add(1)
	if m.run.weaken == "offsets-outside" {
		if die {
			// Dies between its transaction's commit and its offsets' commit.
			c.Close()
			m.logf("died after committing a transaction of %d records, before committing their offsets", len(recs))
			return errMemberDied
		}
		offs := make(map[qxd.TopicPartition]int64, len(next))
		for tp, o := range next {
			offs[tp] = o.Offset
		}
		if err := cons.CommitOffsets(cctx, offs); err != nil {
			m.logf("commit offsets outside the transaction: %v", err)
		}
	}
	return nil
}

// rewind moves cons back to its group's committed offsets (the start where none
// is committed): after an aborted transaction, its records are to be read again.
func rewind(ctx context.Context, cons *qxd.Consumer) error {
	tps := cons.Assigned()
	if len(tps) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return cons.SeekToCommitted(rctx, tps...)
}

// waitCommittedEnds waits until group's committed offset of every partition of
// topic is the partition's high watermark, and returns them.
func waitCommittedEnds(ctx context.Context, t *testing.T, c *qxd.Client, group, topic string) map[int32]int64 {
	t.Helper()
	var last string
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := c.Admin().DescribeGroup(dctx, group)
		cancel()
		if err == nil {
			ends := map[int32]int64{}
			done := true
			var parts []string
			for _, p := range d.Partitions {
				if p.Topic != topic {
					continue
				}
				ends[p.Partition] = p.Committed
				parts = append(parts, fmt.Sprintf("%d: %d of %d", p.Partition, p.Committed, p.HighWatermark))
				if p.HighWatermark < 0 || p.Committed != p.HighWatermark {
					done = false
				}
			}
			if done && len(parts) > 0 {
				return ends
			}
			last = strings.Join(parts, ", ")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s did not commit the ends of %s: %s", group, topic, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// readCommittedLog reads every partition of topic read-committed, once no
// transaction is open in it, from the start to its high watermark.
func readCommittedLog(ctx context.Context, t *testing.T, c *qxd.Client, topic string) map[int32][]storedRecord {
	t.Helper()
	var d qxd.TopicDescription
	for {
		var err error
		d, err = c.Admin().DescribeTopic(ctx, topic)
		open := err != nil
		if err == nil {
			for _, p := range d.Partitions {
				if p.Problem != "" || p.LastStableOffset != p.HighWatermark {
					open = true
				}
			}
		}
		if !open {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: a transaction stays open (or a partition has no leader): %v %+v", topic, err, d.Partitions)
		case <-time.After(250 * time.Millisecond):
		}
	}
	cons, err := c.NewConsumer(qxd.Isolation(qxd.ReadCommitted))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	var as []qxd.Assignment
	want := map[int32]int64{}
	for _, p := range d.Partitions {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p.Partition, Offset: qxd.AtStart()})
		want[p.Partition] = p.HighWatermark
	}
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	out := map[int32][]storedRecord{}
	for {
		done := true
		for p, hw := range want {
			if pos, ok := cons.Position(topic, p); !ok || pos < hw {
				done = false
			}
		}
		if done {
			return out
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		recs, err := cons.Poll(pctx)
		cancel()
		if err != nil && pctx.Err() == nil {
			t.Fatalf("read %s read-committed: %v", topic, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("read %s read-committed: not at the ends %v after %v", topic, want, ctx.Err())
		}
		for _, r := range recs {
			out[r.Partition] = append(out[r.Partition], storedRecord{offset: r.Offset, key: string(r.Key), value: string(r.Value)})
		}
	}
}

// eosReport is what checkEOS found.
type eosReport struct {
	inputs, outputs int
	missing         int // input records without an output copy
	duplicated      int // extra output copies
	disordered      int // keys whose copies are not in the input's order
	problems        []string
}

// checkEOS checks that output holds exactly one copy of every input record, each
// key's copies in the order of the input's.
func checkEOS(input, output map[int32][]storedRecord) eosReport {
	var rep eosReport
	type src struct {
		p   int32
		off int64
	}
	inKey := map[src]string{}
	inByKey := map[string][]src{}
	for p, rs := range input {
		for _, r := range rs {
			inKey[src{p, r.offset}] = r.key
			inByKey[r.key] = append(inByKey[r.key], src{p, r.offset})
			rep.inputs++
		}
	}
	copies := map[src]int{}
	outByKey := map[string][]src{}
	problem := func(format string, args ...any) {
		if len(rep.problems) < 20 {
			rep.problems = append(rep.problems, fmt.Sprintf(format, args...))
		}
	}
	ps := make([]int32, 0, len(output))
	for p := range output {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		for _, r := range output[p] {
			rep.outputs++
			_, at, ok := strings.Cut(r.value, "@")
			sp, so, ok2 := strings.Cut(at, "/")
			ip, err1 := strconv.ParseInt(sp, 10, 32)
			io, err2 := strconv.ParseInt(so, 10, 64)
			if !ok || !ok2 || err1 != nil || err2 != nil {
				problem("output %d/%d: value %q names no input record", p, r.offset, r.value)
				continue
			}
			s := src{int32(ip), io}
			if k, ok := inKey[s]; !ok || k != r.key {
				problem("output %d/%d (%s=%s) names input %d/%d, which the input does not hold with that key", p, r.offset, r.key, r.value, ip, io)
				continue
			}
			copies[s]++
			if copies[s] == 2 {
				problem("input %d/%d (key %s) has more than one copy in the output, the second at %d/%d", ip, io, r.key, p, r.offset)
			}
			if copies[s] > 1 {
				rep.duplicated++
			}
			outByKey[r.key] = append(outByKey[r.key], s)
		}
	}
	for s, k := range inKey {
		if copies[s] == 0 {
			rep.missing++
			problem("input %d/%d (key %s) has no copy in the read-committed output", s.p, s.off, k)
		}
	}
	for k, ins := range inByKey {
		slices.SortFunc(ins, func(a, b src) int { return int(a.off - b.off) })
		outs := outByKey[k]
		var seen []src
		dup := map[src]bool{}
		for _, s := range outs {
			if !dup[s] {
				dup[s] = true
				seen = append(seen, s)
			}
		}
		if !slices.Equal(seen, ins) && len(seen) == len(ins) {
			rep.disordered++
			problem("key %s: its output copies are not in the input's order", k)
		}
	}
	return rep
}
