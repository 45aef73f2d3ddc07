package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// Produce: each partition's records are RecordBatch v2, handed to the partition's
// writer as they came. The batches are sent in the read loop, in request order,
// so a client's pipelined requests reach the writer in order; the answers are
// awaited on the request's own goroutine. acks=1 and acks=all both answer once the
// partition's replicas stored the batch (JetStream acknowledges a quorum): qxd has
// no weaker acknowledgement than all. acks=0 gets no answer. From v10 a
// partition answered NOT_LEADER_OR_FOLLOWER names its leader (KIP-951). v11
// (KIP-890 part 1) changes nothing on the wire: it lets a broker answer
// TRANSACTION_ABORTABLE, which qxd has no need to. From v12 (KIP-890 part 2,
// transaction.version 2) a transactional produce adds its partitions to the
// transaction at the coordinator before they are appended (addProduced). v13
// (KIP-516) names topics by id: each id is looked up on every request, so that
// a topic deleted and made again is never written under the old one's id, and
// an id no topic has (the zero id too) is UNKNOWN_TOPIC_ID for each of its
// partitions; the answer names topics by id.
func handleProduce(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type pending struct {
		topic string
		p     *kmsg.ProduceResponseTopicPartition
		waits []func() (AppendResult, error)
	}
	var all []pending
	ctx, cancel := context.WithTimeout(ctx, produceTimeout(req.TimeoutMillis))
	unknownIDs := make([]error, len(req.Topics))
	if req.Version >= 13 {
		unknownIDs = namesByID(ctx, c, req)
	}
	refused := map[semantics.TopicPartition]error{}
	if req.Version >= 12 {
		refused = addProduced(ctx, c, req, unknownIDs)
	}
	for ti, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for i, tp := range t.Partitions {
			rp := &rt.Partitions[i]
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
			if err == nil {
				err = refused[semantics.TopicPartition{Topic: t.Topic, Partition: tp.Partition}]
			}
			if err != nil {
				fail(code(err), err.Error())
				continue
			}
			var waits []func() (AppendResult, error)
			for _, b := range batches {
				waits = append(waits, c.b.Append(ctx, t.Topic, tp.Partition, b, req.Acks))
			}
			all = append(all, pending{topic: t.Topic, p: rp, waits: waits})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Acks == 0 {
		cancel()
		return func() kmsg.Response { return nil }
	}
	return func() kmsg.Response {
		defer cancel()
		for _, pd := range all {
			for i, wait := range pd.waits {
				r, err := wait()
				if err != nil {
					pd.p.ErrorCode, pd.p.ErrorMessage = code(err), message(err)
					pd.p.BaseOffset = -1
					break
				}
				if i == 0 {
					pd.p.BaseOffset = r.BaseOffset
					pd.p.LogStartOffset = r.LogStart
				}
			}
		}
		if req.Version >= 10 {
			var moved []*kmsg.ProduceResponseTopicPartition
			var topics []string
			for _, pd := range all {
				if pd.p.ErrorCode == semantics.ErrNotLeader.Code {
					moved = append(moved, pd.p)
					topics = append(topics, pd.topic)
				}
			}
			if len(moved) > 0 {
				leaderHints(ctx, c, resp, moved, topics)
			}
		}
		return resp
	}
}

// addProduced adds the partitions of a v12 request's transactional batches to
// their transaction at the coordinator, one call per topic, and returns the
// partitions it could not add, with why: they are not appended. It runs in the
// read loop, before any batch of the request is handed to its writer, so that
// no transactional batch is stored in a partition its transaction does not
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

// leaderHints tells a producer sent NOT_LEADER_OR_FOLLOWER where each partition's
// leader is now, with its address (KIP-951, Produce v10), so that it can go there
// without reading the metadata first.
func leaderHints(ctx context.Context, c *conn, resp *kmsg.ProduceResponse, moved []*kmsg.ProduceResponseTopicPartition, topics []string) {
	parts, brokers := leaders(ctx, c, topics)
	told := map[int32]bool{}
	for i, rp := range moved {
		pi, ok := parts[semantics.TopicPartition{Topic: topics[i], Partition: rp.Partition}]
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
