package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
)

// e2eDrain bounds the wait for the last records to arrive after the produce phase.
const e2eDrain = 30 * time.Second

// warmupValue marks the records sent to every partition before an e2e run, so the
// run starts once every consumer is reading: a zero send time.
var warmupValue = make([]byte, 8)

func isWarmup(v []byte) bool { return len(v) == 8 && string(v) == string(warmupValue) }

// qxdWarmup sends one warm-up record to every partition and waits until the
// consumers have seen them all.
func (e *Env) qxdWarmup(ctx context.Context, topic string, parts int32, seen *atomic.Int64) error {
	p, err := e.Client.NewProducer(qxd.RecordPartition(), qxd.Linger(0))
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	for i := range parts {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: i, Value: warmupValue}); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return waitConsumed(ctx, seen, int64(parts))
}

// waitConsumed waits until consumed reaches n.
func waitConsumed(ctx context.Context, consumed *atomic.Int64, n int64) error {
	deadline := time.Now().Add(e2eDrain)
	for consumed.Load() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d records consumed %v after the last was acknowledged", consumed.Load(), n, e2eDrain)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// qxdE2E reads the topic's new records with c.Consumers consumers while producing at
// c.Rate; each record's latency is from just before Produce to its Poll returning.
func (e *Env) qxdE2E(ctx context.Context, c Config) (*Measure, error) {
	topic, parts, cleanup, err := e.topic(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := min(c.Consumers, int(parts))
	lat, ackLat := NewHistogram(), NewHistogram()
	sc := newStageClock()
	m := startMeter(c, "qxd", "run")
	var consumed, bytes, warm atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		var as []qxd.Assignment
		for p := range parts {
			if int(p)%n == i {
				as = append(as, qxd.Assignment{Topic: topic, Partition: p, Offset: qxd.AtEnd()})
			}
		}
		cons, err := e.Client.NewConsumer()
		if err != nil {
			m.stop()
			return nil, err
		}
		if err := cons.Assign(ctx, as...); err != nil {
			cons.Close(ctx)
			m.stop()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cons.Close(context.Background())
			for {
				recs, err := cons.Poll(rctx)
				if rctx.Err() != nil {
					return
				}
				if err != nil {
					errs[i] = err
					return
				}
				var rb, n int64
				now := time.Now()
				for j := range recs {
					if isWarmup(recs[j].Value) {
						warm.Add(1)
						continue
					}
					e2e := sinceStamp(recs[j].Value)
					lat.Record(e2e)
					sc.consumed(recs[j].Partition, recs[j].Offset, now, e2e)
					rb += int64(len(recs[j].Value))
					n++
				}
				consumed.Add(n)
				bytes.Add(rb)
				m.add(i, n, rb)
			}
		}()
	}
	err = e.qxdWarmup(ctx, topic, parts, &warm)
	var bs Measure
	start := time.Now()
	rt := startRuntimeClock()
	var produced int64
	if err == nil {
		e.appends.start(topic, sc.s.Stored)
		produced, _, _, err = e.qxdProduce(ctx, topic, produceSpec{c: c, stamped: true, lat: ackLat, batches: &bs, stages: sc})
	}
	if err == nil {
		err = waitConsumed(ctx, &consumed, produced)
	}
	elapsed := time.Since(start)
	sched := rt.stop()
	e.appends.stop()
	cancel()
	wg.Wait()
	series := m.stop()
	if err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return &Measure{System: "qxd", Records: consumed.Load(), Bytes: bytes.Load(), Elapsed: elapsed,
		Latency: lat, AckLatency: ackLat, Series: series, Interval: c.Interval, StoredBytes: e.storedBytes(ctx, topic),
		Batches: bs.Batches, BatchRecords: bs.BatchRecords, BatchLatency: bs.BatchLatency, Stages: sc.stages(), Sched: sched}, nil
}

// rawE2E does the same with one ordered consumer per stream and per-record
// PublishAsync at the same rate.
func (e *Env) rawE2E(ctx context.Context, c Config) (*Measure, error) {
	streams, subjects, cleanup, err := e.rawStreams(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	lat, ackLat := NewHistogram(), NewHistogram()
	m := startMeter(c, "raw", "run")
	var consumed, bytes, warm atomic.Int64
	var ccs []jetstream.ConsumeContext
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	for i, s := range streams {
		cons, err := e.JS.OrderedConsumer(ctx, s, jetstream.OrderedConsumerConfig{})
		if err != nil {
			m.stop()
			return nil, err
		}
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			d := msg.Data()
			if isWarmup(d) {
				warm.Add(1)
				return
			}
			lat.Record(sinceStamp(d))
			consumed.Add(1)
			bytes.Add(int64(len(d)))
			m.add(i, 1, int64(len(d)))
		})
		if err != nil {
			m.stop()
			return nil, err
		}
		ccs = append(ccs, cc)
	}
	for _, subj := range subjects {
		if err == nil {
			_, err = e.JS.Publish(ctx, subj, warmupValue)
		}
	}
	if err == nil {
		err = waitConsumed(ctx, &warm, int64(len(subjects)))
	}
	start := time.Now()
	rt := startRuntimeClock()
	var produced int64
	if err == nil {
		produced, _, _, err = e.rawProduce(ctx, subjects, produceSpec{c: c, stamped: true, lat: ackLat})
	}
	if err == nil {
		err = waitConsumed(ctx, &consumed, produced)
	}
	elapsed := time.Since(start)
	sched := rt.stop()
	series := m.stop()
	if err != nil {
		return nil, err
	}
	return &Measure{System: "raw", Sched: sched, Records: consumed.Load(), Bytes: bytes.Load(), Elapsed: elapsed,
		Latency: lat, AckLatency: ackLat, Series: series, Interval: c.Interval, StoredBytes: e.rawStoredBytes(ctx, streams)}, nil
}
