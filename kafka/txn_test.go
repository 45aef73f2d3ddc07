package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// readCommitted waits until no transaction is open in topic (ListOffsets'
// read_committed end equals the high watermark), then reads every partition with
// franz-go's read_committed consumer from the start: at least want records, and
// whatever else comes within a second after.
func readCommitted(ctx context.Context, t *testing.T, seeds []string, topic string, want int) []*kgo.Record {
	t.Helper()
	adm := kadm.NewClient(seedClient(t, seeds))
	var ends kadm.ListedOffsets
	for {
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err == nil {
			hw, herr := adm.ListEndOffsets(ctx, topic)
			if herr == nil && lso.Error() == nil && hw.Error() == nil {
				same := true
				lso.Each(func(o kadm.ListedOffset) {
					if h, ok := hw.Lookup(topic, o.Partition); !ok || h.Offset != o.Offset {
						same = false
					}
				})
				if same {
					ends = lso
					break
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: a transaction is still open (LSO below the high watermark): %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { parts[o.Partition] = kgo.NewOffset().AtStart() })
	cl := seedClient(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []*kgo.Record
	// At least want records, then whatever else comes within a second: a
	// duplicate would.
	quiet := time.Time{}
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("read %s/%d: %v", tp, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		if len(out) >= want && quiet.IsZero() {
			quiet = time.Now().Add(time.Second)
		}
		if !quiet.IsZero() && time.Now().After(quiet) {
			return out
		}
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d records, want %d", topic, len(out), want)
		}
	}
}

// TestKafkaTransactions: a franz-go transactional producer commits and aborts;
// read_committed consumers see exactly the committed records, read_uncommitted
// ones every record and no marker; a second producer with the same transactional
// id fences the first.
func TestKafkaTransactions(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "ktxn", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 30*time.Second)

	p := kafkaClient(t, n, kgo.TransactionalID("ktxn-p"), kgo.DefaultProduceTopic("ktxn"), kgo.TransactionTimeout(10*time.Second))
	for i, commit := range []bool{true, false, true} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 4 {
			r := &kgo.Record{Key: []byte(strconv.Itoa(j)), Value: []byte(fmt.Sprintf("t%d-%d", i, j))}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d (commit %v): %v", i, commit, err)
		}
	}
	var got []string
	for _, r := range readCommitted(ctx, t, []string{n.KafkaAddr()}, "ktxn", 8) {
		got = append(got, string(r.Value))
	}
	slices.Sort(got)
	want := []string{"t0-0", "t0-1", "t0-2", "t0-3", "t2-0", "t2-1", "t2-2", "t2-3"}
	if !slices.Equal(got, want) {
		t.Fatalf("read committed %q, want %q", got, want)
	}
	// read_uncommitted: all twelve, no marker.
	all := pollSDK(t, c, "ktxn", 2, 12)
	if len(all) != 12 {
		t.Fatalf("SDK read %d records, want 12", len(all))
	}

	// A second incarnation fences the first.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p2 := kafkaClient(t, n, kgo.TransactionalID("ktxn-p"), kgo.DefaultProduceTopic("ktxn"))
	if err := p2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p2.ProduceSync(ctx, &kgo.Record{Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	err := p.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("fenced producer's commit: %v, want PRODUCER_FENCED", err)
	}
	got = got[:0]
	for _, r := range readCommitted(ctx, t, []string{n.KafkaAddr()}, "ktxn", 9) {
		got = append(got, string(r.Value))
	}
	if slices.Contains(got, "zombie") || !slices.Contains(got, "new") {
		t.Fatalf("read committed %q: want new, not zombie", got)
	}
}

// killableDialer dials Kafka connections that kill closes, and refuses new ones
// after: a member whose process died, as the node sees it.
type killableDialer struct {
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

func (d *killableDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.killed {
		return nil, errors.New("member killed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *killableDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.killed = true
	for _, c := range d.conns {
		c.Close()
	}
}

// seedClient returns a franz-go client of the listeners at seeds, closed at cleanup.
func seedClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestKafkaExactlyOncePipeline runs franz-go's GroupTransactSession as a
// consume-transform-produce pipeline of three members over a partitioned input;
// one member is killed in the middle of a transaction. The read-committed output
// holds exactly one copy of every input record, each key's records in order, and
// the group's committed offsets are the input's ends. The members run
// transactions v2 (KIP-890 part 2): Produce v13 (v12 and up add the
// partitions), TxnOffsetCommit v6 (v5 and up add the group) and EndTxn v5,
// never AddPartitionsToTxn or AddOffsetsToTxn.
func TestKafkaExactlyOncePipeline(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "eos-in", qxd.TopicConfig{Partitions: 3})
	qxdtest.CreateTopic(t, c, "eos-out", qxd.TopicConfig{Partitions: 3})
	ctx := ctxFor(t, 90*time.Second)
	var log versionLog
	runPipeline(ctx, t, []string{n.KafkaAddr()}, 60, 25, 4*time.Second, true, nil, kgo.WithLogger(&log))
	for name, want := range map[string]int16{"Produce": 13, "TxnOffsetCommit": 6, "EndTxn": 5, "AddPartitionsToTxn": -1, "AddOffsetsToTxn": -1} {
		if got := log.max(name); got != want {
			t.Errorf("%s was answered at v%d at most, want v%d (-1: never)", name, got, want)
		}
	}
}

// runPipeline runs the exactly-once pipeline of TestKafkaExactlyOncePipeline
// from topic eos-in to eos-out (three partitions each) against the listeners at
// seeds: member 0 is killed in the middle of a transaction when killMember, and
// midRun, when set, is called once a third of the input is processed. It checks
// the read-committed output.
func runPipeline(ctx context.Context, t *testing.T, seeds []string, perKey, perRound int, txnTimeout time.Duration, killMember bool, midRun func(), extra ...kgo.Opt) {
	t.Helper()
	const keys = 30
	var processed atomic.Int64
	var killed atomic.Bool
	rounds := make([]atomic.Int64, 3)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var restarts atomic.Int64
	var memberSession func(i int, d *killableDialer, killAfter int) bool
	// member runs member i until stop, as a process would: a session that fails
	// (fenced, an end that did not finish) is closed and a new one started, as a
	// restarted process would.
	member := func(i int, d *killableDialer, killAfter int) {
		defer wg.Done()
		for {
			if !memberSession(i, d, killAfter) {
				return
			}
			restarts.Add(1)
		}
	}
	memberSession = func(i int, d *killableDialer, killAfter int) bool {
		opts := []kgo.Opt{
			kgo.SeedBrokers(seeds...), kgo.TransactionalID(fmt.Sprintf("eos-%d", i)),
			kgo.ConsumerGroup("eos"), kgo.ConsumeTopics("eos-in"), kgo.DefaultProduceTopic("eos-out"),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.TransactionTimeout(txnTimeout),
			kgo.SessionTimeout(4 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond),
			kgo.FetchMaxWait(200 * time.Millisecond), kgo.MaxBufferedRecords(100), kgo.FetchMaxBytes(4 << 10),
			kgo.Dialer(d.dial), kgo.RetryTimeout(30 * time.Second),
		}
		s, err := kgo.NewGroupTransactSession(append(opts, extra...)...)
		if err != nil {
			t.Error(err)
			return false
		}
		for round := 0; ; round++ {
			select {
			case <-stop:
				s.Close()
				return false
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := s.PollRecords(pctx, perRound)
			cancel()
			if err := s.Begin(); err != nil {
				t.Logf("member %d: begin: %v; starting again", i, err)
				go s.Close()
				return true
			}
			var recs []*kgo.Record
			fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
			for _, r := range recs {
				out := &kgo.Record{Key: r.Key, Value: []byte(string(r.Value) + "@" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10))}
				s.Produce(ctx, out, nil)
			}
			if killAfter > 0 && rounds[i].Load() >= int64(killAfter) && len(recs) > 0 {
				// Die in the middle of the transaction: its records are produced,
				// neither it nor its offsets committed.
				if err := s.Client().Flush(ctx); err != nil {
					t.Errorf("member %d: flush: %v", i, err)
				}
				d.kill()
				killed.Store(true)
				t.Logf("member %d killed after %d rounds, with %d records in its open transaction", i, round, len(recs))
				go s.Close()
				return false
			}
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			committed, err := s.End(ectx, kgo.TryCommit)
			cancel()
			if err != nil {
				t.Logf("member %d: end: %v; starting again", i, err)
				go s.Close()
				return true
			}
			if committed {
				processed.Add(int64(len(recs)))
				if len(recs) > 0 {
					rounds[i].Add(1)
				}
			}
		}
	}
	dialers := []*killableDialer{{}, {}, {}}
	for i, d := range dialers {
		wg.Add(1)
		killAfter := 0
		if i == 0 && killMember {
			killAfter = 2
		}
		go member(i, d, killAfter)
	}

	// The input goes in once the three members share it.
	admClient := seedClient(t, seeds)
	adm := kadm.NewClient(admClient)
	for {
		gs, err := adm.DescribeGroups(ctx, "eos")
		if g, ok := gs["eos"]; err == nil && ok && g.State == "Stable" && len(g.Members) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the three members did not join: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	in := seedClient(t, seeds, kgo.DefaultProduceTopic("eos-in"))
	var rs []*kgo.Record
	for i := range perKey {
		for k := range keys {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("k%02d", k)), Value: []byte(strconv.Itoa(i))})
		}
	}
	if err := in.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Run until the group committed the input's ends.
	ends, err := adm.ListEndOffsets(ctx, "eos-in")
	if err != nil {
		t.Fatal(err)
	}
	called := midRun == nil
	for {
		if !called && processed.Load() >= int64(keys*perKey/3) {
			called = true
			midRun()
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		offs, err := adm.FetchOffsets(fctx, "eos")
		cancel()
		if err != nil {
			// franz-go keeps a group's coordinator cached when it cannot dial
			// it (a node that stopped) on this request's path, until its
			// metadata no longer lists the node: refresh it.
			admClient.ForceMetadataRefresh()
		}
		done := err == nil
		ends.Each(func(e kadm.ListedOffset) {
			o, ok := offs.Lookup("eos-in", e.Partition)
			if !ok || o.At != e.Offset {
				done = false
			}
		})
		if done {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the group did not commit the input's ends (%d records processed): %v (fetch: %v)", processed.Load(), offs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if killMember && !killed.Load() {
		t.Fatal("member 0 was never killed: it committed no transaction with records before the input was done")
	}
	t.Logf("transactions with records committed by member: %d, %d, %d; sessions started again: %d", rounds[0].Load(), rounds[1].Load(), rounds[2].Load(), restarts.Load())

	out := readCommitted(ctx, t, seeds, "eos-out", keys*perKey)
	seen := map[string][]int{}
	for _, r := range out {
		v, _, _ := strings.Cut(string(r.Value), "@")
		i, _ := strconv.Atoi(v)
		seen[string(r.Key)] = append(seen[string(r.Key)], i)
	}
	if len(out) != keys*perKey {
		t.Errorf("read-committed output holds %d records, want %d (one per input record)", len(out), keys*perKey)
	}
	for k := range keys {
		key := fmt.Sprintf("k%02d", k)
		want := make([]int, perKey)
		for i := range want {
			want[i] = i
		}
		if !slices.Equal(seen[key], want) {
			t.Errorf("key %s: output %v, want each of 0..%d once, in order", key, seen[key], perKey-1)
		}
	}
}
