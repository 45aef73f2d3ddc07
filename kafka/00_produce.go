package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// Produce: each partition's records are RecordBatch v2, handed to the partition's
// writer as they came. A client's pipelined requests reach each partition's
// writer in request order: the batches are sent in the read loop, unless the
// request must first ask the transaction coordinator (below) or a partition of
// it still waits for an earlier request's batches to be sent; then they are sent
// from the request's own stage, after those (produceOrder). The answers are
// awaited on the request's own goroutine, and go back in request order, as every
// answer does. acks=1 and acks=all both answer once the partition's replicas
// stored the batch (JetStream acknowledges a quorum): qxd has no weaker
// acknowledgement than all. acks=0 gets no answer. From v10 a partition
// answered NOT_LEADER_OR_FOLLOWER names its leader (KIP-951). v11 (KIP-890 part
// 1) changes nothing on the wire: it lets a broker answer TRANSACTION_ABORTABLE,
// which qxd has no need to. From v12 (KIP-890 part 2, transaction.version 2) a
// transactional produce adds its partitions to the transaction at the
// coordinator before they are appended (addProduced), off the read loop, so
// that the round trip holds no later request of the connection but those to the
// same partitions. v13 (KIP-516) names topics by id: each id is looked up on
// every request, so that a topic deleted and made again is never written under
// the old one's id, and an id no topic has (the zero id too) is
// UNKNOWN_TOPIC_ID for each of its partitions; the answer names topics by id.
func handleProduce(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ctx, cancel := context.WithTimeout(ctx, produceTimeout(req.TimeoutMillis))
	unknownIDs := make([]error, len(req.Topics))
	if req.Version >= 13 {
		unknownIDs = namesByID(ctx, c, req)
	}
	// The partitions to append to, each with its batches; the others are
	// answered with their error now.
	var all []*producePart
	var parts []semantics.TopicPartition
	transactional := false
	for ti, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		resp.Topics = append(resp.Topics, rt)
		for i, tp := range t.Partitions {
			rp := &resp.Topics[len(resp.Topics)-1].Partitions[i]
			rp.Default()
			rp.Partition = tp.Partition
			rp.BaseOffset = -1
			fail := func(code int16, msg string) {
				rp.ErrorCode = code
				rp.ErrorMessage = &msg
			}
			switch {
			case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
				fail(21, fmt.Sprintf("acks %d is not allowed: use 0, 1 or -1 (all)", req.Acks)) // INVALID_REQUIRED_ACKS
				continue
			case unknownIDs[ti] != nil:
				fail(code(unknownIDs[ti]), unknownIDs[ti].Error())
				continue
			}
			batches, err := splitBatches(tp.Records)
			if err != nil {
				fail(code(err), err.Error())
				continue
			}
			tpk := semantics.TopicPartition{Topic: t.Topic, Partition: tp.Partition}
			all = append(all, &producePart{tp: tpk, p: rp, batches: batches})
			parts = append(parts, tpk)
			if req.Version >= 12 && !transactional {
				h, err := semantics.PeekBatchHeader(tp.Records)
				transactional = err == nil && h.Transactional()
			}
		}
	}
	send := func(refused map[semantics.TopicPartition]error) {
		for _, pp := range all {
			if err := refused[pp.tp]; err != nil {
				pp.p.ErrorCode, pp.p.ErrorMessage = code(err), message(err)
				continue
			}
			for _, b := range pp.batches {
				pp.waits = append(pp.waits, c.b.Append(ctx, pp.tp.Topic, pp.tp.Partition, b, req.Acks))
			}
		}
	}
	answer := func() kmsg.Response {
		defer cancel()
		if req.Acks == 0 {
			return nil
		}
		return awaitProduced(ctx, c, req, resp, all)
	}
	before := c.produced.before(parts)
	if !transactional && len(before) == 0 {
		send(nil)
		if req.Acks == 0 {
			cancel()
			return func() kmsg.Response { return nil }
		}
		return answer
	}
	// The coordinator's round trip, and the earlier batches this request's
	// follow, are awaited off the read loop; later requests' batches to these
	// partitions wait for this one's.
	sent := make(chan struct{})
	c.produced.hold(parts, sent)
	return func() kmsg.Response {
		markSent := sync.OnceFunc(func() { close(sent) })
		defer markSent()
		refused := map[semantics.TopicPartition]error{}
		if err := waitAll(ctx, before); err != nil {
			for _, pp := range all {
				refused[pp.tp] = semantics.Errorf(semantics.ErrTimeout,
					"partition %s: not appended in time: an earlier request of the connection to it was still waiting for the transaction coordinator", semantics.PartitionString(pp.tp.Topic, pp.tp.Partition))
			}
		} else if transactional {
			refused = addProduced(ctx, c, req, unknownIDs)
		}
		if req.Version >= 13 {
			renamed(ctx, c, req, unknownIDs, refused)
		}
		send(refused)
		markSent()
		return answer()
	}
}

// producePart is one partition of a produce request being appended.
type producePart struct {
	tp      semantics.TopicPartition
	p       *kmsg.ProduceResponseTopicPartition
	batches [][]byte
	waits   []func() (AppendResult, error)
}

// awaitProduced fills resp with the answers of the partitions' appends.
func awaitProduced(ctx context.Context, c *conn, req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, all []*producePart) kmsg.Response {
	for _, pp := range all {
		for i, wait := range pp.waits {
			r, err := wait()
			if err != nil {
				pp.p.ErrorCode, pp.p.ErrorMessage = code(err), message(err)
				pp.p.BaseOffset = -1
				break
			}
			if i == 0 {
				pp.p.BaseOffset = r.BaseOffset
				pp.p.LogStartOffset = r.LogStart
			}
		}
	}
	if req.Version >= 10 {
		var moved []*kmsg.ProduceResponseTopicPartition
		var topics []string
		for _, pp := range all {
			if pp.p.ErrorCode == semantics.ErrNotLeader.Code {
				moved = append(moved, pp.p)
				topics = append(topics, pp.tp.Topic)
			}
		}
		if len(moved) > 0 {
			// The request's own deadline may have passed (a node woken from a
			// pause answers what it held): the hints get a time of their own.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hintWait)
			leaderHints(hctx, c, resp, moved, topics)
			cancel()
		}
	}
	return resp
}

// produceOrder keeps a connection's batches in request order, partition by
// partition, when a request sends its batches from its own stage rather than
// from the read loop: a later request's batches to one of its partitions are
// sent after its own. It is used by the read loop only.
type produceOrder struct {
	// pending is, by partition, the signal of the last request whose batches
	// to it are not sent yet, closed once they are.
	pending map[semantics.TopicPartition]chan struct{}
}

// before returns the signals of the earlier requests whose batches to any of
// parts are not sent yet.
func (o *produceOrder) before(parts []semantics.TopicPartition) []chan struct{} {
	var out []chan struct{}
	for _, tp := range parts {
		ch, ok := o.pending[tp]
		if !ok {
			continue
		}
		select {
		case <-ch:
			delete(o.pending, tp)
		default:
			if !slices.Contains(out, ch) {
				out = append(out, ch)
			}
		}
	}
	return out
}

// hold records that the batches to parts are sent when sent is closed.
func (o *produceOrder) hold(parts []semantics.TopicPartition, sent chan struct{}) {
	if o.pending == nil {
		o.pending = map[semantics.TopicPartition]chan struct{}{}
	}
	if len(o.pending) > 1024 {
		for tp, ch := range o.pending {
			select {
			case <-ch:
				delete(o.pending, tp)
			default:
			}
		}
	}
	for _, tp := range parts {
		o.pending[tp] = sent
	}
}

// waitAll waits until every channel of chs is closed, or ctx ends.
func waitAll(ctx context.Context, chs []chan struct{}) error {
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// addProduced adds the partitions of a v12 request's transactional batches to
// their transaction at the coordinator, one call per topic, and returns the
// partitions it could not add, with why: they are not appended. It runs on the
// request's stage, before any batch of the request is handed to its writer, so
// that no transactional batch is stored in a partition its transaction does not
// hold (the coordinator would write it no marker).
func addProduced(ctx context.Context, c *conn, req *kmsg.ProduceRequest, unknownIDs []error) map[semantics.TopicPartition]error {
	refused := map[semantics.TopicPartition]error{}
	for ti, t := range req.Topics {
		if unknownIDs[ti] != nil {
			continue
		}
		var parts []semantics.TopicPartition
		var pid int64
		var epoch int16
		for _, tp := range t.Partitions {
			h, err := semantics.PeekBatchHeader(tp.Records)
			if err != nil || !h.Transactional() {
				continue
			}
			parts = append(parts, semantics.TopicPartition{Topic: t.Topic, Partition: tp.Partition})
			pid, epoch = h.ProducerID, h.ProducerEpoch
		}
		if len(parts) == 0 {
			continue
		}
		var err error
		if req.TransactionID == nil || *req.TransactionID == "" {
			err = semantics.Errorf(semantics.ErrInvalidTxnState,
				"topic %q: a transactional batch in a produce request without a transactional id: set the request's transactional id", t.Topic)
		}
		if err == nil {
			err = c.allowTopic(semantics.OpProduce, t.Topic)
		}
		var tb TxnBackend
		if err == nil {
			tb, err = c.txns()
		}
		if err == nil {
			err = tb.AddProducedPartitions(ctx, *req.TransactionID, pid, epoch, parts)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, semantics.ErrProducerFenced) {
			// Produce answers a fenced epoch as INVALID_PRODUCER_EPOCH.
			err = semantics.Errorf(semantics.ErrInvalidProducerEpoch, "%s", err.Error())
		}
		for _, tp := range parts {
			refused[tp] = err
		}
	}
	return refused
}

// namesByID names the topics of a v13 request, which come by id only, for the
// rest of the handling, and returns, by topic, why an id names none: an id no
// topic has now (the zero id, an unknown one, or that of a topic deleted since)
// is UNKNOWN_TOPIC_ID. An id that comes twice is looked up once.
func namesByID(ctx context.Context, c *conn, req *kmsg.ProduceRequest) []error {
	errs := make([]error, len(req.Topics))
	type found struct {
		name string
		err  error
	}
	seen := map[[16]byte]found{}
	for i := range req.Topics {
		t := &req.Topics[i]
		f, ok := seen[t.TopicID]
		if !ok {
			if t.TopicID == ([16]byte{}) {
				f.err = &codeError{code: codeUnknownTopicID, msg: "topic id 0 names no topic: name topics by the ids Metadata answers"}
			} else {
				f.name, f.err = topicByID(ctx, c, t.TopicID)
			}
			seen[t.TopicID] = f
		}
		t.Topic, errs[i] = f.name, f.err
	}
	return errs
}

// renamed looks a v13 request's topic ids up again after the wait for the
// coordinator, and refuses the partitions of a topic whose id no longer names
// the topic it named (deleted, perhaps made again, meanwhile) with
// UNKNOWN_TOPIC_ID: its batches must not reach the topic that has the name now.
func renamed(ctx context.Context, c *conn, req *kmsg.ProduceRequest, unknownIDs []error, refused map[semantics.TopicPartition]error) {
	for i, t := range req.Topics {
		if unknownIDs[i] != nil {
			continue
		}
		name, err := topicByID(ctx, c, t.TopicID)
		if err == nil && name == t.Topic {
			continue
		}
		if err == nil {
			err = &codeError{code: codeUnknownTopicID, msg: fmt.Sprintf("topic id %x now names topic %q, not %q: read the metadata again", t.TopicID, name, t.Topic)}
		}
		for _, tp := range t.Partitions {
			refused[semantics.TopicPartition{Topic: t.Topic, Partition: tp.Partition}] = err
		}
	}
}

// leaderHints tells a producer sent NOT_LEADER_OR_FOLLOWER where each partition's
// leader is now, with its address (KIP-951, Produce v10), so that it can go there
// without reading the metadata first.
//
// A node's view may not name the new leader yet: a node woken from a pause
// learns that it lost a partition before it hears who leads it now, and an
// election may be under way. The answer then waits for a leader, until ctx
// ends (hintWait): without a hint a client reads the metadata again, which
// franz-go does at most every 5 s (its MetadataMinAge). A partition still
// without one gets no hint.
func leaderHints(ctx context.Context, c *conn, resp *kmsg.ProduceResponse, moved []*kmsg.ProduceResponseTopicPartition, topics []string) {
	found := func(parts map[semantics.TopicPartition]PartitionInfo, i int) (PartitionInfo, bool) {
		pi, ok := parts[semantics.TopicPartition{Topic: topics[i], Partition: moved[i].Partition}]
		return pi, ok && !pi.FormerLeader
	}
	var parts map[semantics.TopicPartition]PartitionInfo
	var brokers map[int32]Broker
	for {
		if p, b := leaders(ctx, c, topics); p != nil {
			parts, brokers = p, b
		}
		all := true
		for i := range moved {
			if _, ok := found(parts, i); !ok {
				all = false
			}
		}
		if all {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(hintRetry):
			continue
		}
		break
	}
	told := map[int32]bool{}
	for i, rp := range moved {
		pi, ok := found(parts, i)
		if !ok {
			continue
		}
		rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = pi.Leader, pi.LeaderEpoch
		if b := brokers[pi.Leader]; !told[b.ID] {
			told[b.ID] = true
			rb := kmsg.NewProduceResponseBroker()
			rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
			resp.Brokers = append(resp.Brokers, rb)
		}
	}
}

// hintWait bounds the metadata read that names the new leaders of the
// partitions a produce answers NOT_LEADER_OR_FOLLOWER.
const hintWait = time.Second

// hintRetry is how often a NOT_LEADER_OR_FOLLOWER answer looks again for a
// partition's new leader while it waits for one (leaderHints).
const hintRetry = 100 * time.Millisecond

// produceTimeout is how long a produce request waits for its acknowledgements: the
// client's timeout, at least a second and at most a minute.
func produceTimeout(ms int32) time.Duration {
	return min(max(time.Duration(ms)*time.Millisecond, time.Second), time.Minute)
}

// splitBatches splits a partition's records into its RecordBatches. Every batch
// must be v2 (magic 2): older message formats are refused.
func splitBatches(b []byte) ([][]byte, error) {
	if len(b) == 0 {
		return nil, semantics.Errorf(semantics.ErrCorruptMessage, "produce request without records")
	}
	var out [][]byte
	for len(b) > 0 {
		if len(b) < semantics.BatchHeaderSize {
			return nil, semantics.Errorf(semantics.ErrCorruptMessage, "record batch of %d bytes is shorter than a batch header", len(b))
		}
		if magic := b[16]; magic != 2 {
			return nil, &codeError{code: codeUnsupportedForMsgFormat,
				msg: fmt.Sprintf("message format v%d is not supported: qxd stores RecordBatch v2 (Kafka 0.11 and later clients)", magic)}
		}
		n := int64(binary.BigEndian.Uint32(b[8:])) + 12
		if n < semantics.BatchHeaderSize || n > int64(len(b)) {
			return nil, semantics.Errorf(semantics.ErrCorruptMessage, "record batch length %d does not match the %d bytes sent", n, len(b))
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out, nil
}

// refuseOldProduce answers a Produce v0-v2 (tooOld), whose records are in
// message format v0 or v1: every partition is UNSUPPORTED_FOR_MESSAGE_FORMAT,
// the code Produce v3 and later get for such records, and nothing is stored.
// These versions have no error message to say more. An acks=0 request gets no
// answer (nil).
func refuseOldProduce(kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.ProduceRequest)
	if req.Acks == 0 {
		return nil
	}
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, tp := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.BaseOffset = tp.Partition, codeUnsupportedForMsgFormat, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
