package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/qxd-io/qxd"
)

// handler handles one batch of records that a stage's Poll returned.
type handler func(ctx context.Context, recs []qxd.Record) error

// consume runs one consumer group member until ctx ends: poll a batch, handle it,
// commit. Committing only after handling gives at-least-once processing: records
// whose commit did not happen (the member crashed, or lost its partitions in a
// rebalance first) are handled again by the partition's next owner, so handlers
// must tolerate seeing a record twice.
func consume(ctx context.Context, cons *qxd.Consumer, member string, out *printer, handle handler) error {
	for {
		recs, err := cons.Poll(ctx)
		if ctx.Err() != nil {
			return nil // shutting down
		}
		if err != nil {
			return fmt.Errorf("%s: poll: %w", member, err)
		}
		if len(recs) == 0 {
			continue
		}
		if err := handle(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", member, err)
		}
		if err := cons.Commit(ctx); err != nil && ctx.Err() == nil {
			// Not fatal: whoever owns these partitions next reads the batch again.
			out.printf("%-18s commit failed, the batch will be read again: %v", member, err)
		}
	}
}

// subscribe makes a member of group that reads topic and announces its partitions.
func subscribe(ctx context.Context, client *qxd.Client, group, topic, member string, out *printer) (*qxd.Consumer, error) {
	cons, err := client.NewConsumer(
		qxd.Group(group),
		// consume commits after each handled batch, so turn the periodic
		// auto-commit (default every 5s) off: it could commit records that are
		// polled but not handled yet.
		qxd.AutoCommit(0),
		// Rebalance incrementally: a member keeps its partitions while others
		// join or leave, and the callbacks name only the partitions that move.
		qxd.Assignors("cooperative-sticky"),
		qxd.OnAssigned(func(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
			out.printf("%-18s assigned %v", member, tps)
		}),
		qxd.OnRevoked(func(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
			out.printf("%-18s revoked %v", member, tps)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", member, err)
	}
	if err := cons.Subscribe(ctx, topic); err != nil {
		cons.Close(ctx)
		return nil, fmt.Errorf("%s: subscribe to %s: %w", member, topic, err)
	}
	return cons, nil
}

// moderate is the moderation stage: it checks each comment for forbidden words and
// forwards it, unchanged, to comment_created or comment_illegal.
func moderate(producer *qxd.Producer, member string, out *printer) handler {
	return func(ctx context.Context, recs []qxd.Record) error {
		var batch []*qxd.Record
		for _, r := range recs {
			c, ok := decode(r, member, out)
			if !ok {
				continue
			}
			// Created comments are keyed by article, like the input: an article's
			// comments stay in order on one partition, so the member of a later
			// group that reads that partition holds the article's whole count.
			next := &qxd.Record{Topic: topicCreated, Key: []byte(c.Article), Value: r.Value}
			verdict := "ok"
			if w := forbiddenWord(c.Text); w != "" {
				// Illegal comments are keyed by user instead, since illegal-per-user
				// counts per user: all of a user's illegal comments land on one
				// partition, read by one member. Changing the key between topics is
				// how a Kafka pipeline regroups its data.
				next = &qxd.Record{Topic: topicIllegal, Key: []byte(c.User), Value: r.Value}
				verdict = fmt.Sprintf("illegal (%q)", w)
			}
			batch = append(batch, next)
			out.record(member, r, "#%-3d %s -> %s", c.ID, verdict, next.Topic)
		}
		// Store the whole batch's output before consume commits the input: a crash in
		// between repeats some output, but never loses any.
		if err := producer.ProduceSync(ctx, batch...); err != nil {
			return fmt.Errorf("forward %d comments: %w", len(batch), err)
		}
		return nil
	}
}

// counter is a stage that counts comments by a key: articles, authors notified, or
// users. Each counter group here has one member. With more, each member would count
// only its own partitions; for article-counts and illegal-per-user that still gives
// whole counts, because their topics are keyed by what they count.
type counter struct {
	name   string
	key    func(Comment) string      // what is counted
	say    func(Comment, int) string // the flow line, given the comment and its key's count
	out    *printer
	counts map[string]int
	seen   map[int]bool // comment ids counted: a record read again is not counted twice
}

func newCounter(name string, out *printer, key func(Comment) string, say func(Comment, int) string) *counter {
	return &counter{name: name, key: key, say: say, out: out, counts: map[string]int{}, seen: map[int]bool{}}
}

func (s *counter) handle(_ context.Context, recs []qxd.Record) error {
	for _, r := range recs {
		c, ok := decode(r, s.name, s.out)
		if !ok {
			continue
		}
		if s.seen[c.ID] {
			s.out.record(s.name, r, "#%-3d seen before, skipped", c.ID)
			continue
		}
		s.seen[c.ID] = true
		k := s.key(c)
		s.counts[k]++
		s.out.record(s.name, r, "#%-3d %s", c.ID, s.say(c, s.counts[k]))
	}
	return nil
}

// decode reads a comment from r. A record that is not one is reported and skipped:
// failing would stop the stage on it forever.
func decode(r qxd.Record, member string, out *printer) (Comment, bool) {
	var c Comment
	if err := json.Unmarshal(r.Value, &c); err != nil {
		out.record(member, r, "skipped, not a comment: %v", err)
		return c, false
	}
	return c, true
}

// printer writes the flow lines of every stage, one whole line at a time.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// record prints a line about r, prefixed by who handled it and where r is stored.
func (p *printer) record(who string, r qxd.Record, format string, args ...any) {
	where := fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
	p.printf("%-18s %-21s %s", who, where, fmt.Sprintf(format, args...))
}
