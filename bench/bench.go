// Package bench measures qxd against raw JetStream doing the same work in the same
// run: per-record PublishAsync into one stream per partition against qxd's batching
// producer, and ordered consumers against qxd's consumer. Results are records per
// second; comparisons print qxd as a ratio of raw.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/server"
)

// Workload is one benchmark's shape.
type Workload struct {
	Records    int
	Size       int // value bytes
	Partitions int32
	// RawWindow is how many raw publishes may await acks (nats.go's default 4000).
	RawWindow int
	// ProducerOptions tune qxd's producer; nil means defaults.
	ProducerOptions []qxd.ProducerOption
}

func (w Workload) String() string {
	return fmt.Sprintf("%d records of %s, %d partitions", w.Records, sizeString(w.Size), w.Partitions)
}

func sizeString(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// Env is an embedded qxd node (its data in a temporary directory) and clients of it
// over TCP, for both the raw and the qxd side.
type Env struct {
	Node   *server.Node
	Client *qxd.Client
	NC     *nats.Conn
	JS     jetstream.JetStream
	dir    string
}

// NewEnv starts a node.
func NewEnv(ctx context.Context) (*Env, error) {
	dir, err := os.MkdirTemp("", "qxd-bench-")
	if err != nil {
		return nil, err
	}
	cfg := server.DefaultConfig()
	cfg.Name = "bench"
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	n, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c, err := qxd.Connect(ctx, n.ClientURL())
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &Env{Node: n, Client: c, NC: nc, JS: js, dir: dir}, nil
}

// Close stops everything and removes the data.
func (e *Env) Close() {
	e.NC.Close()
	e.Client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.Node.Close(ctx)
	os.RemoveAll(e.dir)
}

// Result is one measured run.
type Result struct {
	Records  int
	Bytes    int64
	Duration time.Duration
}

// PerSec is records per second.
func (r Result) PerSec() float64 { return float64(r.Records) / r.Duration.Seconds() }

// MBPerSec is value megabytes (10^6) per second.
func (r Result) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Duration.Seconds() }

// records makes n keyed records' keys and values, the same for both sides.
func records(n, size int) (keys, values [][]byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, size)
	for i := range val {
		val[i] = byte('a' + rng.IntN(26))
	}
	keys = make([][]byte, n)
	values = make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", rng.IntN(10000)))
		values[i] = val
	}
	return keys, values
}

var seq atomic.Int64

func uniqueName(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

// rawStreams creates one stream per partition, as qxd lays a topic out.
func (e *Env) rawStreams(ctx context.Context, parts int32) ([]string, []string, error) {
	name := uniqueName("RAW")
	var streams, subjects []string
	for p := int32(0); p < parts; p++ {
		s, subj := fmt.Sprintf("%s_%d", name, p), fmt.Sprintf("raw.%s.%d", name, p)
		if _, err := e.JS.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{subj}, Storage: jetstream.FileStorage}); err != nil {
			return nil, nil, err
		}
		streams, subjects = append(streams, s), append(subjects, subj)
	}
	return streams, subjects, nil
}

// RawProduce publishes each record as one JetStream message with PublishAsync, keyed
// to its partition's stream by Kafka's partitioner, at most RawWindow unacknowledged.
func (e *Env) RawProduce(ctx context.Context, w Workload) (Result, []string, error) {
	streams, subjects, err := e.rawStreams(ctx, w.Partitions)
	if err != nil {
		return Result{}, nil, err
	}
	js, err := jetstream.New(e.NC, jetstream.WithPublishAsyncMaxPending(w.RawWindow))
	if err != nil {
		return Result{}, nil, err
	}
	keys, values := records(w.Records, w.Size)
	start := time.Now()
	for i := range keys {
		p := partitioner.KafkaPartition(keys[i], w.Partitions)
		if _, err := js.PublishAsync(subjects[p], values[i]); err != nil {
			return Result{}, nil, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return Result{}, nil, ctx.Err()
	}
	return Result{Records: w.Records, Bytes: int64(w.Records * w.Size), Duration: time.Since(start)}, streams, nil
}

// QxdProduce produces the same records through qxd's producer into a new topic.
func (e *Env) QxdProduce(ctx context.Context, w Workload) (Result, string, error) {
	topic := uniqueName("bench-")
	if _, err := e.Client.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: w.Partitions}); err != nil {
		return Result{}, "", err
	}
	p, err := e.Client.NewProducer(w.ProducerOptions...)
	if err != nil {
		return Result{}, "", err
	}
	defer p.Close(ctx)
	keys, values := records(w.Records, w.Size)
	recs := make([]qxd.Record, w.Records)
	for i := range recs {
		recs[i] = qxd.Record{Topic: topic, Key: keys[i], Value: values[i]}
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	cb := func(_ *qxd.Record, err error) {
		if err != nil && failed.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	start := time.Now()
	for i := range recs {
		if err := p.Produce(ctx, &recs[i], cb); err != nil {
			return Result{}, "", err
		}
	}
	if err := p.Flush(ctx); err != nil {
		return Result{}, "", err
	}
	d := time.Since(start)
	if n := failed.Load(); n > 0 {
		return Result{}, "", fmt.Errorf("%d records failed, first: %v", n, firstErr.Load())
	}
	return Result{Records: w.Records, Bytes: int64(w.Records * w.Size), Duration: d}, topic, nil
}

// RawConsume reads every message of the streams with one ordered consumer each.
func (e *Env) RawConsume(ctx context.Context, streams []string, total int) (Result, error) {
	var got atomic.Int64
	var bytes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cons, err := e.JS.OrderedConsumer(ctx, s, jetstream.OrderedConsumerConfig{})
			if err != nil {
				errs <- err
				return
			}
			info, err := e.JS.Stream(ctx, s)
			if err != nil {
				errs <- err
				return
			}
			want := info.CachedInfo().State.Msgs
			it, err := cons.Messages()
			if err != nil {
				errs <- err
				return
			}
			defer it.Stop()
			for n := uint64(0); n < want; n++ {
				m, err := it.Next(jetstream.NextContext(ctx))
				if err != nil {
					errs <- err
					return
				}
				got.Add(1)
				bytes.Add(int64(len(m.Data())))
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	if int(got.Load()) != total {
		return Result{}, fmt.Errorf("raw consume read %d messages, want %d", got.Load(), total)
	}
	return Result{Records: total, Bytes: bytes.Load(), Duration: time.Since(start)}, nil
}

// QxdConsume reads every record of topic with one consumer assigned all partitions.
func (e *Env) QxdConsume(ctx context.Context, topic string, parts int32, total int) (Result, error) {
	cons := e.Client.NewConsumer()
	defer cons.Close()
	start := time.Now()
	var as []qxd.Assignment
	for p := int32(0); p < parts; p++ {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		return Result{}, err
	}
	var got int
	var bytes int64
	for got < total {
		recs, err := cons.Poll(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("after %d of %d records: %w", got, total, err)
		}
		got += len(recs)
		for i := range recs {
			bytes += int64(len(recs[i].Value))
		}
	}
	return Result{Records: got, Bytes: bytes, Duration: time.Since(start)}, nil
}

// Pair is one run of both sides.
type Pair struct {
	Raw, Qxd Result
}

// Ratio is qxd's records/s over raw's.
func (p Pair) Ratio() float64 { return p.Qxd.PerSec() / p.Raw.PerSec() }

// ProduceAndConsume runs the produce comparison and then, on the data it stored, the
// consume comparison.
func (e *Env) ProduceAndConsume(ctx context.Context, w Workload) (produce, consume Pair, err error) {
	raw, streams, err := e.RawProduce(ctx, w)
	if err != nil {
		return produce, consume, fmt.Errorf("raw produce: %w", err)
	}
	q, topic, err := e.QxdProduce(ctx, w)
	if err != nil {
		return produce, consume, fmt.Errorf("qxd produce: %w", err)
	}
	produce = Pair{Raw: raw, Qxd: q}
	rawC, err := e.RawConsume(ctx, streams, w.Records)
	if err != nil {
		return produce, consume, fmt.Errorf("raw consume: %w", err)
	}
	qC, err := e.QxdConsume(ctx, topic, w.Partitions, w.Records)
	if err != nil {
		return produce, consume, fmt.Errorf("qxd consume: %w", err)
	}
	consume = Pair{Raw: rawC, Qxd: qC}
	for _, s := range streams {
		_ = e.JS.DeleteStream(ctx, s)
	}
	_ = e.Client.Admin().DeleteTopic(ctx, topic)
	return produce, consume, nil
}
