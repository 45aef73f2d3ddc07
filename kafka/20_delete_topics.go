package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics deletes topics by name (v6: or by id) with everything stored for
// them: records, checkpoints, and every group's committed offsets of the topic.
func handleDeleteTopics(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
		type target struct {
			name *string
			id   [16]byte
		}
		var targets []target
		if req.Version < 6 {
			for _, n := range req.TopicNames {
				targets = append(targets, target{name: &n})
			}
		} else {
			for _, t := range req.Topics {
				targets = append(targets, target{name: t.Topic, id: t.TopicID})
			}
		}
		var cl *Cluster
		for _, tg := range targets {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID = tg.name, tg.id
			if tg.name == nil {
				// By id: find its name.
				if cl == nil {
					all, err := c.b.Cluster(ctx, nil)
					if err != nil {
						rt.ErrorCode, rt.ErrorMessage = code(err), message(err)
						resp.Topics = append(resp.Topics, rt)
						continue
					}
					cl = &all
				}
				for _, t := range cl.Topics {
					if t.ID == tg.id {
						name := t.Name
						rt.Topic = &name
					}
				}
				if rt.Topic == nil {
					rt.ErrorCode = codeUnknownTopicID
					resp.Topics = append(resp.Topics, rt)
					continue
				}
			}
			err := c.b.DeleteTopic(ctx, *rt.Topic)
			rt.ErrorCode, rt.ErrorMessage = code(err), message(err)
			if err == nil && req.Version >= 6 && rt.TopicID == ([16]byte{}) {
				rt.TopicID = tg.id
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
