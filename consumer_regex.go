// Regex subscription (Kafka's subscribe(Pattern), kgo's ConsumeRegex): the topics
// whose names match a pattern, now and as topics are created and deleted, looked
// for every MetadataMaxAge.

package qxd

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// topicMatcher is a regex subscription: the topics it matches and their partition
// counts as of the last look.
type topicMatcher struct {
	res    []*regexp.Regexp
	counts map[string]int32 // partition count of each topic matched when subscribing
}

// compileTopicPatterns compiles patterns, each matched against whole topic names.
func compileTopicPatterns(patterns []string) (*topicMatcher, error) {
	if len(patterns) == 0 {
		return nil, semantics.Errorf(semantics.ErrInvalidRequest, "subscribe: no topic patterns given")
	}
	tm := &topicMatcher{}
	for _, p := range patterns {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return nil, semantics.Errorf(semantics.ErrInvalidRequest, "subscribe: topic pattern %q is not a valid regular expression (Go syntax): %v", p, err)
		}
		tm.res = append(tm.res, re)
	}
	return tm, nil
}

// match lists the ready topics whose names match, with their partition counts;
// topics the client may not consume are left out.
func (tm *topicMatcher) match(ctx context.Context, c *Client) (map[string]semantics.TopicMeta, error) {
	all, err := c.Admin().ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]semantics.TopicMeta{}
	for _, t := range all {
		if t.State != semantics.TopicReady || !slices.ContainsFunc(tm.res, func(re *regexp.Regexp) bool { return re.MatchString(t.Name) }) {
			continue
		}
		if c.authorizeTopic(ctx, semantics.OpConsume, t.Name) != nil {
			continue
		}
		out[t.Name] = t
	}
	return out, nil
}

// partitionCounts maps each topic to its partition count.
func partitionCounts(ts map[string]semantics.TopicMeta) map[string]int32 {
	out := make(map[string]int32, len(ts))
	for n, t := range ts {
		out[n] = t.Config.Partitions
	}
	return out
}

// SubscribeRegex reads the topics whose names match any of patterns (Go regexp
// syntax, each matched against the whole name, as Kafka's subscribe(Pattern)),
// now and later: every MetadataMaxAge the consumer lists the topics again, and
// reads topics created since and partitions added since, and stops reading deleted
// topics. Topics the client may not consume are left out.
//
// In a group (Group) it is Subscribe for the matching topics: when they change,
// the member rejoins with them, and the group shares their partitions. Without a
// group the consumer reads every partition of the matching topics itself, from the
// reset policy's start (AutoOffsetReset). Calling it again replaces the patterns; a
// consumer without a group stops reading topics the new patterns leave out. ctx
// bounds the subscription: in a group, the membership, as Subscribe's does;
// without one, the looking for new topics (the partitions found stay assigned).
func (c *Consumer) SubscribeRegex(ctx context.Context, patterns ...string) error {
	tm, err := compileTopicPatterns(patterns)
	if err != nil {
		return err
	}
	matched, err := tm.match(ctx, c.c)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", strings.Join(patterns, ", "), err)
	}
	if c.cfg.group.id != "" {
		if err := c.c.authorizeTopic(ctx, semantics.OpGroup, c.cfg.group.id); err != nil {
			return err
		}
		tm.counts = partitionCounts(matched)
		return c.subscribe(ctx, slices.Sorted(maps.Keys(matched)), tm)
	}
	return c.assignMatching(ctx, tm, matched)
}

// watchTopics looks for the topics tm matches every MetadataMaxAge, until ctx
// ends, and calls changed with them when the topics or their partition counts
// differ from the last look.
func (c *Consumer) watchTopics(ctx context.Context, tm *topicMatcher, last map[string]int32, changed func(context.Context, map[string]semantics.TopicMeta)) {
	t := time.NewTicker(c.cfg.metadataMaxAge)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		matched, err := tm.match(ctx, c.c)
		if err != nil {
			c.c.log.Debug("topic list for a regex subscription failed", "err", err)
			continue
		}
		if counts := partitionCounts(matched); !maps.Equal(counts, last) {
			last = counts
			changed(ctx, matched)
		}
	}
}

// regexAssign is a regex subscription without a group: its watch, and how to end it.
type regexAssign struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// assignMatching reads every partition of matched, and starts the watch that
// keeps the consumer's partitions those of the topics tm matches.
func (c *Consumer) assignMatching(ctx context.Context, tm *topicMatcher, matched map[string]semantics.TopicMeta) error {
	c.stopRegexAssign()
	if err := c.syncMatching(ctx, matched); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	ra := &regexAssign{cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return ErrConsumerClosed
	}
	c.regex = ra
	c.mu.Unlock()
	stopAfter := context.AfterFunc(ctx, cancel)
	go func() {
		defer close(ra.done)
		defer stopAfter()
		c.watchTopics(wctx, tm, partitionCounts(matched), func(ctx context.Context, matched map[string]semantics.TopicMeta) {
			if err := c.syncMatching(ctx, matched); err != nil {
				c.c.log.Debug("regex subscription could not start a new partition", "err", err)
			}
		})
	}()
	return nil
}

// syncMatching makes the consumer read every partition of matched and no other:
// new partitions start at the reset policy's start, partitions it reads already go
// on.
func (c *Consumer) syncMatching(ctx context.Context, matched map[string]semantics.TopicMeta) error {
	c.mu.Lock()
	var as []Assignment
	for name, t := range matched {
		for p := range t.Config.Partitions {
			if pc, ok := c.parts[TopicPartition{Topic: name, Partition: p}]; !ok || pc.meta.ID != t.ID {
				as = append(as, Assignment{Topic: name, Partition: p, Offset: c.cfg.defaultStart()})
			}
		}
	}
	c.mu.Unlock()
	rs, err := c.resolveAll(ctx, as, true)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrConsumerClosed
	}
	for tp, pc := range c.parts {
		if t, ok := matched[tp.Topic]; !ok || t.ID != pc.meta.ID {
			pc.halt()
			delete(c.parts, tp)
		}
	}
	c.addLocked(rs)
	c.wake()
	return nil
}

// stopRegexAssign ends a regex subscription without a group, if there is one.
func (c *Consumer) stopRegexAssign() {
	c.mu.Lock()
	ra := c.regex
	c.regex = nil
	c.mu.Unlock()
	if ra != nil {
		ra.cancel()
		<-ra.done
	}
}

// topicsChanged makes a member whose regex subscription matches other topics, or
// whose topics' partition counts changed, rejoin with them.
func (m *member) topicsChanged(_ context.Context, matched map[string]semantics.TopicMeta) {
	m.c.mu.Lock()
	m.topics = slices.Sorted(maps.Keys(matched))
	m.c.mu.Unlock()
	m.c.c.log.Debug("regex subscription changed: rejoining", "group", m.cfg.id)
	select {
	case m.rejoin <- struct{}{}:
	default:
	}
}
