package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// Partition leadership in a cluster: spreading partition leaders over the nodes (as
// Kafka's preferred-leader election does), and handing leadership off before a node
// stops.

// stepDown asks stream's leader to step down, preferring node prefer ("" lets
// JetStream choose).
func (n *Node) stepDown(ctx context.Context, stream, prefer string) error {
	var body []byte
	if prefer != "" {
		body, _ = json.Marshal(map[string]any{"placement": map[string]string{"preferred": prefer}})
	}
	resp, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, body)
	if err != nil {
		return err
	}
	var out struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return err
	}
	if out.Error != nil {
		return fmt.Errorf("step down %s: %s", stream, out.Error.Description)
	}
	return nil
}

// BalanceLeaders moves partition leadership so that no node leads more than its share
// (the partitions' count over the nodes, rounded up) of the given topics' partitions:
// each over-loaded leader steps down in favour of the replica that leads the fewest.
// It returns how many leaderships moved.
func (n *Node) BalanceLeaders(ctx context.Context, topics []semantics.TopicMeta) (int, error) {
	if !n.cfg.clustered() {
		return 0, nil
	}
	type part struct {
		stream   string
		leader   string
		replicas []string
	}
	var parts []part
	for _, t := range topics {
		if t.Config.Replicas < 2 {
			continue
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			st, err := partition.NewReader(n.nc, t.Name, p, false).StreamInfo(ctx)
			if err != nil {
				return 0, err
			}
			parts = append(parts, part{stream: semantics.StreamName(t.Name, p), leader: st.Leader, replicas: st.Replicas})
		}
	}
	if len(parts) == 0 {
		return 0, nil
	}
	count := map[string]int{}
	for _, p := range parts {
		count[p.leader]++
		for _, r := range p.replicas {
			count[r] += 0
		}
	}
	nodes := len(count)
	share := (len(parts) + nodes - 1) / nodes
	moved := 0
	for _, p := range parts {
		if count[p.leader] <= share {
			continue
		}
		// The replica leading the fewest partitions takes over.
		cands := slices.DeleteFunc(slices.Clone(p.replicas), func(r string) bool { return r == p.leader })
		if len(cands) == 0 {
			continue
		}
		slices.SortFunc(cands, func(a, b string) int { return count[a] - count[b] })
		to := cands[0]
		if count[to]+1 > share {
			continue
		}
		if err := n.stepDown(ctx, p.stream, to); err != nil {
			n.log.Debug("leader not moved", "stream", p.stream, "err", err)
			continue
		}
		count[p.leader]--
		count[to]++
		moved++
	}
	return moved, nil
}

// handOffLeadership steps down from every stream this node leads, so that a node
// that stops on purpose (a rolling restart) does not leave partitions, buckets or the
// group coordinator leaderless until an election timeout. It waits, bounded by ctx,
// until the node leads nothing.
func (n *Node) handOffLeadership(ctx context.Context) {
	if !n.cfg.clustered() {
		return
	}
	led := n.ledStreams()
	if len(led) == 0 {
		return
	}
	for _, s := range led {
		if err := n.stepDown(ctx, s, ""); err != nil {
			n.log.Debug("step down failed", "stream", s, "err", err)
		}
	}
	for ctx.Err() == nil {
		if len(n.ledStreams()) == 0 {
			n.log.Info("leadership handed off", "streams", len(led))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.log.Warn("some leaderships were not handed off before shutdown", "streams", len(n.ledStreams()))
}

// ledStreams lists the streams this node leads.
func (n *Node) ledStreams() []string {
	info, err := n.ns.Jsz(&natsserver.JSzOptions{Accounts: true, Streams: true, Config: true})
	if err != nil {
		return nil
	}
	var out []string
	for _, acc := range info.AccountDetails {
		for _, s := range acc.Streams {
			if n.ns.JetStreamIsStreamLeader(acc.Name, s.Name) && s.Config != nil && s.Config.Replicas > 1 {
				out = append(out, s.Name)
			}
		}
	}
	return out
}
