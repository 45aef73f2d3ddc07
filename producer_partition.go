package qxd

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

type pendingRecord struct {
	r    *Record
	cb   func(*Record, error)
	size int64
}

// batch is one record batch on its way to a partition writer.
type batch struct {
	part    *partProducer
	b       semantics.BatchBuilder // the records until the batch is sealed
	recs    []pendingRecord
	bytes   int64 // buffer bytes the records hold
	data    []byte
	seq     int32
	created time.Time

	// Set by the sender and by replies, under part.mu.
	id     uint64
	sentAt time.Time
	// to is the node whose writer the batch was last sent to directly
	// (WriterDirectSubject); "" for the partition's queue subject.
	to string
	// checked: the batch waited stallCheckAfter for its answer and made the
	// client check its node (once per send).
	checked bool
	// hurried: the batch is being resent after its stream elected a leader, or
	// after the client moved to another node, while it awaited an answer; each
	// attempt waits electedAnswerWait, not the request timeout (see
	// leaderElected, clientMoved).
	hurried bool
	// hurry: the batch was given up because its stream elected a leader, or
	// lost with the connection when the client moved: the batches resent with it
	// are hurried.
	hurry bool
	// unsure: a request of the batch ended without an answer that says the
	// writer did not store it (no answer in time, a lost connection, an append
	// whose outcome the writer does not know), so that request may still be
	// stored; see refused.
	unsure bool
	done   bool
	base   int64
	err    error
	// settled: its outcome was reported to the hooks (settle); its callbacks may
	// not have run yet. Owned by the sender once the batch is answered.
	settled bool
}

// batchBufs holds the buffers of completed batches, for the next ones to fill: a
// batch's bytes are copied into the connection when sent, and kept only for a resend
// until the batch completes. An uncompressed batch is built in its builder's buffer
// (see BatchBuilder.Seal), so one buffer carries a batch from the first record to the
// writer's answer.
var batchBufs sync.Pool

func getBatchBuf() []byte {
	if p, ok := batchBufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

func putBatchBuf(b []byte) {
	if cap(b) > 0 {
		batchBufs.Put(&b)
	}
}

// maxQueuedBatches is how many sealed batches a partition may hold beyond those in
// flight before Produce waits for its sender (two, so that one is always ready when
// an answer frees room).
const maxQueuedBatches = 2

// recsPool holds the record lists of completed batches, cleared, for the next ones:
// a fresh list per batch meant writing every record's entry into memory the cache
// had not seen.
var recsPool sync.Pool

func getRecs(n int) []pendingRecord {
	if p, ok := recsPool.Get().(*[]pendingRecord); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]pendingRecord, 0, n)
}

func putRecs(rs []pendingRecord) {
	if cap(rs) > 0 {
		clear(rs)
		rs = rs[:0]
		recsPool.Put(&rs)
	}
}

// partProducer collects and sends one partition's batches. Appenders fill the open
// batch; one sender goroutine seals, builds, sends and retries batches in order.
type partProducer struct {
	p         *Producer
	topic     string
	partition int32
	name      string
	subject   string
	maxBytes  int

	mu       sync.Mutex
	open     *batch
	opened   time.Time
	queue    []*batch // sealed, not yet sent (or to be resent), in order
	flushReq bool
	hadBatch bool
	running  bool
	notify   chan struct{}
	queued   atomic.Int32 // len(queue), for Produce to wait on (see waitQueue)
	// lastBytes and lastRecs are the size and record count of the last sealed batch,
	// to size the next one's buffers.
	lastBytes int
	lastRecs  int

	// elected is when JetStream's advisory last said that the partition's stream
	// elected a leader (zero: never); leader is the node it named, or the one
	// the lookup after a move found ("" when unknown, after that node's
	// writer answered NOT_LEADER, or found none serving past
	// electedWriterStart), learned at leaderAt; guarded by mu.
	elected  time.Time
	leader   string
	leaderAt time.Time
	// leaderServed: leader's writer has answered since it was named.
	leaderServed bool
	// moved is when the client last moved to another node while the partition
	// had batches awaiting answers (zero: never), and lookupUntil when the lookup
	// of its leader begun then gives up (zero: none running); see clientMoved.
	// Guarded by mu.
	moved       time.Time
	lookupUntil time.Time
	// target is the node whose writer the batches in flight were sent to
	// directly, "" for the queue subject (see targetLocked); guarded by mu.
	target string

	// Owned by the sender goroutine.
	pid      int64
	epoch    int16
	seq      int32
	inflight []*batch
}

func (p *Producer) newPart(meta semantics.TopicMeta, i int32) *partProducer {
	maxBytes := min(p.cfg.batchBytes, int(meta.Config.MaxMessageBytes))
	pp := &partProducer{
		p: p, topic: meta.Name, partition: i, name: semantics.PartitionString(meta.Name, i),
		subject: semantics.WriterSubject(meta.Name, i), maxBytes: maxBytes,
		notify: make(chan struct{}, 1), pid: -1, epoch: -1,
	}
	if p.cfg.idempotent {
		pp.pid, pp.epoch = newProducerID(), 0
	}
	if p.txn != nil {
		pp.pid, pp.epoch = p.txn.pid, p.txn.epoch
	}
	return pp
}

func (pp *partProducer) signal() {
	select {
	case pp.notify <- struct{}{}:
	default:
	}
}

// startsNewBatch reports whether the next record would open a new batch after an
// earlier one was sealed: when sticky partitioning moves on.
func (pp *partProducer) startsNewBatch() bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.open == nil && pp.hadBatch
}

// append adds a record to the open batch. It wakes the sender only when its work
// changed: a batch opened (linger starts) or was sealed (to send); records added to
// an open batch change nothing it decides on.
func (pp *partProducer) append(pr pendingRecord) {
	wake := false
	pp.mu.Lock()
	if pp.open != nil && pp.open.b.Size()+pp.open.b.EncodedRecordSize(pr.r) > pp.maxBytes {
		pp.sealLocked()
		wake = true
	}
	if pp.open == nil {
		now := time.Now()
		b := &batch{part: pp, created: now}
		// The last batch's size is a good guess for this one: a recycled buffer that
		// is large enough, or a new one of that size, instead of growing by doubling.
		b.b.ResetWith(getBatchBuf())
		size := pp.lastBytes
		if size >= pp.maxBytes/2 {
			// Batches fill up: give each the full size, so the next record cannot make
			// it double, and every buffer fits every batch when recycled.
			size = pp.maxBytes
		}
		b.b.Grow(min(size, pp.maxBytes))
		b.recs = getRecs(pp.lastRecs)
		pp.open, pp.opened = b, now
		wake = true
	}
	pp.open.b.Append(pr.r)
	pp.open.recs = append(pp.open.recs, pr)
	pp.open.bytes += pr.size
	if pp.open.b.Size() >= pp.maxBytes {
		pp.sealLocked()
		wake = true
	}
	if !pp.running {
		pp.running = true
		pp.p.wg.Add(1)
		go pp.run()
	}
	pp.mu.Unlock()
	if wake {
		pp.signal()
	}
}

func (pp *partProducer) sealLocked() {
	pp.lastBytes = pp.open.b.Size()
	pp.lastRecs = len(pp.open.recs)
	pp.queue = append(pp.queue, pp.open)
	pp.queued.Store(int32(len(pp.queue)))
	pp.open = nil
	pp.hadBatch = true
}

func (pp *partProducer) flush() {
	pp.mu.Lock()
	pp.flushReq = true
	pp.mu.Unlock()
	pp.signal()
}

// finish records a writer's answer (or a failure to get one) for b.
func (pp *partProducer) finish(b *batch, base int64, err error) {
	pp.mu.Lock()
	b.done, b.base, b.err = true, base, err
	b.unsure = b.unsure || err != nil && !refused(err)
	switch {
	case b.to == "" || b.to != pp.leader:
	case errors.Is(err, semantics.ErrNotLeader):
		// The node the advisory named leads the stream no longer: the next
		// batches go to the queue subject, or to the next advisory's leader.
		pp.leader = ""
	case errors.Is(err, semantics.ErrUnavailable) && (pp.leaderServed || time.Since(pp.leaderAt) >= electedWriterStart):
		// Nobody serves the named node's writer subject, after it answered, or
		// long after a writer starts: it stopped (its node handed the
		// leadership off, or stopped), and the advisory of the next election
		// went unheard (the client was moving then; advisories are not
		// replayed).
		pp.leader = ""
	case !errors.Is(err, semantics.ErrUnavailable):
		pp.leaderServed = true
	}
	pp.mu.Unlock()
	pp.signal()
}

// run is the partition's sender: it seals the open batch when Linger has passed (or
// on flush) and there is room in flight, sends queued batches up to MaxInFlight,
// completes answered batches in order, and on a failure waits for everything in
// flight, then resends what failed, in order.
//
// Each pass takes the answered batches off the front of those in flight (and
// reports them to the hooks) before it decides what to seal and send, and runs their
// records' callbacks only after sending: the room an answer frees goes at once to
// the records waiting for it (at linger 0, those collected while the answered batch
// was in flight), which do not wait for the answered records' callbacks.
func (pp *partProducer) run() {
	defer pp.p.wg.Done()
	cfg := pp.p.cfg
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var recovering bool
	var backoffUntil time.Time
	for {
		now := time.Now()
		var toSend []*batch
		var wake time.Time
		pp.mu.Lock()
		// Complete answered batches in order; time out stuck ones, and give up
		// at once on those a leader election left without an answer.
		gaveUp := 0
		for _, b := range pp.inflight {
			switch {
			case b.done:
			case now.Sub(b.sentAt) >= cfg.requestTimeout && pp.p.unregister(b):
				b.done, b.base, b.unsure = true, -1, true
				b.err = semantics.Errorf(semantics.ErrTimeout, "partition %s: no answer within %v", pp.name, cfg.requestTimeout)
			case pp.giveUpLocked(b, now) && pp.p.unregister(b):
				b.done, b.base, b.hurry, b.unsure = true, -1, true, true
				b.err = semantics.Errorf(semantics.ErrNotLeader, "partition %s: its stream elected a leader while the batch awaited an answer; resending", pp.name)
				gaveUp++
			}
		}

		var completed []*batch
		if !recovering {
			for len(pp.inflight) > 0 && pp.inflight[0].done {
				b := pp.inflight[0]
				if b.err != nil && !errors.Is(b.err, semantics.ErrDuplicateSequence) {
					recovering = true
					break
				}
				completed = append(completed, b)
				pp.inflight = pp.inflight[1:]
			}
		}
		var failed []*batch
		var retry []*batch
		if recovering && allDone(pp.inflight) {
			hurry := false
			for _, b := range pp.inflight {
				hurry = hurry || b.hurry
			}
			completed, failed, retry = pp.sortOut(completed)
			for _, b := range retry {
				b.hurried = b.hurried || hurry
			}
			pp.queue = append(retry, pp.queue...)
			pp.queued.Store(int32(len(pp.queue)))
			pp.inflight = nil
			recovering = false
			backoffUntil = now.Add(cfg.retryBackoff)
			wake = earliest(wake, backoffUntil)
		}

		room := cfg.maxInFlight - len(pp.inflight)
		if pp.open != nil && len(pp.queue) == 0 && room > 0 && !recovering {
			switch {
			case pp.flushReq:
				pp.sealLocked()
			case cfg.linger == 0 && len(pp.inflight) > 0:
				// At linger 0 a batch that is not full waits for the answers in
				// flight, and collects the records that arrive meanwhile (Kafka's
				// linger 0 batches whatever queued while the sender was busy). Sent at
				// once, each would be one more message that the stream stores, and
				// syncs, behind the others: on a node that syncs every append, a
				// trickle of records became a queue of one-record fsyncs. Full
				// batches still go MaxInFlight at a time; a linger bounds how many
				// small batches a partition sends, and they keep the pipeline (on
				// three replicas, waiting looked like it cost throughput while a keyed
				// producer blocked on another partition). The answer wakes the sender.
			case now.Sub(pp.opened) >= cfg.linger:
				pp.sealLocked()
			default:
				wake = earliest(wake, pp.opened.Add(cfg.linger))
			}
		}
		if pp.open == nil {
			pp.flushReq = false
		}
		// With nothing in flight, the next batches wait for the lookup of the
		// partition's leader after a move too: it decides their subject (see
		// clientMoved).
		sendAt := backoffUntil
		if len(pp.inflight) == 0 && pp.lookupUntil.After(sendAt) {
			sendAt = pp.lookupUntil
		}
		if !recovering && !now.Before(sendAt) {
			for room > 0 && len(pp.queue) > 0 {
				toSend = append(toSend, pp.queue[0])
				pp.queue = pp.queue[1:]
				room--
			}
			if len(toSend) > 0 {
				pp.queued.Store(int32(len(pp.queue)))
				pp.p.wakeWaiters()
			}
		} else if !recovering && len(pp.queue) > 0 {
			wake = earliest(wake, sendAt)
		}
		pp.mu.Unlock()

		for _, b := range completed {
			pp.settle(b, b.err)
		}
		if len(toSend) > 0 && len(pp.inflight) == 0 {
			pp.mu.Lock()
			pp.target = pp.targetLocked(now)
			pp.mu.Unlock()
		}
		for _, b := range toSend {
			if pp.send(b) {
				pp.inflight = append(pp.inflight, b)
			}
		}

		pp.mu.Lock()
		stalled := false
		for _, b := range pp.inflight {
			if !b.done {
				wake = earliest(wake, b.sentAt.Add(cfg.requestTimeout))
				if at := pp.giveUpAtLocked(b); !at.IsZero() {
					wake = earliest(wake, at)
				}
				switch {
				case b.checked:
				case now.Sub(b.sentAt) >= stallCheckAfter:
					b.checked, stalled = true, true
				default:
					wake = earliest(wake, b.sentAt.Add(stallCheckAfter))
				}
			}
		}
		pp.mu.Unlock()
		if gaveUp > 0 {
			pp.p.c.log.Debug("batches left without an answer by the partition's leader election; resending them",
				"topic", pp.topic, "partition", pp.partition)
		}
		if stalled {
			// No answer yet: the node may be paused or cut off (see nodeCheck).
			pp.p.c.check.suspect()
		}

		for _, b := range completed {
			pp.complete(b, b.err)
		}
		for _, b := range failed {
			pp.complete(b, b.err)
		}
		if len(completed) > 0 || len(failed) > 0 {
			// Answers that came while the callbacks ran, and records produced
			// meanwhile, are looked at at once.
			pp.signal()
		}

		if !wake.IsZero() {
			timer.Reset(max(time.Until(wake), 0))
		}
		select {
		case <-pp.notify:
		case <-timer.C:
		case <-pp.p.ctx.Done():
			pp.abort()
			return
		}
		if !wake.IsZero() && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func allDone(bs []*batch) bool {
	for _, b := range bs {
		if !b.done {
			return false
		}
	}
	return true
}

// retriable reports whether a batch that failed with err is worth resending. An
// unknown producer id behind batches that are not stored yet is: they land first
// (see sortOut for the oldest batch).
func retriable(err error) bool {
	return semantics.IsRetriable(err) || errors.Is(err, semantics.ErrOutOfOrderSequence) ||
		errors.Is(err, semantics.ErrUnknownProducerID)
}

// refused reports whether err, a writer's answer to a request, says that the writer
// refused the batch before appending it: that request is not stored, and cannot be
// stored later. Other errors leave the request's outcome open (the writer fails
// appends in flight with NOT_LEADER, for one, and the SDK gives them when no
// answer comes).
func refused(err error) bool {
	return errors.Is(err, semantics.ErrUnknownProducerID) || errors.Is(err, semantics.ErrOutOfOrderSequence) ||
		errors.Is(err, semantics.ErrInvalidProducerEpoch)
}

// sortOut decides the fate of every batch in flight once all have answers: stored
// ones complete, transient failures are resent with the same sequence numbers, and
// a batch that failed for good fails its records. After a batch the writer refused,
// the writer still expects its sequence numbers, so every later batch is resent
// under the producer id's next epoch (or a new id); after one whose outcome is
// unknown (delivery timeout), the later batches in flight fail too, as they may be
// stored.
//
// UNKNOWN_PRODUCER_ID (the writer does not know the producer, and the batch does not
// begin at sequence 0) on a batch behind others that are not stored is resent as
// it is: those went unanswered and land first. On the oldest batch, everything
// before it stored, it means the writer forgot the producer (idle past the node's
// producer id expiration): nothing of it or after it is stored, and it and the
// later batches start over at sequence 0, under the id's next epoch, or, for a
// transaction (which keeps its id and epoch), the same ones. Past its delivery
// timeout such a batch fails as not stored, unless an earlier request of it went
// without such an answer (unsure), which may still be stored. Called with mu held.
func (pp *partProducer) sortOut(completed []*batch) (done, failed, retry []*batch) {
	reset, unknown := false, false
	restampFrom := -1 // retry[restampFrom:] are sent after the refused batch
	for _, b := range pp.inflight {
		switch {
		case unknown && b.err != nil && !errors.Is(b.err, semantics.ErrDuplicateSequence):
			// After a batch whose outcome is unknown, the batches sent behind it may
			// be stored too: resending them under a new producer id could store them
			// twice, so they fail with it (Kafka does the same when it bumps the
			// epoch after a timeout).
			b.err = fmt.Errorf("%w: partition %s: a batch sent before this one ran out of its delivery timeout; this one may or may not be stored",
				ErrRecordTimeout, pp.name)
			failed = append(failed, b)
		case reset && !unknown:
			retry = append(retry, b)
		case b.err == nil || errors.Is(b.err, semantics.ErrDuplicateSequence):
			completed = append(completed, b)
		case errors.Is(b.err, semantics.ErrUnknownProducerID) && len(retry) == 0 && len(failed) == 0 && !reset &&
			time.Since(b.created) < pp.p.cfg.deliveryTimeout:
			reset = true
			restampFrom = len(retry)
			retry = append(retry, b)
		case retriable(b.err) && time.Since(b.created) < pp.p.cfg.deliveryTimeout:
			retry = append(retry, b)
		default:
			// A writer's refusal means not stored; anything else (a timeout, no
			// node answering) leaves the outcome unknown. So does UNKNOWN_PRODUCER_ID
			// after a request of the batch that no refusal answered: that one may
			// still land.
			outcomeUnknown := retriable(b.err)
			switch {
			case outcomeUnknown && errors.Is(b.err, semantics.ErrUnknownProducerID) && !b.unsure:
				outcomeUnknown = false
				b.err = fmt.Errorf("%w: not stored: partition %s: the writer refused the batch, as it no longer knows the producer, and the delivery timeout %v passed before it could be sent again: %w",
					ErrRecordTimeout, pp.name, pp.p.cfg.deliveryTimeout, b.err)
			case outcomeUnknown:
				b.err = fmt.Errorf("%w: partition %s: no answer within the delivery timeout %v, so the records may or may not be stored (last error: %v)",
					ErrRecordTimeout, pp.name, pp.p.cfg.deliveryTimeout, b.err)
			}
			failed = append(failed, b)
			if pp.pid >= 0 && !reset && pp.p.txn == nil { // a transaction keeps its producer id: it fails
				reset = true
				restampFrom = len(retry)
				unknown = outcomeUnknown
			}
		}
	}
	if reset {
		// Batches before the refused one keep their identity: the writer still
		// expects their sequence numbers, and a resend of one that was stored after
		// all is recognised as a duplicate. Only the later ones move on. With none
		// before it, they move to the next epoch of the same id, as Kafka's
		// producer bumps its epoch after a timeout: the writer then refuses any
		// batch of the older epoch that reaches it late (a request a dead link
		// delivers after all, such as a cut-off node's route after the heal),
		// where under a new id it stored it behind the newer records of its keys.
		// Resends under the old identity could meet that refusal, so with some,
		// or with no epoch left, they move to a new id. A transaction keeps its
		// id and epoch (its coordinator fences by them): it gets here only when
		// the writer forgot it, and starts over at sequence 0.
		switch {
		case pp.p.txn != nil:
			pp.seq = 0
		case restampFrom == 0 && pp.epoch < math.MaxInt16:
			pp.epoch, pp.seq = pp.epoch+1, 0
		default:
			pp.pid, pp.epoch, pp.seq = newProducerID(), 0, 0
		}
		for _, b := range retry[restampFrom:] {
			pp.stamp(b)
		}
		for _, b := range pp.queue {
			if b.data != nil {
				pp.stamp(b)
			}
		}
	}
	return completed, failed, retry
}

// stamp gives a built batch the partition's current producer identity and the next
// sequence numbers.
func (pp *partProducer) stamp(b *batch) {
	b.seq = pp.seq
	pp.seq = nextSeq(pp.seq, int32(len(b.recs)))
	semantics.SetProducer(b.data, semantics.ProducerInfo{ID: pp.pid, Epoch: pp.epoch, BaseSequence: b.seq, Transactional: pp.p.txn != nil})
}

func nextSeq(s, n int32) int32 {
	return int32((int64(s) + int64(n)) % (math.MaxInt32 + 1))
}

// send builds b on first use and sends it. It returns false when b finished at once
// (acks none, or a build failure).
func (pp *partProducer) send(b *batch) bool {
	cfg := pp.p.cfg
	if b.data == nil {
		if err := pp.joinTxn(); err != nil {
			pp.complete(b, err)
			return false
		}
		pi := semantics.NoProducer
		if pp.pid >= 0 {
			b.seq = pp.seq
			pp.seq = nextSeq(pp.seq, int32(len(b.recs)))
			pi = semantics.ProducerInfo{ID: pp.pid, Epoch: pp.epoch, BaseSequence: b.seq, Transactional: pp.p.txn != nil}
		}
		var dst []byte
		if cfg.compression != CompressionNone {
			dst = getBatchBuf()
		}
		data, err := b.b.Seal(dst, pi, cfg.compression)
		if err != nil {
			pp.complete(b, err)
			return false
		}
		putBatchBuf(b.b.TakeBuffer()) // a compressed batch leaves the records' buffer
		b.data = data
	}
	if cfg.acks == AcksNone {
		err := pp.p.c.nc.Publish(pp.subject, b.data)
		b.base = -1
		pp.complete(b, err)
		return false
	}
	pp.mu.Lock()
	b.done, b.err, b.base, b.checked, b.hurry = false, nil, -1, false, false
	b.sentAt = time.Now()
	b.to = pp.target
	pp.mu.Unlock()
	subject := pp.subject
	if b.to != "" {
		subject = semantics.WriterDirectSubject(pp.topic, pp.partition, b.to)
	}
	reply := pp.p.register(b)
	if err := pp.p.c.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Data: b.data}); err != nil {
		if pp.p.unregister(b) {
			pp.finish(b, -1, semantics.Errorf(semantics.ErrUnavailable, "partition %s: send: %v", pp.name, err))
		}
	}
	return true
}

// settle is the first part of completing b with err: the outcome its records get,
// reported to the node check and the hooks. The sender settles answered batches
// before it sends the batches that waited for their room, and runs their callbacks
// (complete) after.
func (pp *partProducer) settle(b *batch, err error) {
	if b.settled {
		return
	}
	b.settled = true
	if errors.Is(err, semantics.ErrDuplicateSequence) {
		// The writer has stored this batch before (a resend after a lost answer) but
		// no longer remembers where: stored, offset unknown, as Kafka's producer
		// treats DUPLICATE_SEQUENCE_NUMBER.
		err, b.base = nil, -1
	}
	b.err = err
	if err == nil && pp.p.cfg.acks != AcksNone {
		pp.p.c.check.answered(time.Since(b.sentAt))
	}
	if hs := &pp.p.c.cfg.hooks; err == nil && len(hs.written) > 0 && pp.p.cfg.acks != AcksNone {
		hs.batchWritten(pp.topic, pp.partition, ProduceBatchMetrics{NumRecords: len(b.recs), RecordBytes: b.bytes,
			BatchBytes: len(b.data), Compression: pp.p.cfg.compression, BaseOffset: b.base, Latency: time.Since(b.sentAt)})
	}
}

// complete hands each record of b its result.
func (pp *partProducer) complete(b *batch, err error) {
	pp.settle(b, err)
	err = b.err
	putBatchBuf(b.b.TakeBuffer())
	putBatchBuf(b.data)
	b.data = nil
	for i, pr := range b.recs {
		if err == nil && b.base >= 0 {
			pr.r.Offset = b.base + int64(i)
		} else {
			pr.r.Offset = -1
		}
		if pr.cb != nil {
			pr.cb(pr.r, err)
		}
	}
	pp.p.release(b.bytes, int64(len(b.recs)))
	putRecs(b.recs)
	b.recs, b.bytes = nil, 0
}

// purge fails the batches that were never sent (the open one and queued ones not
// yet built) with ErrPurged, and returns their record count. Built batches hold
// sequence numbers the writer expects, so they stay.
func (pp *partProducer) purge() int {
	pp.mu.Lock()
	var purged []*batch
	kept := pp.queue[:0]
	for _, b := range pp.queue {
		if b.data == nil {
			purged = append(purged, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(pp.queue[len(kept):])
	pp.queue = kept
	pp.queued.Store(int32(len(pp.queue)))
	if pp.open != nil {
		purged = append(purged, pp.open)
		pp.open = nil
	}
	pp.mu.Unlock()
	n := 0
	for _, b := range purged {
		n += len(b.recs)
		pp.complete(b, ErrPurged)
	}
	if len(purged) > 0 {
		pp.p.wakeWaiters()
	}
	return n
}

// abort fails everything the partition still holds, when the producer closes.
func (pp *partProducer) abort() {
	pp.mu.Lock()
	var all []*batch
	all = append(all, pp.inflight...)
	all = append(all, pp.queue...)
	if pp.open != nil {
		all = append(all, pp.open)
	}
	pp.inflight, pp.queue, pp.open = nil, nil, nil
	pp.queued.Store(0)
	pp.mu.Unlock()
	for _, b := range all {
		pp.p.unregister(b)
		pp.complete(b, ErrProducerClosed)
	}
}
