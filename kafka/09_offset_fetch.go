package kafka

import (
	"context"
	"encoding/base64"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// OffsetFetch reads a group's committed offsets (all of them when no topics are
// named); a partition without a commit has offset -1, and one committed with -1
// or -2 (OffsetCommit) is answered with that offset, as Kafka hands back what it
// stored: librdkafka and KafkaJS's fetchOffsets(resolveOffsets) read -2 as the
// log start, the other clients read both as no offset. With require_stable (v7+),
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
			g, _ := fetchGroupOffsets(ctx, c, req.Group, topics, req.RequireStable)
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
			if req.Version < 10 {
				g, _ := fetchGroupOffsets(ctx, c, rg.Group, rg.Topics, req.RequireStable)
				resp.Groups = append(resp.Groups, g)
				continue
			}
			resp.Groups = append(resp.Groups, fetchGroupOffsetsByID(ctx, c, rg, req.RequireStable))
		}
		return resp
	}
}

// fetchGroupOffsetsByID answers one group of an OffsetFetch v10, which names
// topics by id: each id asked for is resolved to its topic (UNKNOWN_TOPIC_ID for
// an id no topic has), and each topic answered carries its id. Asked for all its
// offsets, the group's are answered with the id of the topic they were committed
// to; offsets committed before qxd kept topic ids are answered with their topic's
// current id (the store drops offsets older than their topic).
func fetchGroupOffsetsByID(ctx context.Context, c *conn, rg kmsg.OffsetFetchRequestGroup, stable bool) kmsg.OffsetFetchResponseGroup {
	var topics []kmsg.OffsetFetchRequestGroupTopic
	var unknown []kmsg.OffsetFetchResponseGroupTopic
	ids := map[string][16]byte{}
	if rg.Topics != nil {
		topics = []kmsg.OffsetFetchRequestGroupTopic{}
		for _, t := range rg.Topics {
			name, err := topicByID(ctx, c, t.TopicID)
			if err != nil {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.TopicID = t.TopicID
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, code(err)
					rt.Partitions = append(rt.Partitions, rp)
				}
				unknown = append(unknown, rt)
				continue
			}
			ids[name] = t.TopicID
			topics = append(topics, kmsg.OffsetFetchRequestGroupTopic{Topic: name, Partitions: t.Partitions})
		}
	}
	g, committedIDs := fetchGroupOffsets(ctx, c, rg.Group, topics, stable)
	if g.ErrorCode != 0 {
		return g
	}
	kept := g.Topics[:0]
	for _, rt := range g.Topics {
		id, ok := ids[rt.Topic]
		if !ok {
			id, ok = committedIDs[rt.Topic]
		}
		if !ok {
			if m, err := c.b.Topic(ctx, rt.Topic); err == nil {
				id, ok = decodeTopicID(m.ID)
			}
		}
		if !ok {
			continue // the topic is gone: no id to answer it by
		}
		rt.TopicID = id
		kept = append(kept, rt)
	}
	g.Topics = append(kept, unknown...)
	return g
}

// decodeTopicID reads a topic id as qxd keeps it (base64url, 16 bytes).
func decodeTopicID(s string) ([16]byte, bool) {
	var id [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, true
}

// fetchGroupOffsets answers one group of an OffsetFetch; topics nil asks for all.
// stable answers the partitions with pending transactional offsets
// UNSTABLE_OFFSET_COMMIT. It also returns the ids of the topics the answered
// offsets were committed to, where the store knows them.
func fetchGroupOffsets(ctx context.Context, c *conn, group string, topics []kmsg.OffsetFetchRequestGroupTopic, stable bool) (kmsg.OffsetFetchResponseGroup, map[string][16]byte) {
	g := kmsg.NewOffsetFetchResponseGroup()
	g.Group = group
	fr := groups.FetchRequest{Group: group, Logical: true}
	for _, t := range topics {
		for _, p := range t.Partitions {
			fr.Partitions = append(fr.Partitions, semantics.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	if topics != nil && len(fr.Partitions) == 0 {
		return g, nil
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
				return g, nil
			}
		}
	}
	entries, err := c.b.FetchOffsets(ctx, fr)
	if err != nil {
		g.ErrorCode = code(err)
		return g, nil
	}
	got := map[semantics.TopicPartition]semantics.OffsetEntry{}
	ids := map[string][16]byte{}
	for _, e := range entries {
		got[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = e
		if id, ok := decodeTopicID(e.TopicID); ok {
			ids[e.Topic] = id
		}
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
		return g, ids
	}
	for _, tp := range fr.Partitions {
		add(tp.Topic, tp.Partition)
	}
	return g, ids
}
