package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/partitioner"
)

// words make values that compress like text or JSON does (3 to 5 times with lz4 or
// zstd), so the compression codecs have something to do.
var words = []string{
	`{"id":`, `"user":`, `"order":`, `"status":"shipped"`, `"status":"pending"`,
	`"amount":`, `"currency":"EUR"`, `"items":[`, `],`, `"sku":"A-`, `"qty":`, `},`,
	`"region":"eu-west"`, `"region":"us-east"`, `"ts":`, `"note":"fast delivery"`,
}

// value returns size bytes of compressible text, the same on every call.
func value(size int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]byte, 0, size+32)
	for len(v) < size {
		v = append(v, words[rng.IntN(len(words))]...)
		v = fmt.Appendf(v, "%d,", rng.IntN(100000))
	}
	return v[:size:size]
}

// keys returns n distinct keys.
func keys(n int) [][]byte {
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = fmt.Appendf(nil, "key-%d", i)
	}
	return ks
}

// stamp writes the current time into v's first 8 bytes, for e2e latency.
func stamp(v []byte) { binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano())) }

// sinceStamp returns the time since stamp wrote v.
func sinceStamp(v []byte) time.Duration {
	if len(v) < 8 {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(v)))
}

// pacer spaces records at a fixed rate: record i is due at start + i/rate. A sender
// that fell behind catches up at once, as load generators that measure latency
// must (no coordinated omission).
type pacer struct {
	start time.Time
	every time.Duration
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{start: time.Now(), every: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) wait(ctx context.Context, i int) error {
	if p == nil {
		return nil
	}
	due := p.start.Add(time.Duration(i) * p.every)
	if d := time.Until(due); d > 200*time.Microsecond {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// share splits total into n parts, the first ones one larger.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// produceSpec says what a produce phase sends.
type produceSpec struct {
	c       Config
	stamped bool       // e2e: each value carries its send time
	lat     *Histogram // produce-to-ack latency, or nil
	m       *meter
	// warmParts > 0 makes every producer send one record to each of that many
	// partitions and wait for their acknowledgements before the clock starts, so a
	// run on a new topic or stream times the produce, not its start-up (qxd: the
	// partitions' writers, the producer's id and per-partition senders; raw: the
	// streams' first message and the publisher's reply subscription).
	warmParts int32
	// begin, when set, is called as the clock starts and gives the meter to count in.
	begin func() *meter
	// txn, when set, makes the producers transactional.
	txn *txnSpec
	// batches, when set, gets the batches acknowledged while producing (its
	// Batches, BatchRecords and BatchLatency).
	batches *Measure
	// stages, when set, times each acknowledged record's wait in the producer and
	// notes its ack for the delivery stage (e2e).
	stages *stageClock
}

// txnSpec makes a produce phase transactional: each producer commits its
// transaction once it is interval old or holds records records, whichever comes
// first (a zero setting never triggers), and at the end.
type txnSpec struct {
	interval time.Duration
	records  int
	commits  *Histogram // CommitTransaction's duration: sending what it buffered, then ending
}

// due reports whether a transaction that began at begun and holds n records is
// to be committed at now.
func (t *txnSpec) due(n int, begun, now time.Time) bool {
	return (t.records > 0 && n >= t.records) || (t.interval > 0 && now.Sub(begun) >= t.interval)
}

// txnProducer is one producer's transaction state in a transactional produce phase.
type txnProducer struct {
	p     *qxd.Producer
	spec  *txnSpec
	begun time.Time
	n     int // records in the open transaction
}

func (t *txnProducer) begin() error {
	if err := t.p.BeginTransaction(); err != nil {
		return err
	}
	t.begun, t.n = time.Now(), 0
	return nil
}

// commit commits the open transaction, timing it when it holds records.
func (t *txnProducer) commit(ctx context.Context) error {
	start := time.Now()
	if err := t.p.CommitTransaction(ctx); err != nil {
		return err
	}
	if t.n > 0 {
		t.spec.commits.Record(time.Since(start))
	}
	return nil
}

// produced counts a record sent at now and commits (and begins the next
// transaction) when the open one is due.
func (t *txnProducer) produced(ctx context.Context, now time.Time) error {
	t.n++
	if !t.spec.due(t.n, t.begun, now) {
		return nil
	}
	if err := t.commit(ctx); err != nil {
		return err
	}
	return t.begin()
}

// warmKeys returns, for each of parts partitions, a key of ks that Kafka's
// partitioner sends there (nil where none does).
func warmKeys(ks [][]byte, parts int32) [][]byte {
	out := make([][]byte, parts)
	for _, k := range ks {
		if p := partitioner.KafkaPartition(k, parts); out[p] == nil {
			out[p] = k
		}
	}
	return out
}

// sending reports whether producer i should send record n.
func (s produceSpec) sending(ctx context.Context, i, n int, deadline time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	if s.c.Records > 0 {
		return n < share(s.c.Records, s.c.Producers, i)
	}
	return n&63 != 0 || time.Now().Before(deadline)
}

// qxdProduce sends records to topic through c.Producers producers and waits until all
// are acknowledged. It returns records and value bytes acknowledged.
func (e *Env) qxdProduce(ctx context.Context, topic string, s produceSpec) (int64, int64, time.Duration, error) {
	c := s.c
	acks, _ := qxd.ParseAcks(c.Acks)
	opts := append([]qxd.ProducerOption{
		qxd.WithAcks(acks), qxd.Linger(c.Linger), qxd.BatchBytes(c.BatchBytes), qxd.WithCompression(c.Compression),
	}, c.ProducerOptions...)
	prods := make([]*qxd.Producer, c.Producers)
	txnBase := uniqueName("bench-txn-")
	for i := range prods {
		popts := opts
		if s.txn != nil {
			popts = append(popts[:len(popts):len(popts)], qxd.TransactionalID(fmt.Sprintf("%s-%d", txnBase, i)))
		}
		p, err := e.Client.NewProducer(popts...)
		if err != nil {
			return 0, 0, 0, err
		}
		defer p.Close(context.Background())
		prods[i] = p
	}
	ks, val := keys(c.Keys), value(c.Size)
	if s.warmParts > 0 {
		var warm []*qxd.Record
		for _, k := range warmKeys(ks, s.warmParts) {
			if k != nil {
				warm = append(warm, &qxd.Record{Topic: topic, Key: k, Value: val})
			}
		}
		for _, p := range prods {
			if err := warmUp(ctx, p, s.txn != nil, warm); err != nil {
				return 0, 0, 0, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	if s.begin != nil {
		s.m = s.begin()
	}
	e.batches.start()
	defer e.batches.stop()
	var errs errCount
	// Callbacks run on one goroutine per partition: count in shards by partition (in
	// the meter's tally, which the progress reports read, when there is one), and
	// merge the latency shards at the end, so the goroutines do not contend on the
	// counters (see tally).
	acked := new(tally)
	if s.m != nil {
		acked = &s.m.t
	}
	var lats []*Histogram
	if s.lat != nil {
		lats = make([]*Histogram, tallyShards)
		for i := range lats {
			lats[i] = NewHistogram()
		}
		defer func() {
			for _, h := range lats {
				s.lat.Merge(h)
			}
		}()
	}
	pool := sync.Pool{New: func() any { return new(qxd.Record) }}
	cb := func(r *qxd.Record, err error) {
		if err != nil {
			errs.add(err)
		} else {
			shard := int(r.Partition)
			acked.add(shard, 1, int64(len(r.Value)))
			if lats != nil || s.stages != nil {
				now := time.Now()
				since := now.Sub(r.Timestamp)
				if lats != nil {
					lats[uint(shard)%tallyShards].Record(since)
				}
				store, back := e.batches.lastStore(r.Partition)
				s.stages.acked(r.Partition, r.Offset, now, since, e.batches.lastLatency(r.Partition), store, back)
			}
		}
		*r = qxd.Record{Value: r.Value[:0]}
		pool.Put(r)
	}
	var deadline time.Time
	if c.Records == 0 {
		deadline = time.Now().Add(c.Duration)
	}
	start := time.Now()
	var wg sync.WaitGroup
	perr := make([]error, len(prods))
	for i, p := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			pace := newPacer(float64(c.Rate) / float64(c.Producers))
			var tx *txnProducer
			if s.txn != nil {
				tx = &txnProducer{p: p, spec: s.txn}
				if perr[i] = tx.begin(); perr[i] != nil {
					return
				}
			}
			for n := 0; s.sending(ctx, i, n, deadline); n++ {
				if err := pace.wait(ctx, n); err != nil {
					perr[i] = err
					return
				}
				r := pool.Get().(*qxd.Record)
				r.Topic, r.Key = topic, ks[rng.IntN(len(ks))]
				if s.stamped {
					r.Value = append(r.Value[:0], val...)
					stamp(r.Value)
				} else {
					r.Value = val
				}
				now := time.Now()
				r.Timestamp = now
				if err := p.Produce(ctx, r, cb); err != nil {
					perr[i] = err
					return
				}
				if tx != nil {
					if err := tx.produced(ctx, now); err != nil {
						perr[i] = err
						return
					}
				}
			}
			if tx != nil {
				perr[i] = tx.commit(ctx)
				return
			}
			perr[i] = p.Flush(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if s.batches != nil {
		s.batches.Batches, s.batches.BatchRecords, s.batches.BatchLatency = e.batches.stop()
	} else {
		e.batches.stop()
	}
	for _, err := range perr {
		if err != nil {
			return 0, 0, 0, err
		}
	}
	if err := errs.err(); err != nil {
		return 0, 0, 0, err
	}
	n, b := acked.load()
	return n, b, elapsed, nil
}

// warmUp sends records and waits for them, in a transaction it commits when txn.
func warmUp(ctx context.Context, p *qxd.Producer, txn bool, records []*qxd.Record) error {
	if !txn {
		return p.ProduceSync(ctx, records...)
	}
	if err := p.BeginTransaction(); err != nil {
		return err
	}
	if err := p.ProduceSync(ctx, records...); err != nil {
		return err
	}
	return p.CommitTransaction(ctx)
}

// topic makes c's topic, or uses the named one; cleanup deletes a fresh one.
func (e *Env) topic(ctx context.Context, c Config) (name string, parts int32, cleanup func(), err error) {
	admin := e.Client.Admin()
	if c.Topic != "" {
		if t, err := admin.Topic(ctx, c.Topic); err == nil {
			return c.Topic, t.Config.Partitions, func() {}, nil
		}
		if _, err := admin.CreateTopic(ctx, c.Topic, qxd.TopicConfig{Partitions: c.Partitions, Replicas: c.Replicas}); err != nil {
			return "", 0, nil, err
		}
		return c.Topic, c.Partitions, func() {}, nil
	}
	name = uniqueName("bench-")
	if _, err := admin.CreateTopic(ctx, name, qxd.TopicConfig{Partitions: c.Partitions, Replicas: c.Replicas}); err != nil {
		return "", 0, nil, err
	}
	return name, c.Partitions, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = admin.DeleteTopic(ctx, name)
	}, nil
}

// storedBytes is what a topic's partitions hold.
func (e *Env) storedBytes(ctx context.Context, topic string) int64 {
	d, err := e.Client.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range d.Partitions {
		n += int64(p.Bytes)
	}
	return n
}

// qxdProduceRun times a produce phase on a topic of its own: plain idempotent
// producers, or transactional ones with txn.
func (e *Env) qxdProduceRun(ctx context.Context, c Config, txn *txnSpec) (*Measure, error) {
	topic, parts, cleanup, err := e.topic(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	system := "qxd"
	if txn != nil {
		system = "qxd-txn"
	}
	var m *meter
	lat := NewHistogram()
	var bs Measure
	n, b, elapsed, err := e.qxdProduce(ctx, topic, produceSpec{c: c, lat: lat, warmParts: parts, txn: txn, batches: &bs,
		begin: func() *meter { m = startMeter(c, system, "run"); return m }})
	if m == nil {
		return nil, err
	}
	series := m.stop()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errNoRecords
	}
	ms := &Measure{System: system, Records: n, Bytes: b, Elapsed: elapsed, Latency: lat,
		Series: series, Interval: c.Interval, StoredBytes: e.storedBytes(ctx, topic),
		Batches: bs.Batches, BatchRecords: bs.BatchRecords, BatchLatency: bs.BatchLatency}
	if txn != nil {
		ms.Commits = txn.commits
	}
	return ms, nil
}

// rawStreams creates one stream per partition, as qxd lays a topic out, and returns
// their names and subjects and a cleanup that deletes them.
func (e *Env) rawStreams(ctx context.Context, c Config) ([]string, []string, func(), error) {
	name := uniqueName("RAW")
	var streams, subjects []string
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range streams {
			_ = e.JS.DeleteStream(ctx, s)
		}
	}
	for p := int32(0); p < c.Partitions; p++ {
		s, subj := fmt.Sprintf("%s_%d", name, p), fmt.Sprintf("raw.%s.%d", name, p)
		if _, err := e.JS.CreateStream(ctx, jetstream.StreamConfig{
			Name: s, Subjects: []string{subj}, Storage: jetstream.FileStorage, Replicas: c.Replicas,
		}); err != nil {
			cleanup()
			return nil, nil, nil, fmt.Errorf("create stream %s: %w", s, err)
		}
		streams, subjects = append(streams, s), append(subjects, subj)
	}
	return streams, subjects, cleanup, nil
}

// rawProduce publishes each record as one JetStream message with PublishAsync,
// keyed to its partition's stream by Kafka's partitioner, at most RawWindow
// unacknowledged per producer, and waits for every ack.
func (e *Env) rawProduce(ctx context.Context, subjects []string, s produceSpec) (int64, int64, time.Duration, error) {
	c := s.c
	ks, val := keys(c.Keys), value(c.Size)
	var errs errCount
	var acked, bytes atomic.Int64
	var timing atomic.Bool // warm-up acks are not counted
	timing.Store(s.warmParts == 0)
	bufs := sync.Pool{New: func() any { return make([]byte, 0, c.Size) }}
	// With a latency histogram, each value carries its send time (as in e2e mode),
	// read back when the acknowledgement comes: produce to acknowledgement, as the
	// qxd side times it.
	stamped := s.stamped || (s.lat != nil && c.Size >= 8)
	onAck := func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
		if !timing.Load() {
			return
		}
		acked.Add(1)
		bytes.Add(int64(len(m.Data)))
		s.m.add(0, 1, int64(len(m.Data)))
		if s.lat != nil && stamped {
			s.lat.Record(sinceStamp(m.Data))
		}
		if stamped {
			bufs.Put(m.Data[:0]) //nolint:staticcheck // a slice header per record is fine here
		}
	}
	onErr := func(_ jetstream.JetStream, _ *nats.Msg, err error) { errs.add(err) }
	none := c.Acks == "none"
	jss := make([]jetstream.JetStream, c.Producers)
	for i := range jss {
		js, err := jetstream.New(e.NC, jetstream.WithPublishAsyncMaxPending(c.RawWindow),
			jetstream.WithPublishAsyncAckHandler(onAck), jetstream.WithPublishAsyncErrHandler(onErr))
		if err != nil {
			return 0, 0, 0, err
		}
		jss[i] = js
	}
	if s.warmParts > 0 {
		for _, js := range jss {
			for p, k := range warmKeys(ks, s.warmParts) {
				if k == nil {
					continue
				}
				if _, err := js.PublishAsync(subjects[p], val); err != nil {
					return 0, 0, 0, fmt.Errorf("warm-up: %w", err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return 0, 0, 0, ctx.Err()
			}
		}
		if err := errs.err(); err != nil {
			return 0, 0, 0, fmt.Errorf("warm-up: %w", err)
		}
		timing.Store(true)
	}
	if s.begin != nil {
		s.m = s.begin()
	}
	var deadline time.Time
	if c.Records == 0 {
		deadline = time.Now().Add(c.Duration)
	}
	start := time.Now()
	var wg sync.WaitGroup
	perr := make([]error, c.Producers)
	for i, js := range jss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			pace := newPacer(float64(c.Rate) / float64(c.Producers))
			n := 0
			for ; s.sending(ctx, i, n, deadline); n++ {
				if err := pace.wait(ctx, n); err != nil {
					perr[i] = err
					return
				}
				k := ks[rng.IntN(len(ks))]
				subj := subjects[partitioner.KafkaPartition(k, int32(len(subjects)))]
				data := val
				if stamped {
					data = append(bufs.Get().([]byte), val...)
					stamp(data)
				}
				if none {
					if err := e.NC.Publish(subj, data); err != nil {
						perr[i] = err
						return
					}
					continue
				}
				// A slow replicated stream can keep the window full past nats.go's
				// stall wait: wait longer rather than fail, as a producer would.
				_, err := js.PublishAsync(subj, data, jetstream.WithStallWait(5*time.Second))
				for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil {
					_, err = js.PublishAsync(subj, data, jetstream.WithStallWait(5*time.Second))
				}
				if err != nil {
					perr[i] = err
					return
				}
			}
			if none {
				perr[i] = e.NC.FlushWithContext(ctx)
				acked.Add(int64(n))
				bytes.Add(int64(n * len(val)))
				s.m.add(i, int64(n), int64(n*len(val)))
				return
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				perr[i] = ctx.Err()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range perr {
		if err != nil {
			return 0, 0, 0, err
		}
	}
	if err := errs.err(); err != nil {
		return 0, 0, 0, err
	}
	return acked.Load(), bytes.Load(), elapsed, nil
}

// rawStoredBytes is what the streams hold.
func (e *Env) rawStoredBytes(ctx context.Context, streams []string) int64 {
	var n int64
	for _, s := range streams {
		st, err := e.JS.Stream(ctx, s)
		if err != nil {
			return 0
		}
		n += int64(st.CachedInfo().State.Bytes)
	}
	return n
}

func (e *Env) rawProduceRun(ctx context.Context, c Config) (*Measure, error) {
	streams, subjects, cleanup, err := e.rawStreams(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var m *meter
	var lat *Histogram
	if c.Size >= 8 { // room for the send time
		lat = NewHistogram()
	}
	n, b, elapsed, err := e.rawProduce(ctx, subjects, produceSpec{c: c, lat: lat, warmParts: int32(len(subjects)),
		begin: func() *meter { m = startMeter(c, "raw", "run"); return m }})
	if m == nil {
		return nil, err
	}
	series := m.stop()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errNoRecords
	}
	return &Measure{System: "raw", Records: n, Bytes: b, Elapsed: elapsed, Latency: lat,
		Series: series, Interval: c.Interval, StoredBytes: e.rawStoredBytes(ctx, streams)}, nil
}
