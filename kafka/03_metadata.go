package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// Metadata: every node is a broker; a partition's leader is the node leading its
// stream, its replicas and in-sync replicas the stream's. Topics are never created
// by a Metadata request (auto-creation is off, as allow.auto.create.topics=false).
func handleMetadata(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.MetadataRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		var names []string
		byID := false
		all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
		if !all {
			names = []string{}
			for _, t := range req.Topics {
				if t.Topic != nil {
					names = append(names, *t.Topic)
				} else {
					byID = true
				}
			}
			if byID {
				// Topics asked for by id only: look at every topic.
				names = nil
			}
		}
		cl, err := c.b.Cluster(ctx, names)
		if err != nil {
			// No view of the cluster: answer this broker alone, every topic asked
			// for as unavailable, so the client asks again.
			c.log.Debug("kafka metadata failed", "err", err)
			for _, t := range req.Topics {
				rt := kmsg.NewMetadataResponseTopic()
				rt.Topic, rt.TopicID = t.Topic, t.TopicID
				rt.ErrorCode = semantics.ErrTopicNotReady.Code
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		resp.ClusterID = &cl.ClusterID
		resp.ControllerID = cl.ControllerID
		for _, b := range cl.Brokers {
			rb := kmsg.NewMetadataResponseBroker()
			rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
			resp.Brokers = append(resp.Brokers, rb)
		}
		found := map[string]TopicInfo{}
		for _, t := range cl.Topics {
			found[t.Name] = t
		}
		emit := func(t TopicInfo) {
			rt := kmsg.NewMetadataResponseTopic()
			name := t.Name
			rt.Topic, rt.TopicID = &name, t.ID
			rt.ErrorCode = code(t.Err)
			for _, p := range t.Partitions {
				rp := kmsg.NewMetadataResponseTopicPartition()
				rp.Partition, rp.Leader = p.Partition, p.Leader
				rp.LeaderEpoch = p.LeaderEpoch
				rp.Replicas, rp.ISR, rp.OfflineReplicas = nonNil(p.Replicas), nonNil(p.ISR), nonNil(p.Offline)
				if p.Leader < 0 {
					rp.ErrorCode = semantics.ErrTopicNotReady.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if all {
			for _, t := range cl.Topics {
				emit(t)
			}
			return resp
		}
		for _, want := range req.Topics {
			if want.Topic != nil {
				if t, ok := found[*want.Topic]; ok {
					emit(t)
					continue
				}
				emit(TopicInfo{Name: *want.Topic, Err: semantics.ErrUnknownTopic})
				continue
			}
			var hit *TopicInfo
			for i := range cl.Topics {
				if cl.Topics[i].ID == want.TopicID {
					hit = &cl.Topics[i]
				}
			}
			if hit == nil {
				rt := kmsg.NewMetadataResponseTopic()
				rt.TopicID = want.TopicID
				rt.ErrorCode = codeUnknownTopicID
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			emit(*hit)
		}
		return resp
	}
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}
