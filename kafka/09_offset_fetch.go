package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// OffsetFetch reads a group's committed offsets (all of them when no topics are
// named); a partition without a commit has offset -1. With require_stable (v7+),
// a partition whose offset a transaction not yet completed holds is answered
// UNSTABLE_OFFSET_COMMIT (retriable) instead of the offset stored before it, as
// Kafka does (KIP-447): a member taking over the partition waits for the
// transaction rather than start from the old offset.
func handleOffsetFetch(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.OffsetFetchRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		if req.Version < 8 {
			var topics []kmsg.OffsetFetchRequestGroupTopic
			if req.Topics != nil {
				topics = []kmsg.OffsetFetchRequestGroupTopic{}
				for _, t := range req.Topics {
					topics = append(topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
				}
			}
			g := fetchGroupOffsets(ctx, c, req.Group, topics, req.RequireStable)
			resp.ErrorCode = g.ErrorCode
			for _, t := range g.Topics {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, fetchGroupOffsets(ctx, c, rg.Group, rg.Topics, req.RequireStable))
		}
		return resp
	}
}

// fetchGroupOffsets answers one group of an OffsetFetch; topics nil asks for all.
// stable answers the partitions with pending transactional offsets
// UNSTABLE_OFFSET_COMMIT.
func fetchGroupOffsets(ctx context.Context, c *conn, group string, topics []kmsg.OffsetFetchRequestGroupTopic, stable bool) kmsg.OffsetFetchResponseGroup {
	g := kmsg.NewOffsetFetchResponseGroup()
	g.Group = group
	fr := groups.FetchRequest{Group: group}
	for _, t := range topics {
		for _, p := range t.Partitions {
			fr.Partitions = append(fr.Partitions, semantics.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	if topics != nil && len(fr.Partitions) == 0 {
		return g
	}
	// The pending offsets first: a transaction stores its offsets before it
	// stops counting as pending, so read in this order no answer holds an offset
	// from before a transaction that completed in between.
	var pending []semantics.TopicPartition
	if stable {
		if tb, ok := c.l.cfg.Backend.(TxnBackend); ok {
			var err error
			if pending, err = tb.PendingTxnOffsets(ctx, group); err != nil {
				g.ErrorCode = code(err)
				return g
			}
		}
	}
	entries, err := c.b.FetchOffsets(ctx, fr)
	if err != nil {
		g.ErrorCode = code(err)
		return g
	}
	got := map[semantics.TopicPartition]semantics.OffsetEntry{}
	for _, e := range entries {
		got[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = e
	}
	add := func(topic string, p int32) {
		var rt *kmsg.OffsetFetchResponseGroupTopic
		for i := range g.Topics {
			if g.Topics[i].Topic == topic {
				rt = &g.Topics[i]
			}
		}
		if rt == nil {
			g.Topics = append(g.Topics, kmsg.NewOffsetFetchResponseGroupTopic())
			rt = &g.Topics[len(g.Topics)-1]
			rt.Topic = topic
		}
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
		tp := semantics.TopicPartition{Topic: topic, Partition: p}
		if slices.Contains(pending, tp) {
			rp.ErrorCode = semantics.ErrUnstableOffsetCommit.Code
			empty := ""
			rp.Metadata = &empty
		} else if e, ok := got[tp]; ok {
			rp.Offset = e.Offset
			md := e.Metadata
			rp.Metadata = &md
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	if topics == nil {
		for _, e := range entries {
			add(e.Topic, e.Partition)
		}
		return g
	}
	for _, tp := range fr.Partitions {
		add(tp.Topic, tp.Partition)
	}
	return g
}
