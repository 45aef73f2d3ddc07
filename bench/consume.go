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

// qxdConsumeRun stores c's records in a topic (untimed), then reads the whole topic
// with c.Consumers consumers splitting the partitions (consume) or with c.Consumers
// members of a new group with auto-commit (group).
func (e *Env) qxdConsumeRun(ctx context.Context, c Config) (*Measure, error) {
	topic, d, stored, cleanup, err := e.filledTopic(ctx, c, "qxd")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var meas *Measure
	if c.Mode == ModeGroup {
		meas, err = e.qxdGroup(ctx, c, topic, d)
	} else {
		meas, err = e.qxdConsume(ctx, c, topic, d)
	}
	if err != nil {
		return nil, err
	}
	meas.StoredBytes = stored
	return meas, nil
}

// filledTopic makes c's topic and stores c's records in it with the SDK, untimed
// (system's fill phase), and returns the topic's description and the bytes it
// stores. The caller runs cleanup once done with the topic; on an error it has
// run already.
func (e *Env) filledTopic(ctx context.Context, c Config, system string) (topic string, d qxd.TopicDescription, stored int64, cleanup func(), err error) {
	topic, _, cleanup, err = e.topic(ctx, c)
	if err != nil {
		return "", d, 0, nil, err
	}
	fill := startMeter(c, system, "fill")
	_, _, _, err = e.qxdProduce(ctx, topic, produceSpec{c: c, m: fill})
	fill.stop()
	if err != nil {
		cleanup()
		return "", d, 0, nil, fmt.Errorf("store records: %w", err)
	}
	if d, err = e.Client.Admin().DescribeTopic(ctx, topic); err != nil {
		cleanup()
		return "", d, 0, nil, err
	}
	for _, p := range d.Partitions {
		stored += int64(p.Bytes)
	}
	return topic, d, stored, cleanup, nil
}

func (e *Env) qxdConsume(ctx context.Context, c Config, topic string, d qxd.TopicDescription) (*Measure, error) {
	n := min(c.Consumers, len(d.Partitions))
	m := startMeter(c, "qxd", "run")
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	var total, bytes atomic.Int64
	for i := range n {
		var as []qxd.Assignment
		var want int64
		for _, p := range d.Partitions {
			if int(p.Partition)%n == i {
				as = append(as, qxd.Assignment{Topic: topic, Partition: p.Partition, Offset: qxd.AtStart()})
				want += p.HighWatermark - p.LogStartOffset
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cons, err := e.Client.NewConsumer()
			if err != nil {
				errs[i] = err
				return
			}
			defer cons.Close(context.Background())
			if err := cons.Assign(ctx, as...); err != nil {
				errs[i] = err
				return
			}
			var got, b int64
			for got < want {
				recs, err := cons.Poll(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("after %d of %d records: %w", got, want, err)
					return
				}
				var rb int64
				for j := range recs {
					rb += int64(len(recs[j].Value))
				}
				got += int64(len(recs))
				b += rb
				m.add(i, int64(len(recs)), rb)
			}
			total.Add(got)
			bytes.Add(b)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	series := m.stop()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return &Measure{System: "qxd", Records: total.Load(), Bytes: bytes.Load(), Elapsed: elapsed,
		Series: series, Interval: c.Interval, CPU: time.Duration(m.cpu)}, nil
}

// groupProgress tracks how far a group read each partition and when every partition
// had an owner.
type groupProgress struct {
	mu       sync.Mutex
	hw, pos  []int64
	left     int
	owned    map[int]map[int32]bool // member index → partitions
	stableAt time.Time
	firstAt  time.Time
	done     chan struct{}
}

func (g *groupProgress) assigned(member int, tps []qxd.TopicPartition, parts, members int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o := map[int32]bool{}
	for _, tp := range tps {
		o[tp.Partition] = true
	}
	g.owned[member] = o
	covered, busy := 0, 0
	for _, ps := range g.owned {
		covered += len(ps)
		if len(ps) > 0 {
			busy++
		}
	}
	if covered == parts && busy == min(members, parts) && g.stableAt.IsZero() {
		g.stableAt = time.Now()
	}
}

func (g *groupProgress) revoked(member int) {
	g.mu.Lock()
	delete(g.owned, member)
	g.mu.Unlock()
}

// delivered notes records a member got; it reports whether the group is done.
func (g *groupProgress) delivered(recs []qxd.Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.firstAt.IsZero() && len(recs) > 0 {
		g.firstAt = time.Now()
	}
	for i := range recs {
		p, next := recs[i].Partition, recs[i].Offset+1
		if next > g.pos[p] {
			if g.pos[p] < g.hw[p] && next >= g.hw[p] {
				g.left--
				if g.left == 0 {
					close(g.done)
				}
			}
			g.pos[p] = next
		}
	}
}

func (e *Env) qxdGroup(ctx context.Context, c Config, topic string, d qxd.TopicDescription) (*Measure, error) {
	parts := len(d.Partitions)
	g := &groupProgress{hw: make([]int64, parts), pos: make([]int64, parts), owned: map[int]map[int32]bool{}, done: make(chan struct{})}
	for _, p := range d.Partitions {
		g.hw[p.Partition], g.pos[p.Partition] = p.HighWatermark, p.LogStartOffset
		if p.HighWatermark > p.LogStartOffset {
			g.left++
		}
	}
	if g.left == 0 {
		return nil, errNoRecords
	}
	group := uniqueName("bench-group-")
	m := startMeter(c, "qxd", "run")
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, c.Consumers)
	var total, bytes atomic.Int64
	for i := range c.Consumers {
		cons, err := e.Client.NewConsumer(qxd.Group(group),
			qxd.OnAssigned(func(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
				g.assigned(i, tps, parts, c.Consumers)
			}),
			qxd.OnRevoked(func(context.Context, *qxd.Consumer, []qxd.TopicPartition) { g.revoked(i) }),
			qxd.OnLost(func(context.Context, *qxd.Consumer, []qxd.TopicPartition) { g.revoked(i) }))
		if err != nil {
			return nil, err
		}
		if err := cons.Subscribe(ctx, topic); err != nil {
			cons.Close(ctx)
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
					cancel()
					return
				}
				var rb int64
				for j := range recs {
					rb += int64(len(recs[j].Value))
				}
				total.Add(int64(len(recs)))
				bytes.Add(rb)
				m.add(i, int64(len(recs)), rb)
				g.delivered(recs)
			}
		}()
	}
	select {
	case <-g.done:
	case <-rctx.Done():
	}
	end := time.Now()
	cancel()
	wg.Wait()
	series := m.stop()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = e.Client.Admin().DeleteGroup(dctx, group)
	dcancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	// The read is timed from the moment every partition had an owner: like the raw
	// side's, it includes creating the partitions' stream consumers, not the join.
	from := g.firstAt
	if !g.stableAt.IsZero() && g.stableAt.Before(from) {
		from = g.stableAt
	}
	meas := &Measure{System: "qxd", Records: total.Load(), Bytes: bytes.Load(), Elapsed: end.Sub(from),
		Series: series, Interval: c.Interval}
	if !g.stableAt.IsZero() {
		meas.Rebalance = g.stableAt.Sub(start)
	}
	return meas, nil
}

// rawConsumeRun stores c's records in raw streams (untimed), then reads them all
// with one ordered consumer per stream and then with one durable pull consumer per
// stream acking cumulatively every 1000 messages, as a group member commits.
func (e *Env) rawConsumeRun(ctx context.Context, c Config) (ordered, pull *Measure, err error) {
	streams, subjects, cleanup, err := e.rawStreams(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	fill := startMeter(c, "raw", "fill")
	_, _, _, err = e.rawProduce(ctx, subjects, produceSpec{c: c, m: fill})
	fill.stop()
	if err != nil {
		return nil, nil, fmt.Errorf("store records: %w", err)
	}
	stored := e.rawStoredBytes(ctx, streams)
	ordered, err = e.rawRead(ctx, c, streams, "raw", func(ctx context.Context, s string) (jetstream.Consumer, error) {
		return e.JS.OrderedConsumer(ctx, s, jetstream.OrderedConsumerConfig{})
	}, false)
	if err != nil {
		return nil, nil, fmt.Errorf("ordered consumers: %w", err)
	}
	pull, err = e.rawRead(ctx, c, streams, "raw-pull", func(ctx context.Context, s string) (jetstream.Consumer, error) {
		return e.JS.CreateConsumer(ctx, s, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 20000})
	}, true)
	if err != nil {
		return nil, nil, fmt.Errorf("pull consumers: %w", err)
	}
	ordered.StoredBytes, pull.StoredBytes = stored, stored
	return ordered, pull, nil
}

// ackEvery is how many messages a raw pull consumer reads between cumulative acks.
const ackEvery = 1000

func (e *Env) rawRead(ctx context.Context, c Config, streams []string, system string,
	open func(context.Context, string) (jetstream.Consumer, error), ack bool) (*Measure, error) {
	m := startMeter(c, system, "run")
	var total, bytes atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(streams))
	start := time.Now()
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := e.JS.Stream(ctx, s)
			if err != nil {
				errs[i] = err
				return
			}
			want := info.CachedInfo().State.Msgs
			if want == 0 {
				return
			}
			cons, err := open(ctx, s)
			if err != nil {
				errs[i] = err
				return
			}
			it, err := cons.Messages()
			if err != nil {
				errs[i] = err
				return
			}
			defer it.Stop()
			var b int64
			for n := uint64(1); n <= want; n++ {
				msg, err := it.Next(jetstream.NextContext(ctx))
				if err != nil {
					errs[i] = fmt.Errorf("stream %s after %d of %d messages: %w", s, n-1, want, err)
					return
				}
				l := int64(len(msg.Data()))
				b += l
				m.add(i, 1, l)
				if ack && (n%ackEvery == 0 || n == want) {
					if err := msg.Ack(); err != nil {
						errs[i] = err
						return
					}
				}
			}
			total.Add(int64(want))
			bytes.Add(b)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	series := m.stop()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return &Measure{System: system, Records: total.Load(), Bytes: bytes.Load(), Elapsed: elapsed,
		Series: series, Interval: c.Interval, CPU: time.Duration(m.cpu)}, nil
}
