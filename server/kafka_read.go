package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// Kafka fetches read a partition's stored batches with JetStream's batched direct
// get: one request returns every batch from a sequence up to a byte limit, where
// the node's fetch service asks for them one by one. A Kafka consumer fetches where
// its last fetch ended, so the listener remembers, per partition, the sequence that
// follows the offset it last answered up to, and skips the binary search then.

// kafkaReadBatchMax bounds the batches of one batched get; kafkaReadTimeout the
// wait for its answer.
const (
	kafkaReadBatchMax = 1000
	kafkaReadTimeout  = 10 * time.Second
)

// readPos is where a partition's last Kafka fetch ended: the offset the next
// record has, and the sequence of the batch that holds it.
type readPos struct {
	topicID string
	offset  int64
	seq     uint64
}

// kafkaReads remembers readPos per partition stream.
type kafkaReads struct {
	mu  sync.Mutex
	pos map[string]readPos
}

func (k *kafkaReads) get(stream, topicID string, offset int64) (uint64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.pos[stream]
	if !ok || p.topicID != topicID || p.offset != offset {
		return 0, false
	}
	return p.seq, true
}

func (k *kafkaReads) put(stream string, p readPos) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pos == nil {
		k.pos = map[string]readPos{}
	}
	k.pos[stream] = p
}

type directBatchRequest struct {
	Seq      uint64 `json:"seq"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes"`
	UpToSeq  uint64 `json:"up_to_seq,omitempty"`
}

// Read implements kafka.Backend: stored batches from the one holding offset, as
// stored, each checked against its CRC (a batch that fails ends the read; read
// from it alone, it is an error), until they pass maxBytes.
func (b *kafkaBackend) Read(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (kafka.ReadResult, error) {
	t, err := b.partition(ctx, topic, p)
	if err != nil {
		return kafka.ReadResult{}, err
	}
	part := semantics.PartitionString(topic, p)
	// The leader's offsets, as the fetch service reads them: a replica's high
	// watermark may be below what a consumer already read, which would be answered
	// OFFSET_OUT_OF_RANGE. The batches may come from any replica (direct gets): one
	// a little behind answers fewer of them.
	r, offs, err := b.offsetsFrom(ctx, topic, p, false)
	if err != nil {
		return kafka.ReadResult{}, fmt.Errorf("fetch %s: read its offsets: %w", part, err)
	}
	res := kafka.ReadResult{LogStart: offs.LogStart, HighWatermark: offs.HighWatermark}
	if offset < offs.LogStart || offset > offs.HighWatermark {
		return res, semantics.Errorf(semantics.ErrOffsetOutOfRange,
			"fetch %s: offset %d is out of range: the partition holds offsets %d (the log start) to %d (the high watermark)",
			part, offset, offs.LogStart, offs.HighWatermark)
	}
	if offset == offs.HighWatermark || offs.Msgs == 0 {
		return res, nil
	}
	stream := semantics.StreamName(topic, p)
	seq, hit := b.reads.get(stream, t.ID, offset)
	if !hit || seq < offs.FirstSeq || seq > offs.LastSeq {
		found := false
		if seq, found, err = semantics.FindOffset(ctx, r, offs.FirstSeq, offs.LastSeq, offset); err != nil {
			return res, fmt.Errorf("fetch %s: find the batch of offset %d: %w", part, offset, err)
		}
		if !found {
			seq = offs.FirstSeq
		}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultFetchMaxBytes
	}
	msgs, err := b.directBatch(ctx, r, directBatchRequest{Seq: seq, NextFor: semantics.StreamSubject(topic, p),
		Batch: kafkaReadBatchMax, MaxBytes: maxBytes, UpToSeq: offs.LastSeq})
	if err != nil {
		return res, fmt.Errorf("fetch %s: read from sequence %d: %w", part, seq, err)
	}
	size := 0
	var next readPos
	for i, m := range msgs {
		if i > 0 && size+len(m.data) > maxBytes {
			break
		}
		h, err := semantics.ParseBatchHeader(m.data)
		if err != nil {
			if i > 0 {
				break // the next fetch starts at it, and fails
			}
			return res, fmt.Errorf("fetch %s: sequence %d: %w", part, m.seq, err)
		}
		if i == 0 && hit && h.BaseOffset != offset {
			// The remembered sequence no longer holds offset (the partition was
			// trimmed or made again): search.
			b.reads.put(stream, readPos{})
			return b.Read(ctx, topic, p, offset, maxBytes)
		}
		res.Batches = append(res.Batches, m.data)
		size += len(m.data)
		next = readPos{topicID: t.ID, offset: h.LastOffset() + 1, seq: m.seq + 1}
	}
	if next.topicID != "" {
		b.reads.put(stream, next)
	}
	return res, nil
}

type directMsg struct {
	seq  uint64
	data []byte
}

// directBatch sends a batched direct get and collects its messages until the
// end-of-batch marker.
func (b *kafkaBackend) directBatch(ctx context.Context, r *partition.Reader, req directBatchRequest) ([]directMsg, error) {
	inbox := b.nc.NewRespInbox()
	ch := make(chan *nats.Msg, kafkaReadBatchMax+1)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	body, _ := json.Marshal(req)
	if err := b.nc.PublishRequest(semantics.Subject(semantics.JSDirectGetPrefix, r.Stream), inbox, body); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, kafkaReadTimeout)
	defer cancel()
	var out []directMsg
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 {
				switch st := m.Header.Get("Status"); st {
				case "204": // end of batch
					return out, nil
				case "404": // nothing at or after seq
					return out, nil
				case "":
				default:
					return out, fmt.Errorf("%s %s", st, m.Header.Get("Description"))
				}
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return out, errors.New("batched read: bad sequence header")
			}
			out = append(out, directMsg{seq: seq, data: m.Data})
			if len(out) >= req.Batch {
				return out, nil
			}
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
