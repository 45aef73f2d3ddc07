package server

import (
	"cmp"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// nodeInfoWait bounds how long a metadata request waits for the other nodes to say
// their addresses.
const nodeInfoWait = time.Second

// Metadata answers semantics.APIClusterMetadata: the nodes of the meta group with
// their addresses (each node answers semantics.NodeInfoSubject itself), and per
// partition of the topics asked for the leader, the replicas and the in-sync
// replicas, from JetStream's stream list (the stream leaders' view, as ClusterInfo
// reads it).
func (a *Admin) Metadata(ctx context.Context, req semantics.MetadataRequest) (semantics.Metadata, error) {
	return a.metadata(ctx, req, true)
}

// metadata is Metadata; without addrs the brokers have no address nor sync
// mode, and the other nodes are not asked for them (a Kafka listener knows
// their Kafka addresses: it need not wait up to nodeInfoWait for a node that
// is lost).
func (a *Admin) metadata(ctx context.Context, req semantics.MetadataRequest, addrs bool) (semantics.Metadata, error) {
	var ci semantics.ClusterInfo
	nodes := a.metaNodes(&ci)
	md := semantics.Metadata{Cluster: ci.Name, MetaLeader: ci.MetaLeader, Brokers: []semantics.BrokerInfo{}, Topics: []semantics.TopicMetadata{}}

	var topics []semantics.TopicMeta
	if len(req.Topics) == 0 {
		all, err := a.ListTopics(ctx)
		if err != nil {
			return semantics.Metadata{}, semantics.Errorf(semantics.ErrUnavailable, "metadata: read topics: %v; retry", err)
		}
		topics = all
	} else {
		for _, name := range req.Topics {
			var t semantics.TopicMeta
			err := semantics.ValidateTopicName(name)
			if err == nil {
				t, err = a.meta.getTopic(ctx, name)
			}
			if err != nil {
				md.Topics = append(md.Topics, semantics.TopicMetadata{Name: name, Partitions: []semantics.PartitionMetadata{}, Error: semantics.NewAPIError(err)})
				continue
			}
			topics = append(topics, t)
		}
	}
	var want []string
	for _, t := range topics {
		if t.State != semantics.TopicReady {
			continue
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			want = append(want, semantics.StreamName(t.Name, p))
		}
	}
	streams := a.partitionStreams(ctx, want)
	for _, t := range topics {
		tm := semantics.TopicMetadata{Name: t.Name, ID: t.ID, State: t.State, Replicas: t.Config.Replicas, Partitions: []semantics.PartitionMetadata{}}
		if t.State == semantics.TopicReady {
			for p := int32(0); p < t.Config.Partitions; p++ {
				pm := partitionMetadata(p, streams[semantics.StreamName(t.Name, p)])
				for _, r := range pm.Replicas {
					if _, ok := nodes[r]; !ok {
						nodes[r] = &semantics.NodeInfo{Name: r, Up: true}
					}
				}
				tm.Partitions = append(tm.Partitions, pm)
			}
		}
		md.Topics = append(md.Topics, tm)
	}
	up := 0
	for _, n := range nodes {
		if n.Up {
			up++
		}
	}
	infos := map[string]semantics.BrokerInfo{}
	if addrs {
		infos = a.nodeInfos(up)
	}
	for name, n := range nodes {
		md.Brokers = append(md.Brokers, semantics.BrokerInfo{Name: name, Addr: infos[name].Addr, Up: n.Up, Sync: infos[name].Sync})
	}
	slices.SortFunc(md.Brokers, func(x, y semantics.BrokerInfo) int { return cmp.Compare(x.Name, y.Name) })
	slices.SortFunc(md.Topics, func(x, y semantics.TopicMetadata) int { return cmp.Compare(x.Name, y.Name) })
	return md, nil
}

// partitionMetadata reads partition p's leader, replicas and in-sync replicas from
// its stream's cluster info (nil: nobody answered for it). A follower is in sync
// when its leader sees it current and it is not offline, as ClusterInfo counts it.
func partitionMetadata(p int32, ci *jetstream.ClusterInfo) semantics.PartitionMetadata {
	pm := semantics.PartitionMetadata{Partition: p, Replicas: []string{}, InSync: []string{}}
	if ci == nil {
		pm.Problem = "no node answered for the partition's stream"
		return pm
	}
	pm.Leader = ci.Leader
	if ci.Leader != "" {
		pm.Replicas = append(pm.Replicas, ci.Leader)
		pm.InSync = append(pm.InSync, ci.Leader)
	}
	for _, r := range ci.Replicas {
		if r.Name == "" || r.Name == ci.Leader {
			continue
		}
		pm.Replicas = append(pm.Replicas, r.Name)
		if ci.Leader != "" && r.Current && !r.Offline && !r.Pending {
			pm.InSync = append(pm.InSync, r.Name)
		}
	}
	slices.Sort(pm.Replicas)
	slices.Sort(pm.InSync)
	return pm
}

// selfInfo is this node as semantics.NodeInfoSubject answers it.
func (a *Admin) selfInfo() semantics.BrokerInfo {
	addr := a.ns.ClientURL()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	info := semantics.BrokerInfo{Name: a.ns.Name(), Addr: addr, Up: true, Sync: FormatSync(a.sync)}
	if k := a.kafka.Load(); k != nil {
		info.Kafka = *k
	}
	if a.reaches != nil {
		info.Reaches = a.reaches()
	}
	return info
}

// serveNodeInfo answers semantics.NodeInfoSubject.
func (a *Admin) serveNodeInfo(m *nats.Msg) {
	b, _ := json.Marshal(a.selfInfo())
	_ = m.Respond(b)
}

// nodeInfos gathers what the nodes say of themselves (address, sync mode) by name:
// this node's, and those of the others that answer semantics.NodeInfoSubject within
// nodeInfoWait, until want have.
func (a *Admin) nodeInfos(want int) map[string]semantics.BrokerInfo {
	self := a.selfInfo()
	out := map[string]semantics.BrokerInfo{self.Name: self}
	if !a.ns.JetStreamIsClustered() || want <= 1 {
		return out
	}
	inbox := nats.NewInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return out
	}
	defer sub.Unsubscribe()
	if err := a.nc.PublishRequest(semantics.NodeInfoSubject, inbox, nil); err != nil {
		return out
	}
	deadline := time.Now().Add(nodeInfoWait)
	for len(out) < want {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var b semantics.BrokerInfo
		if json.Unmarshal(m.Data, &b) == nil && b.Name != "" {
			out[b.Name] = b
		}
	}
	return out
}
