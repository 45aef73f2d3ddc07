package server

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// Bounds of the steps of a cluster info request. The stream list waits up to 4 s
// inside the meta leader for stream leaders that do not answer; a partition still
// missing is then asked for on its own, briefly.
const (
	clusterListTimeout   = 10 * time.Second
	clusterStreamTimeout = 2 * time.Second
	clusterFallbackTime  = 10 * time.Second
	clusterFallbackConns = 16
)

// ClusterInfo answers semantics.APIClusterInfo.
//
// The nodes and the meta leader come from this node's own view of JetStream's meta
// group (Jsz): a node is up unless the cluster saw it shut down or lost track of
// it (the peer's Offline flag, which every node keeps from the system events; the
// meta group's Current flags are only meaningful on its leader, so they are not
// used). Partitions come from JetStream's stream list, which the meta leader
// answers by asking each stream's leader: replica Current and Lag flags are the
// stream leader's view, the only one that knows its followers' progress.
func (a *Admin) ClusterInfo(ctx context.Context) (semantics.ClusterInfo, error) {
	info := semantics.ClusterInfo{Nodes: []semantics.NodeInfo{}, UnderReplicated: []semantics.UnderReplicated{}, Damaged: []semantics.DamagedPartition{}}
	nodes := a.metaNodes(&info)

	topics, err := a.ListTopics(ctx)
	if err != nil {
		return semantics.ClusterInfo{}, semantics.Errorf(semantics.ErrUnavailable, "cluster info: read topics: %v; retry", err)
	}
	var want []string // streams of ready topics' partitions
	for _, t := range topics {
		if t.State != semantics.TopicReady {
			continue
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			want = append(want, semantics.StreamName(t.Name, p))
		}
	}
	info.Partitions = len(want)
	streams := a.partitionStreamInfos(ctx, want)
	recorded, derr := a.meta.allDamage(ctx)
	if derr != nil {
		a.log.Warn("cluster info: damage records unreadable", "err", derr)
	}

	node := func(name string, up bool) *semantics.NodeInfo {
		ni, ok := nodes[name]
		if !ok {
			ni = &semantics.NodeInfo{Name: name, Up: up}
			nodes[name] = ni
		}
		return ni
	}
	for _, t := range topics {
		if t.State != semantics.TopicReady {
			continue
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			var ci *jetstream.ClusterInfo
			dp := semantics.DamagedPartition{Topic: t.Name, Partition: p, Damaged: recorded[t.ID][p]}
			if si := streams[semantics.StreamName(t.Name, p)]; si != nil {
				ci = a.clusterOf(si)
				dp.Leader = ci.Leader
				st := partition.StreamState{FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq, Msgs: si.State.Msgs}
				if si.State.Lost != nil {
					st.Lost = si.State.Lost.Msgs
				}
				dp.Missing = st.Missing(t.Config.Compact)
			}
			if dp.Missing > 0 || len(dp.Damaged) > 0 {
				dp.Note = damageRecordNote(dp.Damaged)
				info.Damaged = append(info.Damaged, dp)
			}
			current, outOfSync := 0, []string{}
			var leader string
			if ci != nil {
				leader = ci.Leader
				if leader != "" {
					current++
					ln := node(leader, true)
					ln.Leaders++
					ln.Replicas++
				}
				for _, r := range ci.Replicas {
					if r.Name == "" || r.Name == leader {
						continue
					}
					rn := node(r.Name, !r.Offline)
					rn.Replicas++
					if leader == "" {
						outOfSync = append(outOfSync, r.Name)
						continue
					}
					rn.Lag += r.Lag
					if r.Current && !r.Offline && !r.Pending {
						current++
					} else {
						outOfSync = append(outOfSync, r.Name)
					}
				}
			}
			if current < t.Config.Replicas {
				slices.Sort(outOfSync)
				info.UnderReplicated = append(info.UnderReplicated, semantics.UnderReplicated{
					Topic: t.Name, Partition: p, Leader: leader,
					Replicas: t.Config.Replicas, Current: current, OutOfSync: outOfSync,
				})
			}
		}
	}
	up := 0
	for _, ni := range nodes {
		if ni.Up {
			up++
		}
	}
	infos := a.nodeInfos(up)
	for name, ni := range nodes {
		ni.Sync = infos[name].Sync
		ni.Kafka = infos[name].Kafka
		info.Nodes = append(info.Nodes, *ni)
	}
	slices.SortFunc(info.Nodes, func(x, y semantics.NodeInfo) int { return cmp.Compare(x.Name, y.Name) })
	slices.SortFunc(info.UnderReplicated, func(x, y semantics.UnderReplicated) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	slices.SortFunc(info.Damaged, func(x, y semantics.DamagedPartition) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	return info, nil
}

// metaNodes fills info's cluster name and meta leader and returns the meta group's
// nodes by name, this one included. A single node is the whole cluster and its own
// leader.
func (a *Admin) metaNodes(info *semantics.ClusterInfo) map[string]*semantics.NodeInfo {
	self := a.ns.Name()
	nodes := map[string]*semantics.NodeInfo{self: {Name: self, Up: true}}
	if !a.ns.JetStreamIsClustered() {
		info.MetaLeader = self
		return nodes
	}
	info.Name = a.ns.ClusterName()
	jsz, err := a.ns.Jsz(&natsserver.JSzOptions{})
	if err != nil || jsz.Meta == nil {
		return nodes
	}
	if jsz.Meta.Name != "" {
		info.Name = jsz.Meta.Name
	}
	info.MetaLeader = jsz.Meta.Leader
	for _, r := range jsz.Meta.Replicas {
		if r.Name == "" || r.Name == self {
			continue
		}
		nodes[r.Name] = &semantics.NodeInfo{Name: r.Name, Up: !r.Offline}
	}
	return nodes
}

// partitionStreams returns the cluster info of the streams in want, by name, as
// partitionStreamInfos finds them.
func (a *Admin) partitionStreams(ctx context.Context, want []string) map[string]*jetstream.ClusterInfo {
	infos := a.partitionStreamInfos(ctx, want)
	out := make(map[string]*jetstream.ClusterInfo, len(infos))
	for name, si := range infos {
		out[name] = a.clusterOf(si)
	}
	return out
}

// partitionStreamInfos returns the info of the streams in want, by name. One
// stream list gets them all; a stream the list left out (its leader did not answer
// in time) is asked for on its own. A stream nobody answers for is missing from the
// result.
func (a *Admin) partitionStreamInfos(ctx context.Context, want []string) map[string]*jetstream.StreamInfo {
	out := make(map[string]*jetstream.StreamInfo, len(want))
	if len(want) == 0 {
		return out
	}
	lctx, cancel := context.WithTimeout(ctx, clusterListTimeout)
	l := a.js.ListStreams(lctx, jetstream.WithStreamListSubject(semantics.PartitionSubjects))
	for si := range l.Info() {
		out[si.Config.Name] = si
	}
	cancel()
	if err := l.Err(); err != nil {
		a.log.Debug("cluster info: stream list failed; asking each partition", "err", err)
	}

	var missing []string
	for _, name := range want {
		if out[name] == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return out
	}
	fctx, cancel := context.WithTimeout(ctx, clusterFallbackTime)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, clusterFallbackConns)
	for _, name := range missing {
		select {
		case sem <- struct{}{}:
		case <-fctx.Done():
		}
		if fctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sctx, cancel := context.WithTimeout(fctx, clusterStreamTimeout)
			defer cancel()
			s, err := a.js.Stream(sctx, name)
			if err != nil {
				return
			}
			mu.Lock()
			out[name] = s.CachedInfo()
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// clusterOf is a stream's cluster info. A single node reports none for its streams:
// it leads them all.
func (a *Admin) clusterOf(si *jetstream.StreamInfo) *jetstream.ClusterInfo {
	if si.Cluster == nil {
		if a.ns.JetStreamIsClustered() {
			return &jetstream.ClusterInfo{}
		}
		return &jetstream.ClusterInfo{Leader: a.ns.Name()}
	}
	return si.Cluster
}
