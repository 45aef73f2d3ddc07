package server_test

import (
	"errors"
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
