package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// A partition writer's part in transactions, as a Kafka partition leader's:
//
//   - a transactional batch opens its producer's transaction in the partition at
//     its base offset, unless one is open;
//   - the transaction coordinator ends it with a marker (a control batch, on
//     semantics.ControlSubject), appended through the same pipeline as batches, so
//     it takes the next offset;
//   - the last stable offset (LSO) is the first offset of the earliest open
//     transaction, or the high watermark when none is open; a transaction stays
//     open for readers until its marker is acknowledged;
//   - an abort marker, once acknowledged, adds the transaction to the
//     aborted-transactions index that read-committed fetches return; the abort
//     marker's message carries the transaction's first offset
//     (semantics.TxnFirstHeader), so a writer taking over rebuilds the index from
//     the abort markers alone, and the open transactions from the producer state
//     (checkpoint and replay).

// openTxn is a transaction open in the partition, as readers see it.
type openTxn struct {
	pid   int64
	first int64
}

// markerAppend is what a marker append ends.
type markerAppend struct {
	commit bool
	had    bool  // a transaction was open; first is its first offset
	first  int64 //
}

// checkTxnBatch refuses what producers may not send: control batches (only the
// transaction coordinator writes markers) and transactional batches without a
// producer id or to a compacted topic.
func checkTxnBatch(part string, h semantics.BatchHeader, cfg *semantics.TopicConfig) error {
	switch {
	case h.Control():
		return semantics.Errorf(semantics.ErrInvalidRecord,
			"partition %s: control batches are written by the transaction coordinator only: end a transaction with EndTxn", part)
	case !h.Transactional():
		return nil
	case h.ProducerID < 0:
		return semantics.Errorf(semantics.ErrInvalidRecord,
			"partition %s: a transactional batch needs a producer id: call InitProducerId with a transactional id first", part)
	case cfg.Compact:
		return semantics.Errorf(semantics.ErrInvalidRecord,
			"partition %s: transactions are not supported on compacted topics (an aborted record would replace its key's committed one): produce without a transaction", part)
	}
	return nil
}

// txnBatchLocked records that producer pid appends a transactional batch at the
// writer's next offset. Called with mu held.
func (w *writer) txnBatchLocked(pid int64, ps *producerState) {
	if ps.inTxn {
		return
	}
	ps.inTxn, ps.txnFirst = true, w.next
	w.open = append(w.open, openTxn{pid: pid, first: w.next})
}

// replayMarker applies a stored marker to the producer state a load rebuilds.
func replayMarker(producers map[int64]*producerState, h semantics.BatchHeader, seen time.Time) {
	ps := producers[h.ProducerID]
	if ps == nil || h.ProducerEpoch > ps.epoch {
		ps = bumpedProducer(ps, h.ProducerEpoch, h.BaseOffset)
		producers[h.ProducerID] = ps
	}
	ps.inTxn = false
	ps.seen = seen
}

// bumpedProducer is a producer's state after a marker of a newer epoch: its
// sequences start again at 0. The placeholder batch (sequence -1, which no producer
// sends) carries that into checkpoints.
func bumpedProducer(ps *producerState, epoch int16, offset int64) *producerState {
	if ps == nil {
		ps = &producerState{}
	}
	ps.epoch, ps.lastSeq, ps.recent = epoch, -1, nil
	ps.remember(&recentBatch{baseSeq: -1, lastSeq: -1, baseOffset: offset})
	return ps
}

// openTxns lists the transactions open in producers, oldest first.
func openTxns(producers map[int64]*producerState) []openTxn {
	var open []openTxn
	for id, ps := range producers {
		if ps.inTxn {
			open = append(open, openTxn{pid: id, first: ps.txnFirst})
		}
	}
	slices.SortFunc(open, func(a, b openTxn) int { return cmp.Compare(a.first, b.first) })
	return open
}

// openBefore returns the first offset of producer pid's open transaction when it
// begins before next, for a checkpoint that covers the log up to next. Called with
// mu held.
func (w *writer) openBefore(pid int64, next int64) *int64 {
	for _, o := range w.open {
		if o.pid == pid && o.first < next {
			first := o.first
			return &first
		}
	}
	return nil
}

// abortMarkers reads the abort markers stored in the partition's stream: from
// local, the store of the stream this node leads, when it is set
// (leaderStore.allOn), else, or once this node no longer leads the stream, with
// the leader's gets (partition.Reader.AllOn).
func (w *writer) abortMarkers(ctx context.Context, st partition.StreamState, local *leaderStore) ([]partition.Msg, error) {
	subject := semantics.ControlSubject(w.topic, w.p, false)
	if local != nil {
		markers, err := local.allOn(subject, st)
		if !errors.Is(err, errStoreStopped) {
			w.countLookup(true)
			return markers, err
		}
	}
	w.countLookup(false)
	return w.reader.AllOn(ctx, subject, st)
}

// loadAborted rebuilds the aborted-transactions index from the abort markers
// stored in the partition's stream (abortMarkers).
func (w *writer) loadAborted(ctx context.Context, st partition.StreamState, local *leaderStore) ([]semantics.AbortedTxn, error) {
	markers, err := w.abortMarkers(ctx, st, local)
	if err != nil {
		return nil, err
	}
	var out []semantics.AbortedTxn
	for _, m := range markers {
		h, err := semantics.PeekBatchHeader(m.Data)
		if err != nil {
			continue
		}
		first, err := strconv.ParseInt(m.Header.Get(semantics.TxnFirstHeader), 10, 64)
		if err != nil {
			continue // a marker that ended no open transaction
		}
		out = append(out, semantics.AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset})
	}
	return out, nil
}

// onMarker is the NATS door for transaction markers (semantics.MarkerSubject).
func (w *writer) onMarker(m *nats.Msg) {
	var req semantics.MarkerRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		w.replyErr(answer{subject: m.Reply}, semantics.Errorf(semantics.ErrInvalidRequest, "partition %s: malformed marker request: %v", w.name(), err))
		return
	}
	w.endTxn(req, answer{subject: m.Reply})
}

// onLSO answers a read-committed reader's semantics.StableRequest for the
// partition (semantics.LSOSubject): a read of the writer's memory, on the
// subscription's goroutine. Only the running writer listens, so a request for a
// partition no writer serves (between leaders, or its node down) finds no
// responders at once instead of waiting out its timeout.
func (w *writer) onLSO(m *nats.Msg) {
	var req semantics.StableRequest
	var r semantics.StableReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		r.Error = semantics.NewAPIError(semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err))
	} else {
		r.LastStableOffset, r.Aborted = w.stable(req.From, 0)
	}
	b, _ := json.Marshal(r)
	_ = m.Respond(b)
}

// endTxn writes a transaction marker for producer req.ProducerID: it ends the
// producer's open transaction in the partition, and a marker of a newer epoch also
// fences the producer's older epochs. A marker for a producer with no open
// transaction and no newer epoch is answered at once without an append (base
// offset -1): there is nothing to end. An older epoch is INVALID_PRODUCER_EPOCH.
func (w *writer) endTxn(req semantics.MarkerRequest, to answer) {
	data := semantics.BuildControlBatch(req.ProducerID, req.Epoch, req.Commit, req.CoordinatorEpoch, time.Now())
	h, err := semantics.ParseBatchHeader(data)
	if err != nil {
		w.replyErr(to, err)
		return
	}
	w.in.Lock()
	defer w.in.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.readyLocked(to) {
		return
	}
	ps := w.producers[req.ProducerID]
	switch {
	case ps != nil && req.Epoch < ps.epoch:
		w.replyErr(to, semantics.Errorf(semantics.ErrInvalidProducerEpoch,
			"partition %s: marker for producer %d epoch %d, which epoch %d replaced", w.name(), req.ProducerID, req.Epoch, ps.epoch))
		return
	case (ps == nil || !ps.inTxn) && (ps != nil && req.Epoch == ps.epoch):
		w.reply(to, semantics.ProduceReply{BaseOffset: -1})
		return
	}
	mk := &markerAppend{commit: req.Commit}
	if ps != nil && ps.inTxn {
		mk.had, mk.first = true, ps.txnFirst
		ps.inTxn = false
	}
	if ps == nil || req.Epoch > ps.epoch {
		ps = bumpedProducer(ps, req.Epoch, w.next)
		w.producers[req.ProducerID] = ps
	}
	ps.seen = time.Now()
	pt := part{subject: semantics.ControlSubject(w.topic, w.p, req.Commit), data: data, records: 1, marker: mk}
	w.appendLocked(to, h, nil, nil, []part{pt})
}

// markerStoredLocked applies an acknowledged marker: its transaction is no longer
// open for readers, and an aborted one joins the index. Called with mu held.
func (w *writer) markerStoredLocked(pa *pendingAppend) {
	m := pa.marker
	if !m.had {
		return
	}
	w.open = slices.DeleteFunc(w.open, func(o openTxn) bool { return o.pid == pa.pid && o.first == m.first })
	if !m.commit {
		w.aborted = append(w.aborted, semantics.AbortedTxn{ProducerID: pa.pid, FirstOffset: m.first, LastOffset: pa.base})
	}
}

// stable returns the partition's last stable offset and the aborted transactions
// that end at or after from and begin before the LSO, oldest first; entries
// wholly below logStart are dropped from the index.
func (w *writer) stable(from, logStart int64) (int64, []semantics.AbortedTxn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lso := w.acked.Next
	for _, o := range w.open {
		lso = min(lso, o.first)
	}
	if n := len(w.aborted); n > 0 && w.aborted[0].LastOffset < logStart {
		i := 0
		for i < n && w.aborted[i].LastOffset < logStart {
			i++
		}
		w.aborted = slices.Delete(w.aborted, 0, i)
	}
	var out []semantics.AbortedTxn
	for _, a := range w.aborted {
		if a.LastOffset >= from && a.FirstOffset < lso {
			out = append(out, a)
		}
	}
	return lso, out
}

// ProducerState is one producer's state in a partition, as DescribeProducers
// shows it.
type ProducerState struct {
	ProducerID    int64
	Epoch         int16
	LastSequence  int32
	LastTimestamp int64 // ms
	// TxnStartOffset is the first offset of the producer's open transaction, -1
	// when none is open.
	TxnStartOffset int64
}

// producerStates lists the partition's active producers.
func (w *writer) producerStates() []ProducerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ProducerState, 0, len(w.producers))
	for id, ps := range w.producers {
		s := ProducerState{ProducerID: id, Epoch: ps.epoch, LastSequence: ps.lastSeq, LastTimestamp: ps.seen.UnixMilli(), TxnStartOffset: -1}
		if ps.inTxn {
			s.TxnStartOffset = ps.txnFirst
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ProducerState) int { return cmp.Compare(a.ProducerID, b.ProducerID) })
	return out
}
