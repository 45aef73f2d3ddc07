// Command comments runs an event-driven comment pipeline in which every stage is a
// consumer group, against a qxd node embedded in the program:
//
//	producer ──> comment_create ──> moderation (2 members) ──┬─> comment_created ──> article-counts
//	                                                         │                   └─> notify-authors
//	                                                         └─> comment_illegal ──> illegal-per-user
//
// It prints each step as it happens, waits until every group's lag is 0, prints a
// summary and shuts down.
//
//	go run ./examples/comments [-comments 40] [-timeout 60s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

func main() {
	n := flag.Int("comments", 40, "how many comments to produce")
	timeout := flag.Duration("timeout", 60*time.Second, "give up if the pipeline has not finished by then")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	_, err := run(ctx, os.Stdout, *n)
	cancel()
	stop()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %v (raise -timeout if the machine is slow): %w", *timeout, err)
		}
		fmt.Fprintln(os.Stderr, "comments:", err)
		os.Exit(1)
	}
}

// The topics. Three partitions each, so the two moderation members have partitions
// to share.
const (
	topicCreate  = "comment_create"
	topicCreated = "comment_created"
	topicIllegal = "comment_illegal"
	partitions   = 3
)

// Summary is what the pipeline computed, and where each group stands at the end.
type Summary struct {
	Produced       int                    // comments sent to comment_create
	Created        int                    // comments counted by article-counts
	Illegal        int                    // comments counted by illegal-per-user
	PerArticle     map[string]int         // article-counts: comments per article
	IllegalPerUser map[string]int         // illegal-per-user: illegal comments per user
	Notifications  map[string]int         // notify-authors: notifications per author
	Groups         []qxd.GroupDescription // each group once every lag was 0
}

// run starts a node, the four stages and the producer of n comments, waits until
// every stage has handled everything, prints the summary and shuts everything down.
func run(ctx context.Context, out io.Writer, n int) (_ Summary, err error) {
	if n < 1 {
		return Summary{}, fmt.Errorf("-comments %d: produce at least 1 comment", n)
	}

	// A node inside the program, as in examples/quickstart. Everything opened below
	// is closed by the deferred calls in reverse order, also when run fails.
	dir, err := os.MkdirTemp("", "qxd-comments-")
	if err != nil {
		return Summary{}, err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0" // any free port
	cfg.DataDir = dir
	node, err := server.Start(ctx, cfg)
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, closeBounded(ctx, node.Close)) }()

	client, err := qxd.Connect(ctx, node.ClientURL())
	if err != nil {
		return Summary{}, err
	}
	defer client.Close()
	admin := client.Admin()
	for _, t := range []string{topicCreate, topicCreated, topicIllegal} {
		if _, err := admin.CreateTopic(ctx, t, qxd.TopicConfig{Partitions: partitions}); err != nil {
			return Summary{}, err
		}
	}

	// Two producers, as two separate services would have: one sends the comments, the
	// other is shared by both moderation members (a Producer is safe for concurrent use).
	input, err := client.NewProducer()
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, closeBounded(ctx, input.Close)) }()
	forwarder, err := client.NewProducer()
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, closeBounded(ctx, forwarder.Close)) }()

	// The stages. Each member runs consume in its own goroutine, owned by run: the
	// deferred call stops them all and waits, before the consumers are closed.
	p := &printer{w: out}
	articleCounts := newCounter("article-counts", p,
		func(c Comment) string { return c.Article },
		func(c Comment, n int) string { return fmt.Sprintf("%s has %d comment(s)", c.Article, n) })
	notifyAuthors := newCounter("notify-authors", p,
		func(c Comment) string { return c.Author },
		func(c Comment, _ int) string {
			return fmt.Sprintf("notify %s: %s commented on %s", c.Author, c.User, c.Article)
		})
	illegalPerUser := newCounter("illegal-per-user", p,
		func(c Comment) string { return c.User },
		func(c Comment, n int) string { return fmt.Sprintf("%s has %d illegal comment(s)", c.User, n) })
	members := []struct {
		group, topic, name string
		handle             handler
	}{
		{"moderation", topicCreate, "moderation#1", moderate(forwarder, "moderation#1", p)},
		{"moderation", topicCreate, "moderation#2", moderate(forwarder, "moderation#2", p)},
		{"article-counts", topicCreated, "article-counts", articleCounts.handle},
		{"notify-authors", topicCreated, "notify-authors", notifyAuthors.handle},
		{"illegal-per-user", topicIllegal, "illegal-per-user", illegalPerUser.handle},
	}
	var consumers []*qxd.Consumer
	defer func() {
		for _, c := range consumers {
			c.Close(context.WithoutCancel(ctx)) // leaves the group at once
		}
	}()
	stageCtx, stopStages := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	stop := func() { stopStages(nil); wg.Wait() }
	defer stop()
	for _, m := range members {
		cons, err := subscribe(ctx, client, m.group, m.topic, m.name, p)
		if err != nil {
			return Summary{}, err
		}
		consumers = append(consumers, cons)
		wg.Go(func() {
			if err := consume(stageCtx, cons, m.name, p, m.handle); err != nil {
				stopStages(err) // ends the run with this error
			}
		})
	}

	// The groups in pipeline order.
	pipeline := []stage{
		{group: "moderation", topic: topicCreate, members: 2},
		{group: "article-counts", topic: topicCreated, members: 1},
		{group: "notify-authors", topic: topicCreated, members: 1},
		{group: "illegal-per-user", topic: topicIllegal, members: 1},
	}
	// Wait until each group has shared out its partitions, so the flow does not
	// start with rebalances (moderation's two members join together).
	for _, s := range pipeline {
		if err := waitAssigned(stageCtx, admin, s); err != nil {
			return Summary{}, err
		}
	}

	// Every comment is keyed by its article: an article's comments keep their order,
	// and moderation reads them in that order. The lines are printed before sending:
	// the stages may see a record before the producer hears that it is stored.
	var recs []*qxd.Record
	for _, c := range comments(n) {
		p.printf("%-18s %-21s #%-3d %s on %s: %q", "producer", topicCreate, c.ID, c.User, c.Article, c.Text)
		recs = append(recs, &qxd.Record{Topic: topicCreate, Key: []byte(c.Article), Value: c.value()})
	}
	if err := input.ProduceSync(ctx, recs...); err != nil {
		return Summary{}, fmt.Errorf("produce %d comments: %w", n, err)
	}

	descs, err := waitDrained(stageCtx, admin, pipeline)
	if err != nil {
		return Summary{}, err
	}
	stop() // the stages' state is final now: read it without locks

	sum := Summary{
		Produced:       n,
		PerArticle:     articleCounts.counts,
		IllegalPerUser: illegalPerUser.counts,
		Notifications:  notifyAuthors.counts,
		Groups:         descs,
	}
	for _, v := range sum.PerArticle {
		sum.Created += v
	}
	for _, v := range sum.IllegalPerUser {
		sum.Illegal += v
	}
	sum.print(out)
	return sum, nil
}

// stage is a consumer group of the pipeline, the topic it reads and its size.
type stage struct {
	group, topic string
	members      int
}

// waitAssigned waits until s's group is Stable with all its members, and they own
// every partition of its topic.
func waitAssigned(ctx context.Context, admin *qxd.Admin, s stage) error {
	return poll(ctx, func() (string, error) {
		d, err := admin.DescribeGroup(ctx, s.group)
		if errors.Is(err, semantics.ErrGroupIDNotFound) {
			// Subscribe returns before the member's join reaches the coordinator.
			return fmt.Sprintf("group %s to be created", s.group), nil
		}
		if err != nil {
			return "", err
		}
		owned := 0
		for _, p := range d.Partitions {
			if p.Topic == s.topic && p.Member != "" {
				owned++
			}
		}
		if d.State != groups.Stable || len(d.Members) < s.members || owned < partitions {
			return fmt.Sprintf("group %s is %s with %d of %d members owning %d of %d partitions",
				s.group, d.State, len(d.Members), s.members, owned, partitions), nil
		}
		return "", nil
	})
}

// waitDrained waits until every group in pipeline has committed everything in its
// topic (lag 0) and returns the groups' descriptions from that moment.
//
// The groups are checked in pipeline order. Moderation commits a batch only after
// storing its output, so once its lag is 0 the high watermarks of the later topics
// count every comment, and a lag of 0 there means those stages are done too.
func waitDrained(ctx context.Context, admin *qxd.Admin, pipeline []stage) ([]qxd.GroupDescription, error) {
	var descs []qxd.GroupDescription
	err := poll(ctx, func() (string, error) {
		descs = descs[:0]
		for _, s := range pipeline {
			d, err := admin.DescribeGroup(ctx, s.group)
			if err != nil {
				return "", err
			}
			rows := 0
			for _, p := range d.Partitions {
				if p.Topic != s.topic {
					continue
				}
				rows++
				if p.Lag > 0 {
					return fmt.Sprintf("group %s lags %d behind on %s/%d", s.group, p.Lag, p.Topic, p.Partition), nil
				}
			}
			if rows < partitions {
				return fmt.Sprintf("group %s has no position on %d of %s's partitions", s.group, partitions-rows, s.topic), nil
			}
			descs = append(descs, d)
		}
		return "", nil
	})
	return descs, err
}

// poll calls check every 50ms until it reports nothing left to wait for (""), it
// fails, or ctx ends; the error then says what was still awaited.
func poll(ctx context.Context, check func() (waitingFor string, err error)) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "the first answer"
	for {
		waitingFor, err := check()
		if waitingFor != "" {
			last = waitingFor
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("still waiting: %s: %w", last, context.Cause(ctx))
		case err != nil:
			return err
		case waitingFor == "":
			return nil
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// print writes the summary. Everything in it is the same on every run with the same
// number of comments.
func (s Summary) print(w io.Writer) {
	fmt.Fprintf(w, "\nsummary: %d comments, %d created, %d illegal\n", s.Produced, s.Created, s.Illegal)
	fmt.Fprintf(w, "  comments per article: %s\n", counts(s.PerArticle))
	fmt.Fprintf(w, "  illegal per user:     %s\n", counts(s.IllegalPerUser))
	fmt.Fprintf(w, "  notifications sent:   %s\n", counts(s.Notifications))
	for _, g := range s.Groups {
		fmt.Fprintf(w, "  group %s: %s, members %d\n", g.Group, g.State, len(g.Members))
		for _, p := range g.Partitions {
			fmt.Fprintf(w, "    %s/%d  committed %3d  high watermark %3d  lag %d\n",
				p.Topic, p.Partition, p.Committed, p.HighWatermark, p.Lag)
		}
	}
}

// counts formats a map as "a 1, b 2" in key order.
func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// closeBounded runs a Close that takes a context with 10 seconds of its own: ctx
// may have ended already (the run timed out or was interrupted).
func closeBounded(ctx context.Context, close func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return close(ctx)
}
