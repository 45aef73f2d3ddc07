package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
)

// The Kafka-protocol side: franz-go, a Kafka client, through the nodes' Kafka
// listeners, doing what the qxd side does through the SDK, on a topic of its own
// made the same way. Produce and consume modes only.

// errNoKafka is CompareKafka without Kafka listener addresses.
var errNoKafka = errors.New("the Kafka side needs the nodes' Kafka listener addresses (Env.KafkaAddrs)")

// kafkaOpts are the franz-go options of c's producer: acks, linger, batch size and
// codec as the SDK's producer is given them.
func kafkaOpts(c Config) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.ProducerLinger(c.Linger), kgo.ProducerBatchMaxBytes(int32(min(c.BatchBytes, 1<<20))),
		kgo.MaxBufferedRecords(1 << 20), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil))}
	switch c.Acks {
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	switch c.Compression {
	case qxd.CompressionNone:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case qxd.CompressionGzip:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case qxd.CompressionSnappy:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case qxd.CompressionLZ4:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case qxd.CompressionZstd:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return nil, fmt.Errorf("compression %v has no franz-go codec", c.Compression)
	}
	return opts, nil
}

func (e *Env) kafkaClient(opts ...kgo.Opt) (*kgo.Client, error) {
	if len(e.KafkaAddrs) == 0 {
		return nil, errNoKafka
	}
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.KafkaAddrs...), kgo.ClientID("qxd-bench-kafka")}, opts...)...)
}

// kafkaProduceRun is the produce mode through the Kafka listener: c.Producers
// franz-go clients, keyed records (franz-go's partitioner is Kafka's murmur2, as
// the SDK's), timed until every record is acknowledged.
func (e *Env) kafkaProduceRun(ctx context.Context, c Config) (*Measure, error) {
	topic, parts, cleanup, err := e.topic(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	opts, err := kafkaOpts(c)
	if err != nil {
		return nil, err
	}
	cls := make([]*kgo.Client, c.Producers)
	for i := range cls {
		if cls[i], err = e.kafkaClient(append(opts, kgo.DefaultProduceTopic(topic))...); err != nil {
			return nil, err
		}
		defer cls[i].Close()
	}
	ks, val := keys(c.Keys), value(c.Size)
	// Warm up as the qxd side does: one record to every partition from every
	// producer, acknowledged before the clock starts.
	var warm []*kgo.Record
	for _, k := range warmKeys(ks, parts) {
		if k != nil {
			warm = append(warm, &kgo.Record{Key: k, Value: val})
		}
	}
	for _, cl := range cls {
		if err := cl.ProduceSync(ctx, warm...).FirstErr(); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	m := startMeter(c, "kafka", "run")
	lat := NewHistogram()
	lats := make([]*Histogram, tallyShards)
	for i := range lats {
		lats[i] = NewHistogram()
	}
	var errs errCount
	cb := func(r *kgo.Record, err error) {
		if err != nil {
			errs.add(err)
			return
		}
		shard := int(r.Partition)
		m.add(shard, 1, int64(len(r.Value)))
		lats[uint(shard)%tallyShards].Record(time.Since(r.Timestamp))
	}
	s := produceSpec{c: c}
	var deadline time.Time
	if c.Records == 0 {
		deadline = time.Now().Add(c.Duration)
	}
	start := time.Now()
	var wg sync.WaitGroup
	perr := make([]error, len(cls))
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			pace := newPacer(float64(c.Rate) / float64(c.Producers))
			for n := 0; s.sending(ctx, i, n, deadline); n++ {
				if err := pace.wait(ctx, n); err != nil {
					perr[i] = err
					return
				}
				cl.Produce(ctx, &kgo.Record{Key: ks[rng.IntN(len(ks))], Value: val, Timestamp: time.Now()}, cb)
			}
			perr[i] = cl.Flush(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	series := m.stop()
	for _, h := range lats {
		lat.Merge(h)
	}
	for _, err := range perr {
		if err != nil {
			return nil, err
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	n, b := m.t.load()
	if n == 0 {
		return nil, errNoRecords
	}
	return &Measure{System: "kafka", Records: n, Bytes: b, Elapsed: elapsed, Latency: lat,
		Series: series, Interval: c.Interval, StoredBytes: e.storedBytes(ctx, topic)}, nil
}

// kafkaConsumeRun is the consume mode through the Kafka listener: the records are
// stored first with the SDK, untimed, as for the qxd side, then read from the
// start of every partition by c.Consumers franz-go clients splitting the
// partitions.
func (e *Env) kafkaConsumeRun(ctx context.Context, c Config) (*Measure, error) {
	topic, d, stored, cleanup, err := e.filledTopic(ctx, c, "kafka")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	meas, err := e.kafkaConsume(ctx, c, topic, d)
	if err != nil {
		return nil, err
	}
	meas.StoredBytes = stored
	return meas, nil
}

// kafkaConsume reads topic (described by d) from the start of every partition
// with c.Consumers franz-go clients splitting the partitions, timed.
func (e *Env) kafkaConsume(ctx context.Context, c Config, topic string, d qxd.TopicDescription) (*Measure, error) {
	n := min(c.Consumers, len(d.Partitions))
	// The clients connect before the clock starts, as the SDK side's client is
	// connected before its clock: each pings the node (its connection made, the
	// API versions asked) and makes its fetch connection with an empty fetch,
	// but is given no partitions, so it fetches no records yet. The clock then
	// covers what the SDK side's does: giving the consumers their partitions
	// (for franz-go: the topic's metadata and ListOffsets) and reading.
	//
	// franz-go's fetch sizes are left at their defaults, Kafka's (50 MiB a
	// fetch, 1 MiB a partition), as the SDK's consumer is left at its own: a
	// franz-go client has one fetch in flight to a broker, and the node reads
	// each partition's next batches while an answer travels and is decoded, so
	// answers of a few MiB keep both sides busy where one large answer leaves
	// each waiting for the other.
	//
	// Records are decoded into slices from a pool (kgo.WithPools) and each is
	// recycled once counted, as a franz-go user reading at a high rate does:
	// without it every batch's records are a fresh, zeroed slice, most of them
	// large allocations.
	cls := make([]*kgo.Client, n)
	waits := new(fetchWaits)
	for i := range cls {
		cl, err := e.kafkaClient(kgo.WithHooks(waits), kgo.WithPools(&e.kafkaRecords))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		// The metadata answer names the node as a broker, and the ping then
		// connects to that broker, not only to the seed address.
		resp, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		if err := cl.Ping(ctx); err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		// franz-go fetches on a connection of its own to each broker: an empty
		// fetch (no partitions, no wait) makes it, as the SDK side's fetches go
		// over the connection its client already has.
		for _, b := range resp.(*kmsg.MetadataResponse).Brokers {
			f := kmsg.NewPtrFetchRequest()
			f.ReplicaID, f.MaxWaitMillis, f.SessionEpoch = -1, 0, -1
			if _, err := cl.Broker(int(b.NodeID)).Request(ctx, f); err != nil {
				return nil, fmt.Errorf("connect: fetch connection to broker %d: %w", b.NodeID, err)
			}
		}
		cls[i] = cl
	}
	m := startMeter(c, "kafka", "run")
	start := time.Now()
	wants := make([]int64, n)
	for i, cl := range cls {
		assign := map[int32]kgo.Offset{}
		for _, p := range d.Partitions {
			if int(p.Partition)%n == i {
				assign[p.Partition] = kgo.NewOffset().AtStart()
				wants[i] += p.HighWatermark - p.LogStartOffset
			}
		}
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	var total, bytes atomic.Int64
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got, b int64
			for got < wants[i] {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					errs[i] = fmt.Errorf("after %d of %d records: %w", got, wants[i], err)
					return
				}
				var rn, rb int64
				fs.EachRecord(func(r *kgo.Record) {
					rn++
					rb += int64(len(r.Value))
					r.Recycle()
				})
				got += rn
				b += rb
				m.add(i, rn, rb)
			}
			total.Add(got)
			bytes.Add(b)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	waited := time.Duration(waits.ns.Load()) / time.Duration(n)
	series := m.stop()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return &Measure{System: "kafka", Records: total.Load(), Bytes: bytes.Load(), Elapsed: elapsed,
		Series: series, Interval: c.Interval, CPU: time.Duration(m.cpu), FetchWait: waited}, nil
}

// fetchWaits adds up how long Kafka clients waited for their fetches' answers.
type fetchWaits struct{ ns atomic.Int64 }

var _ kgo.HookBrokerE2E = (*fetchWaits)(nil)

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (f *fetchWaits) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key == 1 { // Fetch
		f.ns.Add(int64(e.ReadWait + e.TimeToRead))
	}
}

// recordPool is the bench's franz-go consumers' pool of record slices
// (kgo.PoolRecords): a batch's records are decoded into a slice from it, and the
// slice goes back once every record of the batch is recycled.
type recordPool struct {
	p sync.Pool // of *[]kgo.Record
	// gets and puts count the slices handed out and returned.
	gets, puts atomic.Int64
}

var _ kgo.PoolRecords = (*recordPool)(nil)

// GetRecords implements kgo.PoolRecords: a slice of capacity n or more.
func (p *recordPool) GetRecords(n int) []kgo.Record {
	p.gets.Add(1)
	if s, ok := p.p.Get().(*[]kgo.Record); ok && cap(*s) >= n {
		return (*s)[:n]
	}
	return make([]kgo.Record, n)
}

// PutRecords implements kgo.PoolRecords.
func (p *recordPool) PutRecords(s []kgo.Record) {
	p.puts.Add(1)
	p.p.Put(&s)
}
