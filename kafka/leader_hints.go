package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// Leader discovery (KIP-951): from Produce v10 and Fetch v16, a partition
// answered NOT_LEADER_OR_FOLLOWER (and, for Fetch, FENCED_LEADER_EPOCH) names
// its current leader and epoch, and the answer lists that leader's address, so
// the client goes there without reading the metadata first.

// leaders returns the current leader of every partition of topics that has
// one, and the brokers by id; nil maps when the metadata cannot be read (the
// client then reads it itself, as before KIP-951).
func leaders(ctx context.Context, c *conn, topics []string) (map[semantics.TopicPartition]PartitionInfo, map[int32]Broker) {
	cl, err := c.b.Cluster(ctx, topics)
	if err != nil {
		return nil, nil
	}
	brokers := map[int32]Broker{}
	for _, b := range cl.Brokers {
		brokers[b.ID] = b
	}
	parts := map[semantics.TopicPartition]PartitionInfo{}
	for _, t := range cl.Topics {
		for _, pi := range t.Partitions {
			if _, ok := brokers[pi.Leader]; ok {
				parts[semantics.TopicPartition{Topic: t.Name, Partition: pi.Partition}] = pi
			}
		}
	}
	return parts, brokers
}

// handleFetchHinted is handleFetch with, from v16, the current leader of each
// partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH and the
// leaders' addresses.
func handleFetchHinted(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	answer := handleFetch(ctx, c, kreq)
	if kreq.GetVersion() < 16 {
		return answer
	}
	return func() kmsg.Response {
		resp := answer()
		switch r := resp.(type) {
		case *kmsg.FetchResponse:
			fetchLeaderHints(ctx, c, r)
		case *fetchAnswer:
			fetchLeaderHints(ctx, c, r.FetchResponse)
		}
		return resp
	}
}

func fetchLeaderHints(ctx context.Context, c *conn, resp *kmsg.FetchResponse) {
	var topics []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if movedCode(p.ErrorCode) && t.Topic != "" && !slices.Contains(topics, t.Topic) {
				topics = append(topics, t.Topic)
			}
		}
	}
	if len(topics) == 0 {
		return
	}
	parts, brokers := leaders(ctx, c, topics)
	told := map[int32]bool{}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			pi, ok := parts[semantics.TopicPartition{Topic: t.Topic, Partition: p.Partition}]
			if !movedCode(p.ErrorCode) || !ok {
				continue
			}
			p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = pi.Leader, pi.LeaderEpoch
			if b := brokers[pi.Leader]; !told[b.ID] {
				told[b.ID] = true
				rb := kmsg.NewFetchResponseBroker()
				rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
				resp.Brokers = append(resp.Brokers, rb)
			}
		}
	}
}

// movedCode reports whether a Fetch answer's code says the client's view of the
// partition's leader is stale.
func movedCode(code int16) bool {
	return code == semantics.ErrNotLeader.Code || code == codeFencedLeaderEpoch
}
