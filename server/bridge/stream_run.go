package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// The runner of an ingest bridge that reads a JetStream stream: at-least-once, with
// the redeliveries of a failover found in the topic and not stored again.

const (
	// bridgeFetchBatch is how many messages one pull asks for.
	bridgeFetchBatch = 256
	// bridgeFetchWait bounds one pull. It must stay well under bridgePinnedTTL: each
	// pull renews the runner's pin.
	bridgeFetchWait = time.Second
	// bridgeScanLimit bounds, per partition, the records a resuming runner reads back
	// from the end of the partition looking for the records it already stored. If
	// more records than this were appended to a partition after the oldest
	// unacknowledged message's record, the older ones are not found and are stored
	// again: duplicates, never loss.
	bridgeScanLimit = 20000
)

// runStreamIngest takes the messages of the bridge's stream through its durable
// consumer and produces each as a record, in stream order, through one idempotent
// producer; a message is acknowledged once its record is stored. It runs sessions:
// each starts when this runner holds the consumer's pin, resets the consumer to its
// ack floor (so the messages a previous runner left unacknowledged come again, in
// order), reads back the records already stored for those messages, and skips them.
// A session ends on a failure (a record not stored, a lost pin): the next one starts
// over from the ack floor.
func (r *bridgeRunner) runStreamIngest(ctx context.Context) error {
	key, err := semantics.ParseKeySpec(r.def.Key)
	if err != nil {
		return err
	}
	hf, err := semantics.ParseHeaderFilter(r.def.Headers)
	if err != nil {
		return err
	}
	if r.cons == nil { // kept across restarts of the runner's loop: it holds the pin
		c, err := r.h.JetStream().Consumer(ctx, r.def.Stream, semantics.BridgeConsumer(r.def.Name))
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("consumer %s of stream %s does not exist (deleted outside qxd?): delete the bridge and create it again",
				semantics.BridgeConsumer(r.def.Name), r.def.Stream)
		}
		if err != nil {
			return fmt.Errorf("open consumer %s of stream %s: %w", semantics.BridgeConsumer(r.def.Name), r.def.Stream, err)
		}
		r.cons = c
	}
	prod, err := r.c.NewProducer(qxd.Linger(time.Millisecond))
	if err != nil {
		return err
	}
	defer func() {
		gctx, cancel := r.graceful()
		defer cancel()
		_ = prod.Close(gctx)
	}()
	status, err := r.serveStatus()
	if err != nil {
		return err
	}
	defer status.Unsubscribe()
	s := &streamSession{r: r, prod: prod, key: key, hf: hf}
	for {
		err := s.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.lastErr = err.Error()
		r.mu.Unlock()
		r.log.Warn("bridge session ended; resuming from the stream's ack floor", "stream", r.def.Stream, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(bridgeRetry):
		}
	}
}

// streamSession is one session of a stream bridge's runner.
type streamSession struct {
	r    *bridgeRunner
	prod *qxd.Producer
	key  semantics.KeySpec
	hf   semantics.HeaderFilter

	mu sync.Mutex
	// taken holds the messages produced in this session whose record is not stored
	// yet (false) or failed (true).
	taken  map[uint64]bool
	failed chan error
}

// run runs one session until ctx ends (nil) or a failure (its error).
func (s *streamSession) run(ctx context.Context) error {
	r := s.r
	if err := s.acquirePin(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	resp, err := r.h.JetStream().ResetConsumer(ctx, r.def.Stream, semantics.BridgeConsumer(r.def.Name))
	if err != nil {
		return fmt.Errorf("reset consumer %s to its ack floor: %w", semantics.BridgeConsumer(r.def.Name), err)
	}
	floor := resp.ResetSeq - 1

	// The fetcher pulls from now on, so the pin stays with this runner while it reads
	// back the topic and while it finishes at the end.
	s.taken, s.failed = map[uint64]bool{}, make(chan error, 1)
	msgs := make(chan jetstream.Msg, 2*bridgeMaxAckPending+bridgeFetchBatch)
	fetchErr := make(chan error, 1)
	fctx, fcancel := context.WithCancel(context.Background())
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() {
		defer fwg.Done()
		s.fetch(fctx, msgs, fetchErr)
	}()
	// finish waits for the records in flight (their messages are acknowledged as
	// they are stored), then stops pulling.
	finish := func(wait context.Context) {
		if err := s.prod.Flush(wait); err != nil {
			r.log.Warn("bridge session ended with records unconfirmed", "stream", r.def.Stream, "err", err)
		}
		fcancel()
		fwg.Wait()
	}

	stored, err := scanStored(ctx, r, floor)
	if err != nil {
		finish(ctx)
		return err
	}
	if len(stored) > 0 {
		r.log.Info("bridge resuming: messages already stored will be skipped", "stream", r.def.Stream,
			"ack_floor", floor, "stored", len(stored))
	}

	var highest uint64 // the last stream sequence taken in this session
	// The consumer numbers its deliveries from 1 after the reset. A delivery that
	// never reaches the session (a pull ended by its deadline while the server was
	// still sending it its messages) leaves a gap: the messages after it must not be
	// stored before it, so the session ends and the next one starts again from the
	// ack floor, in order.
	var delivered uint64
	for {
		var m jetstream.Msg
		select {
		case <-ctx.Done():
			gctx, cancel := r.graceful()
			finish(gctx)
			// Let the next runner take over at once rather than after the pin's TTL.
			if st, err := r.h.JetStream().Stream(gctx, r.def.Stream); err == nil {
				_ = st.UnpinConsumer(gctx, semantics.BridgeConsumer(r.def.Name), semantics.BridgePriorityGroup)
			}
			cancel()
			return nil
		case err := <-s.failed:
			finish(ctx)
			return err
		case err := <-fetchErr:
			finish(ctx)
			return err
		case m = <-msgs:
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		if md.Sequence.Consumer != delivered+1 {
			finish(ctx)
			return fmt.Errorf("consumer %s: delivery %d (message %d) came after delivery %d: messages delivered did not arrive, or the consumer was set back; starting again from the ack floor to keep the stream's order",
				semantics.BridgeConsumer(r.def.Name), md.Sequence.Consumer, seq, delivered)
		}
		delivered = md.Sequence.Consumer
		r.taken.Add(1)
		r.backlog.Store(md.NumPending)
		if seq <= highest {
			// Delivered again in this session (an acknowledgement lost, or the ack wait
			// passed): acknowledge it again if its record is stored, else leave it to
			// the produce in flight (or to the next session, after a failure).
			s.mu.Lock()
			_, inFlight := s.taken[seq]
			s.mu.Unlock()
			if !inFlight {
				_ = m.Ack()
			}
			r.skipped.Add(1)
			continue
		}
		highest = seq
		if _, ok := stored[seq]; ok {
			_ = m.Ack()
			r.skipped.Add(1)
			continue
		}
		if err := s.produce(ctx, m, md); err != nil {
			if ctx.Err() != nil {
				continue // stopping: handled above
			}
			finish(ctx)
			return err
		}
	}
}

// acquirePin pulls one message at a time until one comes: then this runner holds
// the consumer's pin, and no other runner gets messages. The message is left
// unacknowledged: the reset that follows delivers it again.
func (s *streamSession) acquirePin(ctx context.Context) error {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, bridgeFetchWait)
		batch, err := s.r.cons.Fetch(1, jetstream.FetchContext(fctx), jetstream.FetchPriorityGroup(semantics.BridgePriorityGroup))
		if err != nil {
			cancel()
			return fmt.Errorf("pull from consumer %s: %w", semantics.BridgeConsumer(s.r.def.Name), err)
		}
		got := false
		for range batch.Messages() {
			got = true
		}
		err = batch.Error()
		cancel()
		switch {
		case got:
			return nil
		case ctx.Err() != nil:
			return nil
		case err == nil, errors.Is(err, jetstream.ErrPinIDMismatch), errors.Is(err, context.DeadlineExceeded):
			// Another runner holds the pin, or nothing to take yet.
		default:
			return fmt.Errorf("pull from consumer %s: %w", semantics.BridgeConsumer(s.r.def.Name), err)
		}
	}
	return nil
}

// fetch pulls messages into out until ctx ends or a pull fails (reported on errc;
// ErrPinIDMismatch means another runner took the pin). out is large enough for every
// message the consumer lets be unacknowledged, so fetch keeps pulling, and so keeps
// the pin, while the session does not read out.
func (s *streamSession) fetch(ctx context.Context, out chan<- jetstream.Msg, errc chan<- error) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, bridgeFetchWait)
		batch, err := s.r.cons.Fetch(bridgeFetchBatch, jetstream.FetchContext(fctx), jetstream.FetchPriorityGroup(semantics.BridgePriorityGroup))
		if err != nil {
			cancel()
			errc <- fmt.Errorf("pull from consumer %s: %w", semantics.BridgeConsumer(s.r.def.Name), err)
			return
		}
		for m := range batch.Messages() {
			select {
			case out <- m:
			case <-ctx.Done():
			}
		}
		err = batch.Error()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, jetstream.ErrPinIDMismatch) {
				err = fmt.Errorf("another runner took consumer %s: %w", semantics.BridgeConsumer(s.r.def.Name), err)
			}
			errc <- err
			return
		}
	}
}

// produce produces message m as a record; its callback acknowledges m once the record
// is stored. A message that can never be stored (too large for the topic; no key
// for a compacted topic) is terminated, counted as failed, and the bridge goes on.
func (s *streamSession) produce(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata) error {
	r := s.r
	seq := md.Sequence.Stream
	rec := &qxd.Record{Topic: r.def.Topic, Key: s.key.Extract(m.Subject(), m.Headers()), Value: m.Data(), Timestamp: md.Timestamp}
	if rec.Value == nil {
		rec.Value = []byte{} // an empty message is an empty value, not a tombstone
	}
	for k, vs := range m.Headers() {
		if jetStreamHeader(k) || !s.hf.Keep(k) {
			continue
		}
		for _, v := range vs {
			rec.Headers = append(rec.Headers, qxd.Header{Key: k, Value: []byte(v)})
		}
	}
	rec.Headers = append(rec.Headers,
		qxd.Header{Key: semantics.HeaderSubject, Value: []byte(m.Subject())},
		qxd.Header{Key: semantics.HeaderSourceStream, Value: []byte(r.def.Stream)},
		qxd.Header{Key: semantics.HeaderSourceSeq, Value: strconv.AppendUint(nil, seq, 10)},
		qxd.Header{Key: semantics.HeaderBridge, Value: []byte(r.def.Name)},
		qxd.Header{Key: semantics.HeaderBridgeRev, Value: strconv.AppendUint(nil, r.def.Revision, 10)})
	// The callback may outlive the session (a finish that timed out): it keeps to
	// this session's map and channel.
	taken, failed := s.taken, s.failed
	s.mu.Lock()
	taken[seq] = false
	s.mu.Unlock()
	err := s.prod.Produce(ctx, rec, func(_ *qxd.Record, err error) {
		s.mu.Lock()
		if err == nil {
			delete(taken, seq)
		} else {
			taken[seq] = true
		}
		s.mu.Unlock()
		if err != nil {
			r.fail(err)
			select {
			case failed <- fmt.Errorf("message %d of stream %s not stored: %w", seq, r.def.Stream, err):
			default:
			}
			return
		}
		r.messages.Add(1)
		_ = m.Ack()
	})
	if err == nil {
		return nil
	}
	s.mu.Lock()
	delete(taken, seq)
	s.mu.Unlock()
	if errors.Is(err, semantics.ErrMessageTooLarge) || errors.Is(err, semantics.ErrInvalidRecord) {
		r.fail(err)
		r.log.Warn("message cannot be stored in the topic; terminated", "stream", r.def.Stream, "seq", seq, "err", err)
		_ = m.TermWithReason("qxd: " + oneLineHeader(err.Error()))
		return nil
	}
	return fmt.Errorf("message %d of stream %s: %w", seq, r.def.Stream, err)
}

// jetStreamHeader reports whether a header of a stream's message is JetStream's own
// rather than its publisher's, and so is not carried into the record: every header
// named Nats-… (any case: NATS reserves the prefix), such as the pin id JetStream
// adds on delivery to a priority group, a publisher's Nats-Expected-… conditions and
// Nats-TTL, except Nats-Msg-Id, the publisher's own id for the message.
func jetStreamHeader(name string) bool {
	return len(name) >= 5 && strings.EqualFold(name[:5], "Nats-") && !strings.EqualFold(name, "Nats-Msg-Id")
}

// scanStored reads each partition of the bridge's topic back from its end and
// returns the stream sequences above floor that this bridge (this definition) already
// stored. A partition's scan stops at this bridge's first record at or below floor
// (records of one partition are stored in stream order), at the partition's start,
// or after bridgeScanLimit records.
func scanStored(ctx context.Context, r *bridgeRunner, floor uint64) (map[uint64]struct{}, error) {
	t, err := r.c.Admin().Topic(ctx, r.def.Topic)
	if err != nil {
		return nil, fmt.Errorf("read topic %q: %w", r.def.Topic, err)
	}
	rev := strconv.FormatUint(r.def.Revision, 10)
	found := map[uint64]struct{}{}
	var recs []semantics.Record
	for p := int32(0); p < t.Config.Partitions; p++ {
		rd := partition.NewReader(r.h.Conn(), r.def.Topic, p, false)
		st, err := rd.StreamInfo(ctx)
		if err != nil {
			return nil, err
		}
		if st.Leader == "" && len(st.Replicas) > 0 {
			// While the partition elects a leader, JetStream lets a replica
			// answer with its own state, whose last batches may be missing: a
			// scan from there would miss records this bridge stored and store
			// them again. The session starts again once a leader answers.
			return nil, semantics.Errorf(semantics.ErrUnavailable,
				"bridge resuming: partition %d of topic %q has no leader yet; its state may be behind", p, r.def.Topic)
		}
		scanned := 0
	scan:
		for seq := st.LastSeq; seq >= st.FirstSeq && seq > 0 && scanned < bridgeScanLimit; {
			m, err := rd.Get(ctx, seq)
			if errors.Is(err, semantics.ErrNoBatch) || err == nil && m.Seq > seq {
				seq-- // removed (compaction): step over it
				scanned++
				continue
			}
			if err != nil {
				return nil, err
			}
			recs, err = semantics.DecodeRecords(recs[:0], m.Data, r.def.Topic, p)
			if err != nil {
				r.log.Warn("bridge resuming: unreadable batch skipped", "partition", p, "seq", m.Seq, "err", err)
			}
			for i := len(recs) - 1; i >= 0; i-- {
				scanned++
				src, ok := sourceSeq(&recs[i], r.def.Name, rev, r.def.Stream)
				switch {
				case !ok:
				case src <= floor:
					break scan
				default:
					found[src] = struct{}{}
				}
			}
			seq = m.Seq - 1
		}
	}
	return found, nil
}

// sourceSeq returns the stream sequence of a record stored by bridge name (at
// revision rev) from stream, and whether it is one.
func sourceSeq(rec *semantics.Record, name, rev, stream string) (uint64, bool) {
	var b, rv, st, sq []byte
	for _, h := range rec.Headers {
		switch h.Key {
		case semantics.HeaderBridge:
			b = h.Value
		case semantics.HeaderBridgeRev:
			rv = h.Value
		case semantics.HeaderSourceStream:
			st = h.Value
		case semantics.HeaderSourceSeq:
			sq = h.Value
		}
	}
	if string(b) != name || string(rv) != rev || string(st) != stream {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(sq), 10, 64)
	return seq, err == nil
}
