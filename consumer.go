package qxd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// Assignment is one partition for a Consumer to read, and where to start.
type Assignment struct {
	Topic     string
	Partition int32
	Offset    Offset
}

// TopicPartition names a partition.
type TopicPartition = semantics.TopicPartition

type consumerConfig struct {
	reset          ResetPolicy
	maxPollRecords int
	fetchMaxBytes  int
	group          groupConfig
}

// defaultStart is where a partition without a committed offset starts.
func (c consumerConfig) defaultStart() Offset {
	switch c.reset {
	case ResetLatest:
		return AtEnd()
	case ResetNone:
		return Offset{kind: offsetNone}
	}
	return AtStart()
}

// ConsumerOption configures a Consumer.
type ConsumerOption func(*consumerConfig)

// WithResetPolicy sets what happens when a start offset is not stored. Default
// ResetEarliest.
func WithResetPolicy(p ResetPolicy) ConsumerOption {
	return func(c *consumerConfig) { c.reset = p }
}

// MaxPollRecords caps the records one Poll returns (Kafka's max.poll.records).
// Default 10000.
func MaxPollRecords(n int) ConsumerOption { return func(c *consumerConfig) { c.maxPollRecords = n } }

// FetchMaxBytes caps the bytes the consumer fetches ahead of Poll, shared by its
// partitions; each partition may still fetch one batch of its topic's max message
// bytes. Default 32 MiB.
func FetchMaxBytes(n int) ConsumerOption { return func(c *consumerConfig) { c.fetchMaxBytes = n } }

// Consumer reads assigned partitions in offset order. Each partition is read by a
// JetStream consumer starting at the batch that holds the start offset, in order;
// records before the start offset in that batch are skipped. Poll, Seek, Pause and
// Resume may be called from different goroutines.
type Consumer struct {
	c   *Client
	cfg consumerConfig

	mu     sync.Mutex
	parts  map[TopicPartition]*partConsumer
	closed bool
	member *member // set by Subscribe

	// testDeliveryHook sees every delivery under mu, for conformance tests.
	testDeliveryHook func(member string, generation int32, recs []Record)

	out      chan chunk
	stop     chan struct{}
	wakeup   chan struct{}
	leftover []chunk // fetched, beyond what the last Poll could return; guarded by mu
}

type partConsumer struct {
	tp        TopicPartition
	meta      semantics.TopicMeta
	reader    *partition.Reader
	gen       uint64
	next      int64 // next offset Poll returns
	delivered bool  // Poll returned records of it (its position moved)
	// consumed is the position as of the last Poll call's start: the application
	// asked for more, so it is done with what came before. Auto-commit commits it.
	consumed    int64
	hasConsumed bool
	paused      bool
	cancel      context.CancelFunc
	done        chan struct{}
}

type chunk struct {
	pc   *partConsumer
	gen  uint64
	recs []Record
	err  error
}

// NewConsumer returns a consumer with nothing assigned.
func (c *Client) NewConsumer(opts ...ConsumerOption) *Consumer {
	cfg := consumerConfig{reset: ResetEarliest, maxPollRecords: 10000, fetchMaxBytes: 32 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.group.id != "" && cfg.group.autoCommitInterval == 0 && !cfg.group.autoCommitSet {
		cfg.group.autoCommit, cfg.group.autoCommitInterval = true, DefaultAutoCommitInterval
	}
	return &Consumer{c: c, cfg: cfg, parts: map[TopicPartition]*partConsumer{},
		out: make(chan chunk, 64), stop: make(chan struct{}), wakeup: make(chan struct{}, 1)}
}

// ErrConsumerClosed is returned by a closed consumer.
var ErrConsumerClosed = errors.New("qxd: consumer is closed")

// Assign replaces the consumer's partitions with as. Each start offset is resolved
// now: an out-of-range offset with ResetNone, an unknown topic or partition fails
// Assign and changes nothing. A consumer that subscribed to a group cannot Assign.
func (c *Consumer) Assign(ctx context.Context, as ...Assignment) error {
	c.mu.Lock()
	subscribed := c.member != nil
	c.mu.Unlock()
	if subscribed {
		return semantics.Errorf(semantics.ErrInvalidRequest, "assign: the consumer subscribed to group %q; its group assigns partitions", c.cfg.group.id)
	}
	rs, err := c.resolveAll(ctx, as, true)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrConsumerClosed
	}
	c.replaceLocked(rs)
	return nil
}

type resolved struct {
	pc     *partConsumer
	offset int64
	seq    uint64
}

// resolveParallel is how many partitions' start offsets are resolved at once: each
// takes a few round trips to the partition's stream.
const resolveParallel = 16

// resolveAll checks assignments and resolves their start offsets, several partitions
// at once. The first error, in assignment order, fails it. With wait, a partition
// between leaders is asked again (resolveRetrying); a group member does not wait, as
// its session runs meanwhile: it gives the assignment back and joins again.
func (c *Consumer) resolveAll(ctx context.Context, as []Assignment, wait bool) ([]resolved, error) {
	rs := make([]resolved, len(as))
	metas := map[string]semantics.TopicMeta{} // one read per topic, not per partition
	for i, a := range as {
		meta, ok := metas[a.Topic]
		if !ok {
			if err := c.c.authorizeTopic(ctx, semantics.OpConsume, a.Topic); err != nil {
				return nil, err
			}
			var err error
			if meta, err = c.c.topic(ctx, a.Topic); err != nil {
				return nil, err
			}
			metas[a.Topic] = meta
		}
		if a.Partition < 0 || a.Partition >= meta.Config.Partitions {
			return nil, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has partitions 0 to %d: partition %d does not exist",
				a.Topic, meta.Config.Partitions-1, a.Partition)
		}
		rs[i].pc = &partConsumer{tp: TopicPartition{Topic: a.Topic, Partition: a.Partition}, meta: meta,
			reader: partition.NewReader(c.c.nc, a.Topic, a.Partition, true)}
	}
	errs := make([]error, len(as))
	sem := make(chan struct{}, resolveParallel)
	var wg sync.WaitGroup
	for i := range rs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if wait {
				rs[i].offset, rs[i].seq, errs[i] = c.resolveRetrying(ctx, rs[i].pc, as[i].Offset)
			} else {
				rs[i].offset, rs[i].seq, errs[i] = c.resolve(ctx, rs[i].pc, as[i].Offset)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// replaceLocked stops reading the current partitions and starts rs.
func (c *Consumer) replaceLocked(rs []resolved) {
	for _, pc := range c.parts {
		pc.halt()
	}
	c.parts = map[TopicPartition]*partConsumer{}
	c.leftover = nil
	for _, r := range rs {
		c.parts[r.pc.tp] = r.pc
		c.startLocked(r.pc, r.offset, r.seq)
	}
}

// Assigned lists the consumer's partitions.
func (c *Consumer) Assigned() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TopicPartition, 0, len(c.parts))
	for tp := range c.parts {
		out = append(out, tp)
	}
	return out
}

// Position returns the offset the next Poll returns for a partition, and whether it
// is assigned.
func (c *Consumer) Position(topic string, p int32) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.parts[TopicPartition{Topic: topic, Partition: p}]
	if !ok {
		return 0, false
	}
	return pc.next, true
}

// Seek moves an assigned partition to o; the next Poll returns records from there.
func (c *Consumer) Seek(ctx context.Context, topic string, p int32, o Offset) error {
	c.mu.Lock()
	pc, ok := c.parts[TopicPartition{Topic: topic, Partition: p}]
	c.mu.Unlock()
	if !ok {
		return semantics.Errorf(semantics.ErrInvalidRequest, "seek %s: the partition is not assigned to this consumer", semantics.PartitionString(topic, p))
	}
	off, seq, err := c.resolve(ctx, pc, o)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts[pc.tp] != pc {
		return semantics.Errorf(semantics.ErrInvalidRequest, "seek %s: the partition was unassigned", pc.tp)
	}
	pc.halt()
	if pc.paused {
		pc.next = off
		return nil
	}
	c.startLocked(pc, off, seq)
	return nil
}

// Pause stops returning records of the given partitions until Resume; their
// positions are kept.
func (c *Consumer) Pause(tps ...TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if pc, ok := c.parts[tp]; ok && !pc.paused {
			pc.paused = true
			pc.halt()
		}
	}
}

// Resume resumes paused partitions from their positions.
func (c *Consumer) Resume(ctx context.Context, tps ...TopicPartition) error {
	for _, tp := range tps {
		c.mu.Lock()
		pc, ok := c.parts[tp]
		if !ok || !pc.paused {
			c.mu.Unlock()
			continue
		}
		next := pc.next
		c.mu.Unlock()
		off, seq, err := c.resolve(ctx, pc, At(next))
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.parts[tp] == pc && pc.paused {
			pc.paused = false
			c.startLocked(pc, off, seq)
		}
		c.mu.Unlock()
	}
	return nil
}

// Poll waits for records of the assigned partitions, returning up to MaxPollRecords
// in offset order per partition, or ctx's error. A partition's read error (deleted
// topic, offset out of range) is returned with the records gathered before it.
func (c *Consumer) Poll(ctx context.Context) ([]Record, error) {
	var out []Record
	marked := false
	for {
		var ch chunk
		if len(out) == 0 {
			if err := c.fatalErr(); err != nil {
				return nil, err
			}
		}
		if !marked {
			c.markConsumed()
			marked = true
		}
		c.mu.Lock()
		if len(c.leftover) > 0 {
			ch = c.leftover[0]
			c.leftover = c.leftover[1:]
			c.mu.Unlock()
		} else {
			c.mu.Unlock()
			if !c.receive(ctx, len(out) == 0, &ch) {
				if len(out) > 0 {
					return c.deliver(out)
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if err := c.fatalErr(); err != nil {
					return nil, err
				}
				if c.isClosed() {
					return nil, ErrConsumerClosed
				}
				continue
			}
		}
		c.mu.Lock()
		pc := ch.pc
		if c.parts[pc.tp] != pc || pc.gen != ch.gen || pc.paused {
			c.mu.Unlock()
			continue
		}
		if ch.err != nil {
			c.mu.Unlock()
			if len(out) > 0 {
				return c.deliver(out)
			}
			return nil, ch.err
		}
		// A chunk's offsets increase: skip those already returned, keep what does not
		// fit for the next Poll, and hand out the first chunk without copying it.
		// Small chunks are gathered into one result, as long as it stays within
		// pollGather records; a chunk that would take it past that is not copied
		// behind the others: it waits for the next Poll, which costs less than
		// copying records (a batch of 1 KiB records holds about 250).
		recs := ch.recs
		i := 0
		for i < len(recs) && recs[i].Offset < pc.next {
			i++
		}
		recs = recs[i:]
		if len(out) > 0 && len(recs) > 0 && len(out)+len(recs) > pollGather {
			ch.recs = recs
			c.leftover = append([]chunk{ch}, c.leftover...)
			c.mu.Unlock()
			return c.deliver(out)
		}
		if room := c.cfg.maxPollRecords - len(out); len(recs) > room {
			ch.recs = recs[room:]
			c.leftover = append([]chunk{ch}, c.leftover...)
			recs = recs[:room]
		}
		if len(out) == 0 {
			out = recs[:len(recs):len(recs)] // appending later must not write into a leftover
		} else {
			out = append(out, recs...)
		}
		c.mu.Unlock()
		if len(out) >= c.cfg.maxPollRecords {
			return c.deliver(out)
		}
	}
}

// pollGather is the most records one Poll result gathers from several chunks.
const pollGather = 256

// deliver hands out records: it moves each partition's position past them, unless
// the records' partition was revoked meanwhile or, in a group, the member's lease
// ended (it may no longer be the only member reading them). It is the last step of
// Poll, under the lock revocation takes.
func (c *Consumer) deliver(out []Record) ([]Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.member; m != nil && !time.Now().Before(m.leaseEnd) {
		for _, pc := range c.parts {
			pc.halt()
		}
		c.parts = map[TopicPartition]*partConsumer{}
		c.leftover = nil
		m.leaseLost = true // the member must rejoin to read again
		return nil, nil
	}
	kept := out[:0]
	var pc *partConsumer
	var tp TopicPartition
	for i := range out {
		r := &out[i]
		if pc == nil || r.Partition != tp.Partition || r.Topic != tp.Topic {
			tp = TopicPartition{Topic: r.Topic, Partition: r.Partition}
			pc = c.parts[tp] // records come in runs of one partition: look up once per run
		}
		if pc == nil || pc.paused || r.Offset < pc.next {
			continue
		}
		pc.next = r.Offset + 1
		pc.delivered = true
		if len(kept) == i {
			kept = kept[:i+1] // in place already
		} else {
			kept = append(kept, *r)
		}
	}
	if c.testDeliveryHook != nil && len(kept) > 0 {
		var gen int32
		var id string
		if c.member != nil {
			gen, id = c.member.generation, c.member.memberID
		}
		c.testDeliveryHook(id, gen, kept)
	}
	return kept, nil
}

// markConsumed records, at the start of a Poll, that the application is done with
// the records earlier Polls returned.
func (c *Consumer) markConsumed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range c.parts {
		if pc.delivered {
			pc.consumed, pc.hasConsumed = pc.next, true
		}
	}
}

func (c *Consumer) fatalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.member != nil {
		return c.member.fatal
	}
	return nil
}

func (c *Consumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// wake makes a blocked Poll look at the consumer's state again.
func (c *Consumer) wake() {
	select {
	case c.wakeup <- struct{}{}:
	default:
	}
}

// receive takes the next fetched chunk, waiting for one if wait is set. It returns
// false when none is there (without wait), ctx ended or the consumer closed.
func (c *Consumer) receive(ctx context.Context, wait bool, ch *chunk) bool {
	if !wait {
		select {
		case *ch = <-c.out:
			return true
		default:
			return false
		}
	}
	select {
	case *ch = <-c.out:
		return true
	case <-ctx.Done():
		return false
	case <-c.stop:
		return false
	case <-c.wakeup:
		return false
	}
}

// Close stops reading. In a group it commits what Poll returned (with auto-commit)
// and leaves the group at once, so the others rebalance without waiting for its
// session to time out. It is idempotent.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	m := c.member
	c.mu.Unlock()
	if m != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.stop(ctx, true)
		cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range c.parts {
		pc.halt()
	}
	close(c.stop)
	return nil
}

// resolve turns o into an offset and the stream sequence of the batch holding it.
// resolveRetrying is resolve, asked again while the partition is between leaders (a
// read timed out, or nothing answered): right after a node is lost, its partitions
// answer again once new leaders are elected. It gives up when ctx ends, or after the
// client's request timeout (WithRequestTimeout) if ctx has no deadline.
func (c *Consumer) resolveRetrying(ctx context.Context, pc *partConsumer, o Offset) (int64, uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.c.cfg.reqTimeout)
		defer cancel()
	}
	for {
		off, seq, err := c.resolve(ctx, pc, o)
		if err == nil || ctx.Err() != nil || !semantics.IsRetriable(err) {
			return off, seq, err
		}
		select {
		case <-ctx.Done():
			return off, seq, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Consumer) resolve(ctx context.Context, pc *partConsumer, o Offset) (int64, uint64, error) {
	offs, err := pc.reader.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
		return c.c.checkpointNext(ctx, pc.meta, pc.tp.Partition)
	})
	if err != nil {
		return 0, 0, err
	}
	var want int64
	switch o.kind {
	case offsetNone:
		return 0, 0, semantics.Errorf(semantics.ErrOffsetOutOfRange,
			"partition %s: group %q has no committed offset and the reset policy is none: seek the group, or use reset earliest or latest",
			pc.tp, c.cfg.group.id)
	case offsetStart:
		want = offs.LogStart
	case offsetEnd:
		want = offs.HighWatermark
	case offsetAt:
		want = o.at
		if want < offs.LogStart || want > offs.HighWatermark {
			switch c.cfg.reset {
			case ResetEarliest:
				want = offs.LogStart
			case ResetLatest:
				want = offs.HighWatermark
			default:
				if offs.LogStart == offs.HighWatermark {
					return 0, 0, semantics.Errorf(semantics.ErrOffsetOutOfRange,
						"partition %s: offset %d is out of range: the partition holds no records (high watermark %d); use start, end or %d",
						pc.tp, want, offs.HighWatermark, offs.HighWatermark)
				}
				return 0, 0, semantics.Errorf(semantics.ErrOffsetOutOfRange,
					"partition %s: offset %d is out of range: stored offsets are %d to %d (high watermark %d); use start, end or an offset in range",
					pc.tp, want, offs.LogStart, offs.HighWatermark-1, offs.HighWatermark)
			}
		}
	case offsetTime:
		seq, found, err := semantics.FindTimestamp(ctx, pc.reader, offs.FirstSeq, offs.LastSeq, o.at)
		if err != nil {
			return 0, 0, err
		}
		if !found {
			return offs.HighWatermark, offs.LastSeq + 1, nil
		}
		m, err := pc.reader.Get(ctx, seq)
		if err != nil {
			return 0, 0, err
		}
		recs, err := semantics.DecodeRecords(nil, m.Data, pc.tp.Topic, pc.tp.Partition)
		if err != nil {
			return 0, 0, err
		}
		want = recs[len(recs)-1].Offset
		for _, r := range recs {
			if r.Timestamp.UnixMilli() >= o.at {
				want = r.Offset
				break
			}
		}
		return want, m.Seq, nil
	}
	seq, err := findOffset(ctx, pc.reader, offs, want)
	return want, seq, err
}

// findOffset returns the sequence to start reading offset from: past the end at or
// beyond the high watermark, the first or last batch without a search when the
// offset is in one of them (reading from the start or the end), else the batch
// found by binary search.
func findOffset(ctx context.Context, r *partition.Reader, offs partition.Offsets, offset int64) (uint64, error) {
	switch {
	case offs.Msgs == 0 || offset >= offs.HighWatermark:
		return offs.LastSeq + 1, nil
	case offset <= offs.LogStart && offs.FirstBatchSeq > 0:
		return offs.FirstBatchSeq, nil
	case offset >= offs.LastBatchBase && offs.LastBatchSeq > 0:
		return offs.LastBatchSeq, nil
	}
	seq, found, err := semantics.FindOffset(ctx, r, offs.FirstSeq, offs.LastSeq, offset)
	if err != nil {
		return 0, err
	}
	if !found {
		seq = offs.FirstSeq
	}
	return seq, nil
}

// startLocked starts reading pc from offset off, at stream sequence seq.
func (c *Consumer) startLocked(pc *partConsumer, off int64, seq uint64) {
	pc.gen++
	pc.next = off
	ctx, cancel := context.WithCancel(context.Background())
	pc.cancel = cancel
	pc.done = make(chan struct{})
	go c.fetch(ctx, pc, pc.gen, off, seq, pc.done)
}

// halt stops pc's fetcher. Called with the consumer's mu held.
func (pc *partConsumer) halt() {
	pc.gen++
	if pc.cancel != nil {
		pc.cancel()
		pc.cancel = nil
	}
}

// fetch reads pc's stream from seq and hands decoded records to Poll. When the read
// breaks (a leader moved, a node died, the connection failed over), it starts again
// after the last record it handed over, with backoff; only a partition that no longer
// exists, or a batch that cannot be decoded, ends it with an error for Poll.
func (c *Consumer) fetch(ctx context.Context, pc *partConsumer, gen uint64, from int64, seq uint64, done chan struct{}) {
	defer close(done)
	backoff := 50 * time.Millisecond
	for {
		next, fatal, err := c.fetchOnce(ctx, pc, gen, from, seq)
		if ctx.Err() != nil {
			return
		}
		if fatal {
			select {
			case c.out <- chunk{pc: pc, gen: gen, err: fmt.Errorf("read %s: %w", pc.tp, err)}:
			case <-ctx.Done():
			}
			return
		}
		if next > from {
			from, backoff = next, 50*time.Millisecond
		}
		c.c.log.Debug("partition read restarting", "topic", pc.tp.Topic, "partition", pc.tp.Partition, "offset", from, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		s, found, lerr := c.locate(ctx, pc, from)
		switch {
		case errors.Is(lerr, semantics.ErrUnknownTopic):
			select {
			case c.out <- chunk{pc: pc, gen: gen, err: fmt.Errorf("read %s: %w", pc.tp, lerr)}:
			case <-ctx.Done():
			}
			return
		case lerr == nil && found:
			seq = s
		}
	}
}

// fetchQuiet is how long a partition read may go without records before it checks
// whether the partition has more than it delivered.
const fetchQuiet = 3 * time.Second

// locate finds the stream sequence to read offset from.
func (c *Consumer) locate(ctx context.Context, pc *partConsumer, offset int64) (uint64, bool, error) {
	offs, err := pc.reader.ReadOffsets(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	seq, err := findOffset(ctx, pc.reader, offs, offset)
	return seq, err == nil, err
}

// readInactiveThreshold is how long the server keeps a partition read's consumer
// once nobody pulls from it, should dropConsumer not reach the server.
const readInactiveThreshold = 30 * time.Second

// dropConsumer deletes a finished read's consumer on the server, in the background:
// a read that restarts leaves the old one behind otherwise, until it goes inactive.
func dropConsumer(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(ctx, stream, info.Name)
	}()
}

// fetchOnce reads with one pull consumer until it fails; it returns the offset after
// the last record handed to Poll, and whether the failure is final.
//
// It is an ordered read without nats.go's ordered consumer: an ephemeral consumer
// without acks, starting at seq, whose deliveries must come with consecutive consumer
// sequences (a gap, e.g. a message dropped on the way, ends the read, and fetch
// starts again after the last record handed over). nats.go's ordered consumer
// recreates a broken consumer for ever, with a backoff growing to 10 s and outside
// ctx, so a read that broke while its stream refused new consumers (between leaders)
// stayed silent for tens of seconds after the stream was back; fetch retries instead,
// with its own backoff and ctx. And its iterator (Messages) sizes a channel for the
// most messages a pull may bring, a million when pulling by bytes: 8 MB zeroed and
// scanned by the collector per partition read. Consume hands each message to a
// callback instead, in order, from one goroutine.
func (c *Consumer) fetchOnce(ctx context.Context, pc *partConsumer, gen uint64, from int64, seq uint64) (int64, bool, error) {
	cons, err := c.c.js.CreateConsumer(ctx, pc.reader.Stream, jetstream.ConsumerConfig{
		Name:          "qxd_read_" + rand.Text(),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(seq, 1),
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: readInactiveThreshold,
		Replicas: 1, MemoryStorage: true,
	})
	if err != nil {
		return from, errors.Is(err, jetstream.ErrStreamNotFound), err
	}
	defer dropConsumer(c.c.js, pc.reader.Stream, cons)
	c.mu.Lock()
	share := c.cfg.fetchMaxBytes / max(1, len(c.parts))
	c.mu.Unlock()
	share = max(share, int(pc.meta.Config.MaxMessageBytes)+64<<10)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &partRead{c: c, pc: pc, gen: gen, ctx: rctx, next: from, lastStream: max(seq, 1) - 1, failed: make(chan readFailure, 1)}
	r.last.Store(time.Now().UnixNano())
	// Pulling by bytes bounds what is fetched ahead whatever the batches' sizes.
	// Bounding the count instead (PullMaxMessagesWithBytesLimit) measurably raised
	// the end-to-end p99 at 5000 records/s with linger 0 (see docs/performance.md).
	cc, err := cons.Consume(r.handle, jetstream.PullMaxBytes(share), jetstream.PullHeartbeat(readHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { r.fail(err, false) }))
	if err != nil {
		return from, errors.Is(err, jetstream.ErrStreamNotFound), err
	}
	failure := r.watch(ctx)
	cancel()
	cc.Stop()
	return r.stop(), failure.fatal, failure.err
}

// readHeartbeat is how often the server says a read's consumer is alive while it has
// nothing to deliver; two missed end the read (as nats.go's ordered consumers do).
const readHeartbeat = 5 * time.Second

// partRead is one fetchOnce's state, shared by its callback and its watch.
type partRead struct {
	c   *Consumer
	pc  *partConsumer
	gen uint64
	ctx context.Context // ends the read

	mu      sync.Mutex // held while a message is handed over
	next    int64      // the offset after the last record handed to Poll
	lastSeq uint64     // the consumer sequence of the last message
	// lastStream is the stream sequence of the last message (before the first:
	// the one before the read's start).
	lastStream uint64
	stopped    bool

	busy   atomic.Bool  // a message is being handled (maybe waiting for Poll)
	last   atomic.Int64 // when the last message was handled, Unix ns
	failed chan readFailure
}

type readFailure struct {
	err   error
	fatal bool
}

// fail ends the read with err, unless it ended already.
func (r *partRead) fail(err error, fatal bool) {
	select {
	case r.failed <- readFailure{err: err, fatal: fatal}:
	default:
	}
}

// leader names the node that leads pc's stream, for errors about what it stored.
func (pc *partConsumer) leader(ctx context.Context) string {
	st, err := pc.reader.StreamInfo(ctx)
	if err != nil || st.Leader == "" {
		return "(unknown: " + fmt.Sprint(err) + ")"
	}
	return st.Leader
}

// gapError explains offsets from to to-1 missing before the batch at stream
// sequence seq: nil when the head of the log was removed past them (retention, a
// trim), else an ErrCorruptMessage naming the range and the node: the batches are
// gone from the middle of the log, as when a stored block file is damaged.
func (pc *partConsumer) gapError(ctx context.Context, from, to int64, seq uint64) error {
	st, err := pc.reader.StreamInfo(ctx)
	if err != nil {
		return fmt.Errorf("offsets %d to %d were skipped and the stream's state could not be read to tell why: %w", from, to-1, err)
	}
	if st.FirstSeq >= seq || st.LogStart >= to {
		return nil
	}
	return semantics.Errorf(semantics.ErrCorruptMessage,
		"offsets %d to %d are missing from the log stored on node %s (the batch at stream sequence %d starts at offset %d, and older batches are still stored): its stored data is damaged; read from a healthy replica or restore the partition",
		from, to-1, st.Leader, seq, to)
}

// handle decodes one message and hands its records to Poll. Consume calls it for
// one message after the other, in order.
func (r *partRead) handle(msg jetstream.Msg) {
	r.busy.Store(true)
	defer func() {
		r.last.Store(time.Now().UnixNano())
		r.busy.Store(false)
	}()
	meta, err := msg.Metadata()
	if err != nil {
		r.fail(fmt.Errorf("read message metadata: %w", err), false)
		return
	}
	recs, derr := semantics.DecodeRecords(nil, msg.Data(), r.pc.tp.Topic, r.pc.tp.Partition)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if meta.Sequence.Consumer != r.lastSeq+1 {
		r.stopped = true
		r.fail(fmt.Errorf("message %d of the read came after %d", meta.Sequence.Consumer, r.lastSeq), false)
		return
	}
	r.lastSeq, r.lastStream = meta.Sequence.Consumer, meta.Sequence.Stream
	if derr != nil {
		r.stopped = true
		r.fail(fmt.Errorf("batch at stream sequence %d, after offset %d, on node %s: %w",
			meta.Sequence.Stream, r.next-1, r.pc.leader(r.ctx), derr), true)
		return
	}
	if len(recs) > 0 && recs[0].Offset > r.next && !r.pc.meta.Config.Compact {
		// Offsets are dense; only removing the head (retention, a trim) skips some.
		if gerr := r.pc.gapError(r.ctx, r.next, recs[0].Offset, meta.Sequence.Stream); gerr != nil {
			r.stopped = true
			r.fail(gerr, true)
			return
		}
	}
	i := 0
	for i < len(recs) && recs[i].Offset < r.next {
		i++
	}
	if i == len(recs) {
		return
	}
	select {
	case r.c.out <- chunk{pc: r.pc, gen: r.gen, recs: recs[i:]}:
		r.next = recs[len(recs)-1].Offset + 1
	case <-r.ctx.Done():
		r.stopped = true
	}
}

// watch waits until the read fails or ctx ends. It is also a watchdog: after a quiet
// spell, a partition with records beyond what this read handed over is stalled (it
// has been seen after failovers), so the read ends.
func (r *partRead) watch(ctx context.Context) readFailure {
	t := time.NewTimer(fetchQuiet)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return readFailure{err: ctx.Err()}
		case f := <-r.failed:
			return f
		case <-t.C:
		}
		if r.busy.Load() { // waiting for Poll, or decoding
			t.Reset(fetchQuiet)
			continue
		}
		if quiet := time.Since(time.Unix(0, r.last.Load())); quiet < fetchQuiet {
			t.Reset(fetchQuiet - quiet)
			continue
		}
		r.mu.Lock()
		next := r.next
		r.mu.Unlock()
		offs, err := r.pc.reader.ReadOffsets(ctx, nil)
		// A partition stream holds batches only, under one subject (compacted
		// topics aside): messages the stream counts past the last one it can
		// return, or a next one it cannot find, were lost from its store.
		check := err == nil && !r.pc.meta.Config.Compact
		if check && offs.Msgs > 0 && (offs.HighWatermark > next || offs.LastSeq > offs.LastBatchSeq) {
			if derr := r.missingError(ctx, next, offs.StreamState); derr != nil {
				return readFailure{err: derr, fatal: true}
			}
		}
		if err == nil && offs.HighWatermark <= next {
			t.Reset(fetchQuiet) // nothing new: keep waiting
			continue
		}
		return readFailure{err: fmt.Errorf("no records for %v while the partition has more", fetchQuiet)}
	}
}

// missingError checks, for a read that got nothing for a while, whether the
// batch after the last one it got can be read at all: an ErrCorruptMessage naming
// the offsets, the stream sequences and the node when it cannot (the store lost
// them, as when a block file is cut short), else nil.
func (r *partRead) missingError(ctx context.Context, next int64, st partition.StreamState) error {
	r.mu.Lock()
	after := r.lastStream
	r.mu.Unlock()
	after = max(after, st.FirstSeq-1) // retention or a trim removed the head
	if after >= st.LastSeq {
		return nil
	}
	m, err := r.pc.reader.Get(ctx, after+1)
	switch {
	case errors.Is(err, semantics.ErrNoBatch):
	case err == nil && m.Seq > after+1:
	default:
		return nil
	}
	// The head may have moved on since st was read.
	if now, err := r.pc.reader.StreamInfo(ctx); err != nil || now.FirstSeq > after+1 {
		return nil
	}
	return semantics.Errorf(semantics.ErrCorruptMessage,
		"the records from offset %d on, stored at stream sequences %d to %d, cannot be read from node %s: its stored data is damaged; read from a healthy replica or restore the partition",
		next, after+1, st.LastSeq, r.pc.leader(ctx))
}

// stop ends the read's hand-overs and returns the offset after the last record
// handed to Poll. The read's ctx must have ended, so a hand-over in progress gives up.
func (r *partRead) stop() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	return r.next
}
