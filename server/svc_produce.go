package server

import (
	"context"

	"github.com/qxd-io/qxd/semantics"
)

// Writers is the produce service of a node: it appends record batches to the
// partitions whose streams this node leads, through their partition writers
// (writer.go), in process. The NATS door (requests on semantics.WriterSubject) and
// a Kafka listener take the same path: what a producer sends is what is stored.
type Writers struct {
	m *writerManager
}

// Append appends batch, one Kafka RecordBatch (v2, base offset 0), to partition p of
// topic and waits until it is stored, or ctx ends. It returns the writer's answer:
// the base offset given to the batch's first record and the append time. A refusal
// is an error with its Kafka code (semantics.CodeOf): NOT_LEADER_OR_FOLLOWER when
// this node runs no writer for the partition (another node leads it, the topic does
// not exist, or its writer is still starting), CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
// the idempotent producer's sequence and epoch errors. Append patches the batch's
// base offset in place: the caller must not use batch afterwards.
func (s *Writers) Append(ctx context.Context, topic string, p int32, batch []byte) (semantics.ProduceReply, error) {
	done := make(chan semantics.ProduceReply, 1)
	s.AppendAsync(topic, p, batch, func(r semantics.ProduceReply) { done <- r })
	select {
	case r := <-done:
		return r, r.Err()
	case <-ctx.Done():
		return semantics.ProduceReply{BaseOffset: -1}, semantics.Errorf(semantics.ErrTimeout,
			"partition %s: append: %v (the batch may still be stored: an idempotent producer resends it safely)",
			semantics.PartitionString(topic, p), ctx.Err())
	}
}

// AppendAsync hands batch to the writer of partition p of topic and returns once it
// is on its way to the stream, so a caller may pipeline batches: those of one
// caller are appended in the order of its calls. done is called once with the
// answer (a non-zero Code is a refusal, see Append), from the writer's goroutine
// and with its lock held: it must not block nor call the service. A nil done asks
// for no answer (Kafka's acks=0). Like Append, it patches the batch's base offset in
// place.
func (s *Writers) AppendAsync(topic string, p int32, batch []byte, done func(semantics.ProduceReply)) {
	to := answer{done: done}
	err := s.check(topic, p)
	var w *writer
	if err == nil {
		if w = s.m.lookup(semantics.StreamName(topic, p)); w == nil {
			err = semantics.Errorf(semantics.ErrNotLeader,
				"partition %s: node has no writer for it: another node leads it, the topic does not exist, or its writer is starting; ask the cluster's metadata and retry",
				semantics.PartitionString(topic, p))
		}
	}
	if err != nil {
		if s.m != nil {
			s.m.env.obs.answered("produce", semantics.CodeOf(err))
		}
		if done != nil {
			done(semantics.ProduceReply{Code: semantics.CodeOf(err), BaseOffset: -1, Detail: err.Error()})
		}
		return
	}
	w.produce(batch, to)
}

// Durability is partition p of topic's durability as its store on this node
// writes now (semantics.DurabilitySync or DurabilityAsync); "" when this node
// runs no writer for the partition or cannot tell. why is set when that is not
// the topic's durability and will not become it: the node cannot set the
// partition's store (a nats-server whose file store qxd does not know).
func (s *Writers) Durability(topic string, p int32) (d, why string) {
	if s.check(topic, p) != nil {
		return "", ""
	}
	w := s.m.lookup(semantics.StreamName(topic, p))
	if w == nil {
		return "", ""
	}
	return w.durability()
}

func (s *Writers) check(topic string, p int32) error {
	if err := semantics.ValidateTopicName(topic); err != nil {
		return err
	}
	if p < 0 || p >= semantics.MaxPartitions {
		return semantics.Errorf(semantics.ErrUnknownTopic, "topic %q: partition %d does not exist", topic, p)
	}
	if s.m == nil {
		return semantics.Errorf(semantics.ErrUnavailable, "partition %s: the node's writers are not started; retry", semantics.PartitionString(topic, p))
	}
	return nil
}
