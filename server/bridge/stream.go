package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// Ingest bridges that read a JetStream stream (--from-stream, or --capture, where the
// bridge creates the stream): how the stream and the consumer are made and checked.
// The runner is in stream_run.go.

const (
	// bridgeAckWait is how long a message taken stays unacknowledged before
	// JetStream delivers it again: long, since a runner acknowledges a message only
	// once its record is stored, and a new runner resets the consumer to its ack
	// floor anyway.
	bridgeAckWait = 2 * time.Minute
	// bridgeMaxAckPending bounds the messages taken and not yet stored.
	bridgeMaxAckPending = 2048
	// bridgePinnedTTL is how long the consumer stays pinned to a runner that stopped
	// pulling (its node died): the pause before another runner takes over.
	bridgePinnedTTL = 5 * time.Second
	// captureMaxBytes bounds a capture stream. It holds only the messages not yet
	// stored in the topic (work-queue retention); when full, JetStream publishers
	// get an error (discard new) instead of losing older messages.
	captureMaxBytes = 1 << 30
	// captureHeadroom is kept free below the topic's max message bytes in a capture
	// stream's max message size, for the headers the bridge adds to each record.
	captureHeadroom = 1024
)

// streamSource reports whether b is an ingest bridge reading a stream.
func streamSource(b semantics.Bridge) bool {
	return b.Kind == semantics.BridgeIngest && b.Stream != ""
}

// sourcePatterns returns the subject patterns an ingest bridge takes messages from:
// its pattern, or its filter, or the subjects of the stream it reads (nil when they
// cannot be read).
func (s *service) sourcePatterns(ctx context.Context, b semantics.Bridge) []string {
	switch {
	case b.Kind != semantics.BridgeIngest:
		return nil
	case b.Stream == "" || b.Capture:
		return []string{b.From}
	case b.Filter != "":
		return []string{b.Filter}
	}
	st, err := s.h.JetStream().Stream(ctx, b.Stream)
	if err != nil {
		return nil
	}
	return st.CachedInfo().Config.Subjects
}

// checkSource checks an ingest bridge's source against what exists: the stream it
// reads, the streams a capture stream would overlap, and the other ingest bridges.
// It returns the source's subject patterns.
func (s *service) checkSource(ctx context.Context, b semantics.Bridge, existing []semantics.Bridge) ([]string, error) {
	bad := func(format string, args ...any) error {
		return semantics.Errorf(semantics.ErrInvalidConfig, "bridge %q: "+format, append([]any{b.Name}, args...)...)
	}
	unavailable := func(err error) error {
		return semantics.Errorf(semantics.ErrUnavailable, "bridge %q: read JetStream's streams: %v; retry", b.Name, err)
	}
	switch {
	case !streamSource(b):
		// A core NATS bridge must not take what a capture bridge's stream stores: each
		// message would be stored twice, and requests would get two replies.
		for _, o := range existing {
			if o.Capture && semantics.SubjectsOverlap(b.From, o.From) {
				return nil, bad("pattern %q overlaps %q, which capture bridge %q stores in its stream %s: choose subjects that do not overlap, or read that stream",
					b.From, o.From, o.Name, o.Stream)
			}
		}
		return []string{b.From}, nil

	case b.Capture:
		for _, o := range existing {
			if o.Kind == semantics.BridgeIngest && o.Stream == "" && semantics.SubjectsOverlap(b.From, o.From) {
				return nil, bad("pattern %q overlaps %q, which core NATS bridge %q takes: a message would be stored twice and a request answered twice; choose subjects that do not overlap",
					b.From, o.From, o.Name)
			}
		}
		lister := s.h.JetStream().ListStreams(ctx)
		for info := range lister.Info() {
			if info.Config.Name == b.Stream {
				return nil, bad("stream %s already exists (left by an earlier bridge of that name?): delete it with 'nats stream rm %s', or choose another bridge name",
					b.Stream, b.Stream)
			}
			for _, subj := range info.Config.Subjects {
				if semantics.SubjectsOverlap(b.From, subj) {
					return nil, bad("pattern %q overlaps the subjects %q of stream %s, and JetStream lets one stream store a subject: read that stream with --from-stream %s --filter %s instead of --capture",
						b.From, subj, info.Config.Name, info.Config.Name, b.From)
				}
			}
		}
		if err := lister.Err(); err != nil {
			return nil, unavailable(err)
		}
		return []string{b.From}, nil
	}

	st, err := s.h.JetStream().Stream(ctx, b.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, bad("stream %q does not exist: create it first, or give --from PATTERN --capture to have the bridge create a stream on PATTERN", b.Stream)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	subjects := st.CachedInfo().Config.Subjects
	for _, subj := range subjects {
		if r := semantics.ReservedOverlap(subj); r != "" {
			return nil, bad("stream %q stores %q, which overlaps %s, used by qxd or NATS itself: a bridge reads streams of application subjects only", b.Stream, subj, r)
		}
	}
	patterns := subjects
	if b.Filter != "" {
		within := len(subjects) == 0 // a mirror or sourcing stream has no subjects of its own
		for _, subj := range subjects {
			within = within || semantics.SubjectsOverlap(b.Filter, subj)
		}
		if !within {
			return nil, bad("filter %q matches none of stream %q's subjects %q: give a filter within them", b.Filter, b.Stream, subjects)
		}
		patterns = []string{b.Filter}
	}
	if k, err := semantics.ParseKeySpec(b.Key); err == nil && k.Kind == semantics.KeyFromToken {
		for _, p := range patterns {
			if n := len(strings.Split(p, ".")); k.Token > n {
				return nil, bad("key token:%d is beyond the subjects %q of stream %q, which have %d tokens: use token:1 to token:%d, or a --filter with more tokens",
					k.Token, p, b.Stream, n, n)
			}
		}
	}
	return patterns, nil
}

// createSource creates what a stream-reading bridge needs before its definition is
// stored: the capture stream (Capture) and the durable consumer. On error nothing
// is left behind.
func (s *service) createSource(ctx context.Context, b semantics.Bridge, t semantics.TopicMeta) error {
	if b.Capture {
		cfg := jetstream.StreamConfig{
			Name:        b.Stream,
			Description: fmt.Sprintf("qxd capture stream of bridge %s into topic %s", b.Name, b.Topic),
			Subjects:    []string{b.From},
			Storage:     jetstream.FileStorage,
			Replicas:    s.h.Replicas(),
			Retention:   jetstream.WorkQueuePolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    captureMaxBytes,
			MaxMsgSize:  max(t.Config.MaxMessageBytes-captureHeadroom, 1024),
		}
		if _, err := s.h.JetStream().CreateStream(ctx, cfg); err != nil {
			return semantics.Errorf(semantics.ErrInvalidConfig, "bridge %q: create capture stream %s on %q: %v", b.Name, b.Stream, b.From, err)
		}
	}
	if err := s.createConsumer(ctx, b); err != nil {
		if b.Capture {
			_ = s.h.JetStream().DeleteStream(context.WithoutCancel(ctx), b.Stream)
		}
		return err
	}
	return nil
}

func (s *service) createConsumer(ctx context.Context, b semantics.Bridge) error {
	name := semantics.BridgeConsumer(b.Name)
	// A consumer left by an earlier bridge of the same name holds that bridge's
	// position: start afresh.
	if err := s.h.JetStream().DeleteConsumer(ctx, b.Stream, name); err == nil {
		s.log.Info("deleted the consumer an earlier bridge left", "bridge", b.Name, "stream", b.Stream, "consumer", name)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        name,
		Description:    fmt.Sprintf("qxd bridge %s into topic %s", b.Name, b.Topic),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        bridgeAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  bridgeMaxAckPending,
		FilterSubject:  b.Filter,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{semantics.BridgePriorityGroup},
		PinnedTTL:      bridgePinnedTTL,
	}
	if b.Start == semantics.BridgeStartEnd {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if _, err := s.h.JetStream().CreateConsumer(ctx, b.Stream, cfg); err != nil {
		return semantics.Errorf(semantics.ErrInvalidConfig, "bridge %q: create consumer %s on stream %q: %v", b.Name, name, b.Stream, err)
	}
	return nil
}

// deleteSource removes what createSource made: the consumer, and the capture stream
// if the bridge created one. It runs once the bridge's runner has stopped (bounded).
func (s *service) deleteSource(ctx context.Context, b semantics.Bridge) {
	if !streamSource(b) {
		return
	}
	deadline := time.Now().Add(bridgeStartWait)
	for s.status(ctx, b.Name, 250*time.Millisecond) != nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if b.Capture {
		if err := s.h.JetStream().DeleteStream(ctx, b.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			s.log.Warn("capture stream of a deleted bridge not deleted; delete it with 'nats stream rm'",
				"bridge", b.Name, "stream", b.Stream, "err", err)
		}
		return
	}
	name := semantics.BridgeConsumer(b.Name)
	if err := s.h.JetStream().DeleteConsumer(ctx, b.Stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) &&
		!errors.Is(err, jetstream.ErrStreamNotFound) {
		s.log.Warn("consumer of a deleted bridge not deleted; delete it with 'nats consumer rm'",
			"bridge", b.Name, "stream", b.Stream, "consumer", name, "err", err)
	}
}
