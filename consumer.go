package qxd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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

// Consumer reads assigned partitions in offset order. Each partition is read by a
// JetStream consumer starting at the batch that holds the start offset, in order;
// records before the start offset in that batch are skipped. Poll, Seek, Pause and
// Resume may be called from different goroutines.
type Consumer struct {
	c      *Client
	cfg    consumerConfig
	starts startResolver

	mu     sync.Mutex
	parts  map[TopicPartition]*partSource
	paused map[TopicPartition]bool // by Pause, until Resume: kept across assignments
	closed bool
	member *member      // set by Subscribe
	regex  *regexAssign // set by SubscribeRegex without a group

	// testDeliveryHook sees every delivery under mu, for conformance tests.
	testDeliveryHook func(member string, generation int32, recs []Record)

	out      chan chunk
	stop     chan struct{}
	wakeup   chan struct{}
	leftover []chunk           // fetched, beyond what the last Poll could return; guarded by mu
	partErrs []*PartitionError // read errors for the next Poll; guarded by mu
	// highWater is, per partition, the highest high watermark a commit's range
	// check read, with the id of the topic it was read of; guarded by mu.
	highWater map[TopicPartition]seenHighWater
	// rebalanceAllowed is closed by AllowRebalance; nil while rebalances are not
	// held (BlockRebalanceOnPoll). Guarded by mu.
	rebalanceAllowed chan struct{}
}

// NewConsumer returns a consumer with nothing assigned and the given options; see
// the option functions for defaults. An option out of range fails it with
// ErrInvalidConfig, naming the option.
func (c *Client) NewConsumer(opts ...ConsumerOption) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return &Consumer{c: c, cfg: cfg, starts: startResolver{c: c, reset: cfg.reset, group: cfg.group.id, committed: cfg.isolation == ReadCommitted}, parts: map[TopicPartition]*partSource{},
		paused: map[TopicPartition]bool{},
		out:    make(chan chunk, 64), stop: make(chan struct{}), wakeup: make(chan struct{}, 1)}, nil
}

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
	c.stopRegexAssign() // Assign replaces a regex subscription
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
	pc     *partSource
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
		rs[i].pc = newPartSource(c.c, meta, a.Partition, true)
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
				rs[i].offset, rs[i].seq, errs[i] = c.starts.resolveRetrying(ctx, rs[i].pc, as[i].Offset)
			} else {
				rs[i].offset, rs[i].seq, errs[i] = c.starts.resolve(ctx, rs[i].pc, as[i].Offset)
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
	c.parts = map[TopicPartition]*partSource{}
	c.leftover = nil
	c.addLocked(rs)
}

// addLocked starts reading rs beside the current partitions; a partition paused
// with Pause stays paused.
func (c *Consumer) addLocked(rs []resolved) {
	for _, r := range rs {
		if old, ok := c.parts[r.pc.tp]; ok {
			old.halt()
		}
		c.parts[r.pc.tp] = r.pc
		if c.paused[r.pc.tp] {
			r.pc.paused, r.pc.next = true, r.offset // read from there on Resume
			continue
		}
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
	off, seq, err := c.starts.resolve(ctx, pc, o)
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
// positions are kept. A paused partition stays paused when a rebalance takes it
// away and gives it back, or Assign assigns it again; a partition not assigned
// now is paused when it is (as kgo's PauseFetchPartitions).
func (c *Consumer) Pause(tps ...TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		c.paused[tp] = true
		if pc, ok := c.parts[tp]; ok && !pc.paused {
			pc.paused = true
			pc.halt()
		}
	}
}

// Paused lists the partitions paused with Pause and not resumed, assigned or not.
func (c *Consumer) Paused() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TopicPartition, 0, len(c.paused))
	for tp := range c.paused {
		out = append(out, tp)
	}
	return out
}

// Resume resumes paused partitions from their positions.
func (c *Consumer) Resume(ctx context.Context, tps ...TopicPartition) error {
	for _, tp := range tps {
		c.mu.Lock()
		delete(c.paused, tp)
		pc, ok := c.parts[tp]
		if !ok || !pc.paused {
			c.mu.Unlock()
			continue
		}
		next := pc.next
		c.mu.Unlock()
		off, seq, err := c.starts.resolve(ctx, pc, At(next))
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
// topic, a batch that cannot be decoded) is a *PartitionError naming the partition;
// it is returned by itself, by the Poll after the one that returned the records
// gathered with it. PollFetches returns records and partition errors together.
func (c *Consumer) Poll(ctx context.Context) ([]Record, error) {
	f, err := c.PollFetches(ctx)
	for err == nil && len(f.Records) == 0 && len(f.Errors) == 0 {
		f, err = c.PollFetches(ctx) // only partitions at their end: wait for records
	}
	if err != nil {
		return nil, err
	}
	if len(f.Errors) == 0 {
		return f.Records, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(f.Records) > 0 {
		c.partErrs = append(f.Errors, c.partErrs...)
		return f.Records, nil
	}
	c.partErrs = append(f.Errors[1:], c.partErrs...)
	return nil, f.Errors[0]
}

// Fetches is what PollFetches returns: records in offset order per partition, the
// partitions whose reads failed, and the partitions that reached their end.
type Fetches struct {
	Records []Record
	Errors  []*PartitionError
	// EndOfPartition lists the partitions whose every stored record Poll has now
	// returned (librdkafka's partition EOF): the last of their records in Records
	// was the last stored when it was read, or they were assigned at their end.
	// Learnt from the read itself, without a request; a partition is listed again
	// only after Poll returned more of its records.
	EndOfPartition []TopicPartition
}

// PartitionError is a partition's read error. The partition's read has stopped: a
// deleted topic, or a batch that cannot be decoded (semantics.ErrCorruptMessage).
// Seek or assign the partition again to read it again.
type PartitionError struct {
	Topic     string
	Partition int32
	Err       error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("read %s: %v", semantics.PartitionString(e.Topic, e.Partition), e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }

// PollFetches is Poll returning the partitions' read errors beside the records
// (kgo's PollFetches): it waits until there are records, errors or partitions that
// reached their end (Fetches.EndOfPartition), and returns an error of its own only
// when ctx ends, the consumer is closed or its group membership failed for good.
func (c *Consumer) PollFetches(ctx context.Context) (Fetches, error) {
	for {
		f, err := c.pollFetches(ctx)
		if err != nil || len(f.Records) > 0 || len(f.Errors) > 0 || len(f.EndOfPartition) > 0 {
			return f, err
		}
	}
}

// pollFetches is one try of PollFetches; what it gathered may come to nothing
// (revoked meanwhile, an end already reported).
func (c *Consumer) pollFetches(ctx context.Context) (Fetches, error) {
	var out []Record
	var errs []*PartitionError
	var eofs []*partSource
	marked := false
	c.mu.Lock()
	errs, c.partErrs = c.partErrs, nil
	c.mu.Unlock()
	for {
		var ch chunk
		if len(out) == 0 && len(errs) == 0 && len(eofs) == 0 {
			if err := c.fatalErr(); err != nil {
				return Fetches{}, err
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
			if !c.receive(ctx, len(out) == 0 && len(errs) == 0 && len(eofs) == 0, &ch) {
				if len(out) > 0 || len(errs) > 0 || len(eofs) > 0 {
					return c.deliverFetches(out, errs, eofs)
				}
				if err := ctx.Err(); err != nil {
					return Fetches{}, err
				}
				if err := c.fatalErr(); err != nil {
					return Fetches{}, err
				}
				if c.isClosed() {
					return Fetches{}, ErrConsumerClosed
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
			errs = append(errs, &PartitionError{Topic: pc.tp.Topic, Partition: pc.tp.Partition, Err: ch.err})
			continue
		}
		if ch.skipTo > 0 && len(ch.recs) == 0 {
			// Records of the partition gathered already move its position first.
			if slices.ContainsFunc(out, func(r Record) bool { return r.Topic == pc.tp.Topic && r.Partition == pc.tp.Partition }) {
				c.leftover = append([]chunk{ch}, c.leftover...)
				c.mu.Unlock()
				return c.deliverFetches(out, errs, eofs)
			}
			pc.next = max(pc.next, ch.skipTo)
			if ch.eof {
				eofs = append(eofs, pc)
			}
			c.mu.Unlock()
			continue
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
			return c.deliverFetches(out, errs, eofs)
		}
		if room := c.cfg.maxPollRecords - len(out); len(recs) > room {
			ch.recs = recs[room:]
			c.leftover = append([]chunk{ch}, c.leftover...) // its end, if at the end, with it
			recs = recs[:room]
		} else if ch.eof {
			eofs = append(eofs, pc)
		}
		if len(out) == 0 {
			out = recs[:len(recs):len(recs)] // appending later must not write into a leftover
		} else {
			out = append(out, recs...)
		}
		c.mu.Unlock()
		if len(out) >= c.cfg.maxPollRecords {
			return c.deliverFetches(out, errs, eofs)
		}
	}
}

// deliverFetches is deliver for PollFetches; eofs are the partitions whose last
// chunk in out was at the end of the partition when read.
func (c *Consumer) deliverFetches(out []Record, errs []*PartitionError, eofs []*partSource) (Fetches, error) {
	recs, err := c.deliver(out)
	c.mu.Lock()
	if len(recs) > 0 {
		c.blockRebalanceLocked()
	}
	var ends []TopicPartition
	for _, pc := range eofs {
		if c.parts[pc.tp] == pc && !pc.paused && !pc.eofSent {
			pc.eofSent = true
			ends = append(ends, pc.tp)
		}
	}
	c.mu.Unlock()
	return Fetches{Records: recs, Errors: errs, EndOfPartition: ends}, err
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
		if m.cfg.autoCommit && !m.leaseLost {
			m.dropped = m.positionsLocked(nil, false)
		}
		for _, pc := range c.parts {
			pc.halt()
		}
		c.parts = map[TopicPartition]*partSource{}
		c.leftover = nil
		m.leaseLost = true // the member must rejoin to read again
		return nil, nil
	}
	kept := out[:0]
	var pc *partSource
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
		pc.eofSent = false
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
// the records earlier Polls returned, and that it polls (see MaxPollInterval).
func (c *Consumer) markConsumed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.member != nil {
		c.member.pollStartedLocked(time.Now())
	}
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

// consumerCloseTimeout bounds Close when its context has no deadline.
const consumerCloseTimeout = 10 * time.Second

// Close stops reading. In a group it commits what Poll returned (with auto-commit)
// and leaves the group at once, so the others rebalance without waiting for its
// session to time out. ctx bounds the commit and the leave (10s when ctx has no
// deadline): when it ends, or no node answers, Close stops reading anyway and the
// group gives the partitions to others after their session timeout. It is
// idempotent.
func (c *Consumer) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, consumerCloseTimeout)
		defer cancel()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	m := c.member
	c.mu.Unlock()
	c.stopRegexAssign()
	if m != nil {
		m.stop(ctx, true)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range c.parts {
		pc.halt()
	}
	close(c.stop)
	return nil
}

// PartitionLag is an assigned partition's position and how far it is behind.
type PartitionLag struct {
	Topic         string
	Partition     int32
	Position      int64 // the offset the next Poll returns
	LogStart      int64
	HighWatermark int64
	// Lag is how many offsets Poll has yet to pass to reach the end: the high
	// watermark, or for a read-committed consumer the last stable offset (the
	// records of an open transaction are not readable yet), as Kafka counts it.
	Lag   int64
	AtEnd bool // Poll has returned every record readable so far (Lag is 0)
}

// Lag reads the log start and high watermark of every assigned partition from its
// stream (one read per partition, several at once; no admin request), and for a
// read-committed consumer its last stable offset from the node leading it, and
// returns each partition's position and lag, sorted by topic and partition.
func (c *Consumer) Lag(ctx context.Context) ([]PartitionLag, error) {
	c.mu.Lock()
	pcs := make([]*partSource, 0, len(c.parts))
	for _, pc := range c.parts {
		pcs = append(pcs, pc)
	}
	c.mu.Unlock()
	out := make([]PartitionLag, len(pcs))
	errs := make([]error, len(pcs))
	sem := make(chan struct{}, resolveParallel)
	var wg sync.WaitGroup
	for i, pc := range pcs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			offs, err := pc.readOffsets(ctx, c.c)
			if err != nil {
				errs[i] = fmt.Errorf("lag of %s: %w", pc.tp, err)
				return
			}
			end, err := c.starts.end(ctx, pc, offs.HighWatermark)
			if err != nil {
				errs[i] = fmt.Errorf("lag of %s: %w", pc.tp, err)
				return
			}
			c.mu.Lock()
			pos := pc.next
			c.mu.Unlock()
			out[i] = PartitionLag{Topic: pc.tp.Topic, Partition: pc.tp.Partition, Position: pos,
				LogStart: offs.LogStart, HighWatermark: offs.HighWatermark,
				Lag: max(end-max(pos, offs.LogStart), 0), AtEnd: pos >= end}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b PartitionLag) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
	return out, nil
}
