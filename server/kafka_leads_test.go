package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// A node woken from a pause asks the others which of its partitions they
// lead: the leaders answer, each with its group's term, and nobody else (its
// held Metadata answer names a partition's leader from that answer when its
// own view names none or itself at an older term; TestKafkaMetadataOfWokenNode
// pauses a node for it).
func TestKafkaWokenNodeAsksLeaders(t *testing.T) {
	n, c := kafkaHoldCluster(t)
	ctx := qxdtest.Context(t, time.Minute)

	const topic = "asked"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 3, Replicas: 3})
	var streams []string
	for p := range int32(3) {
		s := semantics.StreamName(topic, p)
		awaitLocalLeader(ctx, t, n, s)
		streams = append(streams, s)
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	claims := n.KafkaAskLeads(actx, streams)
	cancel()
	for _, s := range streams {
		leader, term := n.KafkaLocalLeader(s), n.KafkaLocalTerm(s)
		c, ok := claims[s]
		switch {
		case leader == n.Name() && ok:
			t.Errorf("%s: %s, which %s leads itself, answered as led by %s at term %d", s, n.Name(), n.Name(), c.Node, c.Term)
		case leader != n.Name() && !ok:
			t.Errorf("%s: no node answered that it leads it; %s's view names %s at term %d", s, n.Name(), leader, term)
		case leader != n.Name() && (c.Node != leader || c.Term != term):
			t.Errorf("%s: answered as led by %s at term %d; %s's view names %s at term %d", s, c.Node, c.Term, n.Name(), leader, term)
		}
	}

}
