package qxd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestSubscribeRegex subscribes to a pattern, in a group and without one: the
// consumer reads the matching topics and no other (the pattern matches whole
// names), then a matching topic created later, found at the next metadata
// refresh. A pattern that does not compile is refused, naming it.
func TestSubscribeRegex(t *testing.T) {
	t.Parallel()
	for _, group := range []string{"", "regex-group"} {
		name := "without a group"
		if group != "" {
			name = "in a group"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := qxdtest.StartNode(t)
			c := qxdtest.Connect(t, n)
			ctx := qxdtest.Context(t, 60*time.Second)
			p, err := c.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			produce := func(topic string, partitions int32) {
				t.Helper()
				qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
				for part := range partitions {
					if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: part, Value: []byte(topic)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			produce("re-a", 2)
			produce("other", 1)
			produce("xre-a", 1)

			opts := []qxd.ConsumerOption{qxd.MetadataMaxAge(200 * time.Millisecond)}
			if group != "" {
				opts = append(opts, qxd.Group(group), qxd.SessionTimeout(6*time.Second), qxd.HeartbeatInterval(300*time.Millisecond))
			}
			cons := qxdtest.NewConsumer(t, c, opts...)
			if err := cons.SubscribeRegex(ctx, "re-("); err == nil || !strings.Contains(err.Error(), `"re-("`) {
				t.Fatalf("SubscribeRegex with a bad pattern: %v, want an error naming it", err)
			}
			if err := cons.SubscribeRegex(ctx, "re-.*"); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			pollUntil := func(want map[string]int) {
				t.Helper()
				deadline := time.Now().Add(20 * time.Second)
				for {
					done := true
					for topic, n := range want {
						done = done && got[topic] >= n
					}
					if done {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("read %v, want %v", got, want)
					}
					pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
					recs, _ := cons.Poll(pctx)
					cancel()
					for _, r := range recs {
						got[r.Topic]++
					}
				}
			}
			pollUntil(map[string]int{"re-a": 2})
			start := time.Now()
			produce("re-b", 1)
			pollUntil(map[string]int{"re-a": 2, "re-b": 1})
			t.Logf("a topic created after subscribing was read %v later", time.Since(start).Round(time.Millisecond))
			if got["other"] > 0 || got["xre-a"] > 0 {
				t.Fatalf("read %v: topics that do not match were read", got)
			}
		})
	}
}
