package qxd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/semantics"
)

// Producer sends records to topics. Records are collected per partition into Kafka
// record batches (see Linger and BatchBytes), sent to the partition's writer with up
// to MaxInFlight batches awaiting answers, and retried on transient errors; with
// idempotence (the default) a retried batch is stored once. Records with the same key
// keep their order. A Producer is safe for concurrent use.
type Producer struct {
	c   *Client
	cfg producerConfig

	inbox string
	sub   *nats.Subscription
	// elected receives JetStream's leader-elected advisories of every stream (see
	// partProducer.leaderElected); nil when the subscription failed.
	elected *nats.Subscription
	// lookupDenied: the identity may not look up a partition's leader (see
	// lookUpLeader).
	lookupDenied atomic.Bool

	mu     sync.Mutex                                // serialises changes to topics and loads
	loads  map[string]*topicLoad                     // topics whose metadata is being read
	topics atomic.Pointer[map[string]*topicProducer] // copied on change: read without a lock
	closed atomic.Bool

	reqMu  sync.Mutex
	reqs   map[uint64]*batch
	nextID uint64

	// Records not yet finished and their bytes, kept with atomics so that Produce and
	// the partitions' senders do not meet on a lock for every record; bufMu and
	// bufCond are only for waiting (Produce on a full buffer, Flush), and waiters
	// counts those waiting, so that releases wake them only then.
	buffered atomic.Int64
	records  atomic.Int64
	waiters  atomic.Int32
	bufMu    sync.Mutex
	bufCond  *sync.Cond

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	txn *producerTxn // with TransactionalID (producer_txn.go)
}

// NewProducer returns a producer with the given options; see the option functions
// for defaults.
func (c *Client) NewProducer(opts ...ProducerOption) (*Producer, error) {
	cfg := defaultProducerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.acks == AcksNone {
		cfg.idempotent = false
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	p := &Producer{c: c, cfg: cfg, reqs: map[uint64]*batch{}, loads: map[string]*topicLoad{}}
	p.topics.Store(&map[string]*topicProducer{})
	p.bufCond = sync.NewCond(&p.bufMu)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.txnID != "" {
		if err := p.initTxn(); err != nil {
			p.cancel()
			return nil, err
		}
	}
	p.inbox = c.nc.NewRespInbox() + "."
	sub, err := c.nc.Subscribe(p.inbox+"*", p.onReply)
	if err != nil {
		return nil, fmt.Errorf("producer: subscribe for replies: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	p.sub = sub
	if cfg.acks != AcksNone {
		// Without it (an identity not allowed to subscribe to JetStream's
		// advisories), a batch a dead leader left unanswered waits out its request
		// timeout.
		p.elected, _ = c.nc.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, "*"), p.onLeaderElected)
	}
	up := c.nc.StatusChanged(nats.CONNECTED)
	p.wg.Add(1)
	go p.resendOnReconnect(up)
	return p, nil
}

// metadataMaxAge is how often a producer rereads a topic's record, to see added
// partitions and a topic deleted or created again (Kafka's metadata.max.age.ms is 5
// minutes; reading a KV entry is cheap). The reread runs in the background: Produce
// goes on with the record it has meanwhile, as Kafka's producer does.
const metadataMaxAge = 10 * time.Second

// metadataRefreshRetry is how long after a failed reread the next one may start.
const metadataRefreshRetry = time.Second

type topicProducer struct {
	fetched    atomic.Int64 // UnixNano of the last read of the topic's record
	refreshing atomic.Bool  // a reread of the record is under way (see refresh)
	mu         sync.Mutex   // guards meta, part, parts
	meta       semantics.TopicMeta
	part       partitioner.Partitioner
	parts      []*partProducer
}

// topic returns name's producer state; now is the current time. A record older
// than metadataMaxAge is read again in the background (see refresh), and the one
// the producer has is returned meanwhile. A topic the
// producer has not used yet is loaded in the background (see topicLoad): topic waits
// for it until ctx ends or the request timeout passes, and then returns a
// *slowLoad, with which Produce parks the record until the load ends.
func (p *Producer) topic(ctx context.Context, name string, now time.Time) (*topicProducer, error) {
	if p.closed.Load() {
		return nil, p.closedErr()
	}
	if tp := (*p.topics.Load())[name]; tp != nil {
		if now.UnixNano()-tp.fetched.Load() > int64(metadataMaxAge) && tp.refreshing.CompareAndSwap(false, true) {
			p.startRefresh(tp)
		}
		return tp, nil
	}
	l, err := p.startLoad(name)
	if err != nil {
		return nil, err
	}
	if l.slow.Load() && !l.answered.Load() {
		select {
		case <-l.done:
		default:
			return nil, &slowLoad{l: l} // an earlier record waited its request timeout already
		}
	}
	wait := time.NewTimer(p.cfg.requestTimeout)
	defer wait.Stop()
	for {
		select {
		case <-l.done:
			if l.err != nil {
				return nil, l.err
			}
			return l.tp, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("produce to topic %q: waiting for its metadata: %w", name, ctx.Err())
		case <-wait.C:
			if !l.answered.Load() {
				l.slow.Store(true)
				return nil, &slowLoad{l: l}
			}
			// A node says the topic is being created: wait for it, as Kafka's
			// producer waits for a new topic's metadata (topicCreatingWait).
		}
	}
}

// newTopicProducer makes the producer state of a topic whose record was read.
func (p *Producer) newTopicProducer(meta semantics.TopicMeta) *topicProducer {
	tp := &topicProducer{meta: meta, part: p.cfg.newPartitioner()}
	tp.fetched.Store(time.Now().UnixNano())
	for i := int32(0); i < meta.Config.Partitions; i++ {
		tp.parts = append(tp.parts, p.newPart(meta, i))
	}
	return tp
}

// publishTopic makes tp the producer state of its topic for Produce.
func (p *Producer) publishTopic(tp *topicProducer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.topics.Load()
	topics := make(map[string]*topicProducer, len(old)+1)
	for k, v := range old {
		topics[k] = v
	}
	topics[tp.meta.Name] = tp
	p.topics.Store(&topics)
}

// startRefresh starts refresh of tp, whose refreshing flag the caller set.
func (p *Producer) startRefresh(tp *topicProducer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		tp.refreshing.Store(false)
		return
	}
	p.wg.Add(1)
	go p.refresh(tp)
}

// refresh rereads tp's record, for at most the request timeout, and applies what
// changed: partitions the topic gained are added to tp; a topic created again (a
// new id) gets new producer state, so that no partition, sequence or setting of the
// old incarnation applies to it; a deleted topic is forgotten, so that the next
// record reads it as a first record does. When the read fails, tp is kept and read
// again after metadataRefreshRetry.
func (p *Producer) refresh(tp *topicProducer) {
	defer p.wg.Done()
	defer tp.refreshing.Store(false)
	tp.mu.Lock()
	name, id := tp.meta.Name, tp.meta.ID
	tp.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.requestTimeout)
	defer cancel()
	meta, err := p.c.topic(ctx, name)
	switch {
	case err == nil && meta.ID == id:
		tp.mu.Lock()
		for i := int32(len(tp.parts)); i < meta.Config.Partitions; i++ {
			tp.parts = append(tp.parts, p.newPart(meta, i))
		}
		tp.meta = meta
		tp.mu.Unlock()
		tp.fetched.Store(time.Now().UnixNano())
	case err == nil:
		p.replaceTopic(name, tp, p.newTopicProducer(meta))
	case errors.Is(err, semantics.ErrUnknownTopic):
		p.replaceTopic(name, tp, nil)
	default:
		if p.ctx.Err() == nil {
			p.c.log.Warn("producer could not read a topic's metadata again; producing with the metadata it has", "topic", name, "err", err)
		}
		tp.fetched.Store(time.Now().Add(metadataRefreshRetry - metadataMaxAge).UnixNano())
	}
}

// replaceTopic puts next (nil: nothing) in old's place for Produce, if old is still
// topic name's producer state. Records old collected are sent at once.
func (p *Producer) replaceTopic(name string, old, next *topicProducer) {
	p.mu.Lock()
	cur := *p.topics.Load()
	if cur[name] == old {
		topics := make(map[string]*topicProducer, len(cur))
		for k, v := range cur {
			if v != old {
				topics[k] = v
			}
		}
		if next != nil {
			topics[name] = next
		}
		p.topics.Store(&topics)
	}
	p.mu.Unlock()
	old.mu.Lock()
	parts := old.parts
	old.mu.Unlock()
	for _, pp := range parts {
		pp.flush()
	}
}

func (p *Producer) closedErr() error { return ErrProducerClosed }

// Produce adds r to its partition's next batch and returns; cb (which may be nil) is
// called once with r, its Partition and Offset set, and nil or the error that failed
// it. cb runs on the producer's goroutine for that partition: keep it short. Produce
// blocks while BufferBytes are in use, or while r's partition already has two full
// batches waiting for room in flight (MaxInFlight), until ctx ends. An error
// returned by Produce itself (unknown topic, record too large, closed producer, ctx
// already done) means r was not accepted and cb will not be called.
//
// The first record for a topic waits for the topic's metadata for at most the
// request timeout (RequestTimeout), or while a node says the topic is being created
// (up to 10s, then ErrTopicNotReady); if no node has answered by then, the record is
// accepted and waits for the metadata in the background, and fails through cb with
// ErrRecordTimeout (not sent) if none comes within the delivery timeout, or with
// the node's answer (an unknown topic, say) when it comes.
func (p *Producer) Produce(ctx context.Context, r *Record, cb func(*Record, error)) error {
	return p.produce(ctx, r, cb, false)
}

// TryProduce is Produce that fails with ErrMaxBuffered instead of waiting when the
// buffer (BufferBytes) is full or r's partition has two full batches waiting.
func (p *Producer) TryProduce(ctx context.Context, r *Record, cb func(*Record, error)) error {
	return p.produce(ctx, r, cb, true)
}

func (p *Producer) produce(ctx context.Context, r *Record, cb func(*Record, error), try bool) error {
	if r.Topic == "" {
		if p.cfg.defaultTopic == "" {
			return semantics.Errorf(semantics.ErrInvalidTopic, "record has no topic: set Record.Topic, or give the producer a DefaultTopic")
		}
		r.Topic = p.cfg.defaultTopic
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("produce to topic %q: %w", r.Topic, err)
	}
	if p.txn != nil {
		if err := p.txn.checkOpen(); err != nil {
			return fmt.Errorf("produce to topic %q: %w", r.Topic, err)
		}
		cb = p.txn.track(cb)
	}
	// The clock, not the record's timestamp, ages the topic's metadata: a record
	// may carry any time (a mirror copies its source's).
	now := time.Now()
	if r.Timestamp.IsZero() {
		r.Timestamp = now
	}
	var est semantics.BatchBuilder
	size := int64(est.EncodedRecordSize(r) + semantics.BatchHeaderSize)
	tp, err := p.topic(ctx, r.Topic, now)
	var slow *slowLoad
	if errors.As(err, &slow) {
		if err := p.reserve(ctx, size, try); err != nil {
			return err
		}
		slow.l.park(p, pendingRecord{r: r, cb: cb, size: size})
		return nil
	}
	if err != nil {
		return err
	}
	pp, err := p.partitionFor(tp, r, size)
	if err != nil {
		return err
	}
	if try && pp.queued.Load() >= maxQueuedBatches {
		return fmt.Errorf("%w: partition %s has %d full batches waiting to be sent", ErrMaxBuffered, pp.name, maxQueuedBatches)
	}
	if err := p.waitQueue(ctx, pp); err != nil {
		return err
	}
	if err := p.reserve(ctx, size, try); err != nil {
		return err
	}
	r.Partition = pp.partition
	pp.append(pendingRecord{r: r, cb: cb, size: size})
	return nil
}

// partitionFor checks r against its topic and picks its partition.
func (p *Producer) partitionFor(tp *topicProducer, r *Record, size int64) (*partProducer, error) {
	var part int32
	tp.mu.Lock()
	compact, maxBytes := tp.meta.Config.Compact, tp.meta.Config.MaxMessageBytes
	n := int32(len(tp.parts))
	parts := tp.parts
	ok := !(compact && r.Key == nil) && size <= int64(maxBytes)
	switch {
	case !ok:
	case p.cfg.recordPartition:
		part = r.Partition
	default:
		part = tp.part.Partition(r.Key, n)
		if bn, ok := tp.part.(partitioner.BatchNotifier); ok && r.Key == nil && parts[part].startsNewBatch() {
			bn.OnNewBatch(n, part)
			part = tp.part.Partition(r.Key, n)
		}
	}
	tp.mu.Unlock()
	switch {
	case compact && r.Key == nil:
		return nil, semantics.Errorf(semantics.ErrInvalidRecord, "topic %q is compacted: every record needs a key", r.Topic)
	case size > int64(maxBytes):
		return nil, semantics.Errorf(semantics.ErrMessageTooLarge,
			"record of %d bytes is over topic %q's max message bytes (%d): send a smaller record or raise the topic's max message bytes",
			size, r.Topic, maxBytes)
	case part < 0 || part >= n:
		return nil, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has partitions 0 to %d: partition %d does not exist", r.Topic, n-1, part)
	}
	return parts[part], nil
}

// ProduceSync produces records and waits for all of them. Each record's Partition and
// Offset are set on success. When some fail, the error is a *ProduceError listing
// each failed record with its error (errors.Is matches any of them); when ctx ends
// first, ctx's error.
func (p *Producer) ProduceSync(ctx context.Context, rs ...*Record) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []RecordError
	for _, r := range rs {
		wg.Add(1)
		err := p.Produce(ctx, r, func(r *Record, err error) {
			if err != nil {
				mu.Lock()
				failed = append(failed, RecordError{Record: r, Err: err})
				mu.Unlock()
			}
			wg.Done()
		})
		if err != nil {
			wg.Done()
			mu.Lock()
			failed = append(failed, RecordError{Record: r, Err: err})
			mu.Unlock()
		}
	}
	p.flushAll()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if len(failed) == 0 {
		return nil
	}
	return &ProduceError{Failed: failed, Total: len(rs)}
}

// RecordError is one record that failed and why.
type RecordError struct {
	Record *Record
	Err    error
}

// ProduceError is ProduceSync's error when records failed: each failed record with
// its error, in the order the results came. Unwrap returns the records' errors, so
// errors.Is(err, qxd.ErrRecordTimeout) asks whether any failed so.
type ProduceError struct {
	Failed []RecordError
	Total  int // records given to ProduceSync
}

func (e *ProduceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "produce: %d of %d records failed", len(e.Failed), e.Total)
	seen := map[string]bool{}
	for _, f := range e.Failed {
		msg := f.Err.Error()
		if seen[msg] {
			continue
		}
		if len(seen) == 3 {
			b.WriteString("; …")
			break
		}
		seen[msg] = true
		fmt.Fprintf(&b, "; %s", msg)
	}
	return b.String()
}

// Unwrap returns the failed records' errors.
func (e *ProduceError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// flushAll asks every partition to send what it has collected now.
func (p *Producer) flushAll() {
	for _, tp := range *p.topics.Load() {
		tp.mu.Lock()
		parts := tp.parts
		tp.mu.Unlock()
		for _, pp := range parts {
			pp.flush()
		}
	}
}

// Flush sends every collected record at once, ignoring Linger, and waits until every
// record produced before the call has its result, or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.flushAll()
	if err := p.waitUntil(ctx, func() bool { return p.records.Load() == 0 }); err != nil {
		return fmt.Errorf("flush: %d records still awaiting results: %w", p.records.Load(), err)
	}
	return nil
}

// Close flushes (bounded by ctx), then stops the producer. Records still unsent when
// ctx ends fail with ErrProducerClosed. Close is idempotent.
func (p *Producer) Close(ctx context.Context) error {
	if p.closed.Load() {
		return nil
	}
	err := p.Flush(ctx)
	p.mu.Lock() // no topic load starts after this
	wasClosed := p.closed.Swap(true)
	p.mu.Unlock()
	if wasClosed {
		return nil
	}
	p.cancel()
	p.wg.Wait()
	if p.sub != nil {
		p.sub.Unsubscribe()
	}
	if p.elected != nil {
		p.elected.Unsubscribe()
	}
	return err
}

// reserve takes n bytes of the buffer for one record, waiting while it is full; a
// record larger than the whole buffer goes when the buffer is empty.
func (p *Producer) reserve(ctx context.Context, n int64, try bool) error {
	if b := p.buffered.Add(n); b <= p.cfg.bufferBytes || b == n {
		p.records.Add(1)
		return nil
	}
	p.buffered.Add(-n)
	p.wakeWaiters() // a waiter may have seen the bytes just given back
	if try {
		return fmt.Errorf("%w: buffer of %d bytes is full", ErrMaxBuffered, p.cfg.bufferBytes)
	}
	err := p.waitUntil(ctx, func() bool {
		for {
			b := p.buffered.Load()
			if b+n > p.cfg.bufferBytes && b != 0 {
				return false
			}
			if p.buffered.CompareAndSwap(b, b+n) {
				p.records.Add(1)
				return true
			}
		}
	})
	if err != nil {
		return fmt.Errorf("produce: buffer of %d bytes is full: %w", p.cfg.bufferBytes, err)
	}
	return nil
}

// waitUntil waits until done reports true, or ctx ends (it then returns ctx's
// error). done runs with bufMu held, first at once and again whenever records
// finish, batches leave a partition's queue or ctx ends (see wakeWaiters).
func (p *Producer) waitUntil(ctx context.Context, done func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		p.bufMu.Lock()
		p.bufCond.Broadcast()
		p.bufMu.Unlock()
	})
	defer stop()
	p.bufMu.Lock()
	defer p.bufMu.Unlock()
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for !done() {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.bufCond.Wait()
	}
	return nil
}

// waitQueue waits while pp has maxQueuedBatches sealed batches waiting for room in
// flight, until ctx ends. Records beyond those would only wait in memory: holding
// the producer there keeps the batches it builds, and the heap the collector scans,
// small (with the whole buffer queued, records/s fell 10-20%; see docs/performance.md).
func (p *Producer) waitQueue(ctx context.Context, pp *partProducer) error {
	room := func() bool { return pp.queued.Load() < maxQueuedBatches }
	if room() {
		return nil
	}
	if err := p.waitUntil(ctx, room); err != nil {
		return fmt.Errorf("produce: partition %s has %d full batches waiting to be sent: %w", pp.name, maxQueuedBatches, err)
	}
	return nil
}

// BufferedRecords returns how many records were produced and have no result yet:
// collecting, queued, in flight or waiting for their topic's metadata.
func (p *Producer) BufferedRecords() int64 { return p.records.Load() }

// BufferedBytes returns the buffer bytes (BufferBytes) those records hold.
func (p *Producer) BufferedBytes() int64 { return p.buffered.Load() }

// PurgeBuffered fails every record not yet sent with ErrPurged (they are not
// stored) and returns how many it failed; records in flight keep their course.
// Their callbacks run before it returns.
func (p *Producer) PurgeBuffered() int {
	n := 0
	p.mu.Lock()
	loads := make([]*topicLoad, 0, len(p.loads))
	for _, l := range p.loads {
		loads = append(loads, l)
	}
	p.mu.Unlock()
	for _, l := range loads {
		l.mu.Lock()
		parked := l.parked
		l.parked = nil
		l.mu.Unlock()
		for _, pr := range parked {
			pr.r.Offset = -1
			p.release(pr.size, 1)
			if pr.cb != nil {
				pr.cb(pr.r, ErrPurged)
			}
		}
		n += len(parked)
	}
	for _, tp := range *p.topics.Load() {
		tp.mu.Lock()
		parts := tp.parts
		tp.mu.Unlock()
		for _, pp := range parts {
			n += pp.purge()
		}
	}
	return n
}

// release gives back the buffer bytes of records that finished.
func (p *Producer) release(bytes, records int64) {
	p.buffered.Add(-bytes)
	p.records.Add(-records)
	p.wakeWaiters()
}

// wakeWaiters wakes whoever waits for buffer space or for records to finish. A waiter
// counts itself before it looks at the counters, so a change made before this call
// is either seen by it or followed by this wake-up.
func (p *Producer) wakeWaiters() {
	if p.waiters.Load() > 0 {
		p.bufMu.Lock()
		p.bufCond.Broadcast()
		p.bufMu.Unlock()
	}
}

// onReply receives writers' answers for every partition.
func (p *Producer) onReply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[len(p.inbox):], 10, 64)
	if err != nil {
		return
	}
	p.reqMu.Lock()
	b := p.reqs[id]
	delete(p.reqs, id)
	p.reqMu.Unlock()
	if b == nil {
		return // timed out already
	}
	var res error
	var base int64 = -1
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		res = semantics.Errorf(semantics.ErrUnavailable, "partition %s: no writer is serving it right now", b.part.name)
	} else if r, err := semantics.ParseProduceReply(m.Data); err != nil {
		res = semantics.Errorf(semantics.ErrUnknown, "partition %s: %v", b.part.name, err)
	} else {
		res, base = r.Err(), r.BaseOffset
	}
	b.part.finish(b, base, res)
}

func (p *Producer) register(b *batch) string {
	p.reqMu.Lock()
	p.nextID++
	b.id = p.nextID
	p.reqs[b.id] = b
	p.reqMu.Unlock()
	return p.inbox + strconv.FormatUint(b.id, 10)
}

func (p *Producer) unregister(b *batch) bool {
	p.reqMu.Lock()
	defer p.reqMu.Unlock()
	if _, ok := p.reqs[b.id]; !ok {
		return false
	}
	delete(p.reqs, b.id)
	return true
}

// newProducerID returns a random positive producer id. Ids are 63 random bits, so two
// producers sharing one is not a practical concern.
func newProducerID() int64 { return rand.Int64N(math.MaxInt64) }
