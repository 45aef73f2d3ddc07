package server_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// A create request sent again with its token, after the node made the topic but
// its answer was lost, is answered as the topic's creator; a create with another
// token, or none, is TOPIC_ALREADY_EXISTS and changes nothing.
func TestCreateTopicSentAgainWithItsToken(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	req := semantics.CreateTopicRequest{Name: "made-once", Config: semantics.TopicConfig{Partitions: 2}, Token: "call-1"}
	first, existed, err := n.Admin().CreateTopic(ctx, req)
	if err != nil || existed {
		t.Fatalf("create: existed %v, err %v", existed, err)
	}
	again, existed, err := n.Admin().CreateTopic(ctx, req)
	if err != nil || existed || again.ID != first.ID || again.State != semantics.TopicReady {
		t.Fatalf("the same create sent again: id %s (first %s), state %s, existed %v, err %v; want the same topic, created", again.ID, first.ID, again.State, existed, err)
	}
	for _, token := range []string{"call-2", ""} {
		other := req
		other.Token = token
		if _, _, err := n.Admin().CreateTopic(ctx, other); !errors.Is(err, semantics.ErrTopicExists) {
			t.Errorf("a create with token %q: err %v, want TOPIC_ALREADY_EXISTS", token, err)
		}
	}
}

// TestCreateTopicSendingsOverlap: the SDK sends a create again when its answer is
// late, so the node may handle two sendings of one create at once. Both must
// answer with the one topic, created: not "already exists" (the second's record
// write finding the first's), nor "mark ready: wrong last sequence" (both marking
// it ready).
func TestCreateTopicSendingsOverlap(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 60*time.Second)
	for i := range 12 {
		req := semantics.CreateTopicRequest{Name: fmt.Sprintf("overlap-%d", i), Config: semantics.TopicConfig{Partitions: 2}, Token: fmt.Sprintf("call-%d", i)}
		var wg sync.WaitGroup
		got := make([]semantics.TopicMeta, 2)
		errs := make([]error, 2)
		for s := range 2 {
			wg.Go(func() { got[s], _, errs[s] = n.Admin().CreateTopic(ctx, req) })
		}
		wg.Wait()
		for s := range 2 {
			if errs[s] != nil || got[s].State != semantics.TopicReady || got[s].ID != got[0].ID {
				t.Fatalf("%s, sending %d of 2: id %s (other %s), state %s, err %v; want the one topic, created",
					req.Name, s+1, got[s].ID, got[1-s].ID, got[s].State, errs[s])
			}
		}
	}
}
