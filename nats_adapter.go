package qxd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// RecordMsg builds the plain NATS message a record is delivered as, by egress
// bridges and by SubscribeHandler: Data is the value; the record's headers are
// carried over (those NATS cannot carry, with line breaks or bad names, are left
// out), and Qxd-Topic, Qxd-Partition, Qxd-Offset and the key (Qxd-Key, or Qxd-Key-B64
// for a key that is not printable text; neither for a record without key) are added.
func RecordMsg(subject string, r *Record) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = r.Value
	for _, h := range r.Headers {
		if semantics.HeaderNameSafe(h.Key) && semantics.HeaderValueSafe(string(h.Value)) {
			m.Header.Add(h.Key, string(h.Value))
		}
	}
	m.Header.Set(semantics.HeaderTopic, r.Topic)
	m.Header.Set(semantics.HeaderPartition, strconv.Itoa(int(r.Partition)))
	m.Header.Set(semantics.HeaderOffset, strconv.FormatInt(r.Offset, 10))
	switch {
	case r.Key == nil:
	case semantics.HeaderValueSafe(string(r.Key)):
		m.Header.Set(semantics.HeaderKey, string(r.Key))
	default:
		m.Header.Set(semantics.HeaderKeyB64, base64.StdEncoding.EncodeToString(r.Key))
	}
	return m
}

// HandlerSubscription feeds a topic's records to a nats.MsgHandler as a member of a
// consumer group. Stop it with Close.
type HandlerSubscription struct {
	cons   *Consumer
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// SubscribeHandler attaches an existing NATS message handler to topic as a member of
// group, with the group's semantics: each partition is handled by one member at a
// time, in offset order, and after a rebalance or restart the group resumes from its
// committed offsets. h is called with one *nats.Msg per record, built by RecordMsg;
// its Subject is the NATS subject the record was bridged from (the Qxd-Subject
// header an ingest bridge stores), or else the topic's name. After each polled batch
// the offsets of the records h returned from are committed (at-least-once: a record
// whose handler ran but was not yet committed when the member died is handled again).
// h runs on one goroutine. opts are consumer options (SessionTimeout, AutoOffsetReset,
// …); auto-commit is off.
func (c *Client) SubscribeHandler(ctx context.Context, group, topic string, h nats.MsgHandler, opts ...ConsumerOption) (*HandlerSubscription, error) {
	if h == nil {
		return nil, semantics.Errorf(semantics.ErrInvalidRequest, "subscribe handler to topic %q: the handler is nil", topic)
	}
	all := append([]ConsumerOption{}, opts...)
	all = append(all, Group(group), AutoCommit(0))
	cons, err := c.NewConsumer(all...)
	if err != nil {
		return nil, fmt.Errorf("subscribe handler to topic %q in group %q: %w", topic, group, err)
	}
	// The subscription lasts until Close, not until ctx ends.
	if err := cons.Subscribe(context.WithoutCancel(ctx), topic); err != nil {
		cons.Close(ctx)
		return nil, fmt.Errorf("subscribe handler to topic %q in group %q: %w", topic, group, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s := &HandlerSubscription{cons: cons, cancel: cancel, done: make(chan struct{})}
	go s.loop(lctx, topic, h)
	return s, nil
}

func (s *HandlerSubscription) loop(ctx context.Context, topic string, h nats.MsgHandler) {
	defer close(s.done)
	for {
		recs, err := s.cons.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.setErr(err)
			if errors.Is(err, ErrConsumerClosed) {
				return
			}
			// A fatal group error repeats on every Poll: stop instead of spinning.
			if s.cons.fatalErr() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		handled := map[TopicPartition]int64{}
		for i := range recs {
			if ctx.Err() != nil {
				break
			}
			r := &recs[i]
			subject := topic
			for _, hd := range r.Headers {
				if hd.Key == semantics.HeaderSubject && len(hd.Value) > 0 {
					subject = string(hd.Value)
				}
			}
			h(RecordMsg(subject, r))
			handled[TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
		}
		if len(handled) > 0 {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.cons.CommitOffsets(cctx, handled); err != nil {
				s.setErr(err) // a rebalance took the partitions; the next owner resumes from the last commit
			}
			cancel()
		}
	}
}

func (s *HandlerSubscription) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// Err returns the last error the subscription met (a failed poll or commit), nil if
// none. Most are transient: the subscription carries on.
func (s *HandlerSubscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// handlerCloseTimeout bounds HandlerSubscription.Close's commit and leave.
const handlerCloseTimeout = 10 * time.Second

// Close stops calling the handler (after the call in progress), commits what it
// handled and leaves the group, within 10s. It is idempotent.
func (s *HandlerSubscription) Close() error {
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), handlerCloseTimeout)
	defer cancel()
	return s.cons.Close(ctx)
}
