package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// Automatic repair (Config.AutoRepair), run by the upkeep loop of the cluster's
// meta leader, so that one node owns it at a time:
//
//   - A replicated partition whose damage record names a node is repaired
//     (RepairPartition, naming that node) once the damage has been seen for
//     Config.AutoRepairDelay. RepairPartition reads every other copy back first
//     and refuses, changing nothing, unless each is intact, every replica is
//     online and current and the partition has its replicas; a refused or failed
//     repair is tried again ten delays later. One repair runs at a time. A
//     partition with one replica is never touched: its damage stays reported and
//     its reads fail with the error that names it.
//   - A damage record naming a node that holds no copy of the partition any more
//     (its replica moved, or the node left the cluster) has nothing to repair:
//     once every copy the partition has reads back intact, the node's entries
//     are removed instead (clearGoneCopy), under the same delay, one at a time
//     and tried again ten delays later, as a repair.
//   - A partition stream with fewer replicas configured than its topic's
//     replication factor (a repair interrupted between its scale-down and its
//     scale-up, by a stop or a crash of the node running it, or a scale-up that
//     failed) is scaled back to the replication factor once seen so for
//     Config.AutoRepairDelay, when enough nodes are up. Scaling up only adds a
//     copy: nothing acknowledged is at stake.
//
// A repair running when the meta leadership moves finishes on its node; the new
// owner meanwhile finds the partition unsettled (a move under way, a replica
// missing or behind) and waits.

// Results of repairs, as counted by RepairCounts.
const (
	RepairRebuilt  = "rebuilt"  // a damaged copy was rebuilt and read back intact
	RepairRefused  = "refused"  // nothing was changed: the partition was not fit for it
	RepairFailed   = "failed"   // the repair started and did not complete
	RepairRestored = "restored" // a partition short of replicas was scaled back up
)

// repairRetryFactor times Config.AutoRepairDelay is how long an automatic repair
// that did not complete waits before it is tried again.
const repairRetryFactor = 10

// autoRepairs is what the automatic repair remembers from one check to the next.
type autoRepairs struct {
	mu      sync.Mutex
	running string               // the partition stream being repaired, "" when none
	retry   map[string]time.Time // by stream and node: not before then

	// The upkeep loop's own.
	damaged map[string]time.Time // by stream and node: when the damage was first seen
	short   map[string]time.Time // by stream: when it was first seen short of replicas
}

// repairCounts counts repairs by result, for RepairCounts.
type repairCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (c *repairCounts) add(result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]uint64{}
	}
	c.n[result]++
}

// RepairCounts returns how many partition repairs this node ran since it started,
// by result (RepairRebuilt, RepairRefused, RepairFailed, RepairRestored): those
// asked for (RepairPartition) and those it ran on its own (Config.AutoRepair).
func (a *Admin) RepairCounts() map[string]uint64 {
	a.repairs.mu.Lock()
	defer a.repairs.mu.Unlock()
	out := make(map[string]uint64, len(a.repairs.n))
	for k, v := range a.repairs.n {
		out[k] = v
	}
	return out
}

// repairResult is the result a repair that ended with err counts as, when it
// changed something.
func repairResult(err error) string {
	if err == nil {
		return RepairRebuilt
	}
	return RepairFailed
}

// autoRepair runs one check of the automatic repair. Only the meta leader checks.
func (n *Node) autoRepair(ctx context.Context) {
	r := &n.repairs
	if !n.cfg.AutoRepair || !n.ns.JetStreamIsLeader() || n.writers == nil {
		r.damaged, r.short = nil, nil
		return
	}
	if r.damaged == nil {
		r.damaged, r.short = map[string]time.Time{}, map[string]time.Time{}
	}
	topics := map[string]semantics.TopicMeta{} // ready, replicated, by id
	n.writers.mu.Lock()
	for _, t := range n.writers.topics {
		if t.State == semantics.TopicReady && t.Config.Replicas >= 2 {
			topics[t.ID] = t
		}
	}
	n.writers.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n.restoreReplicas(cctx, topics)
	n.repairDamaged(ctx, cctx, topics)
}

// restoreReplicas scales partition streams of topics that have fewer replicas
// configured than their topic's replication factor back up to it, once seen so
// for the repair delay.
func (n *Node) restoreReplicas(ctx context.Context, topics map[string]semantics.TopicMeta) {
	r := &n.repairs
	want := map[string]semantics.TopicMeta{}
	for _, t := range topics {
		for p := int32(0); p < t.Config.Partitions; p++ {
			want[semantics.StreamName(t.Name, p)] = t
		}
	}
	if len(want) == 0 {
		clear(r.short)
		return
	}
	now := time.Now()
	short := map[string]bool{}
	l := n.js.ListStreams(ctx, jetstream.WithStreamListSubject(semantics.PartitionSubjects))
	for si := range l.Info() {
		t, ok := want[si.Config.Name]
		if !ok || si.Config.Replicas >= t.Config.Replicas {
			continue
		}
		if _, repairing := n.admin.repairing.Load(si.Config.Name); repairing {
			continue // a repair on this node scales it back itself
		}
		stream := si.Config.Name
		short[stream] = true
		first, seen := r.short[stream]
		if !seen {
			r.short[stream] = now
			continue
		}
		if now.Sub(first) < n.cfg.AutoRepairDelay || len(n.onlineNodes()) < t.Config.Replicas {
			continue
		}
		p := partitionOf(t, stream)
		cfg := si.Config
		from := cfg.Replicas
		cfg.Replicas = t.Config.Replicas
		if _, err := n.js.UpdateStream(ctx, cfg); err != nil {
			n.log.Warn("partition replicas not restored; will retry", "topic", t.Name, "partition", p, "replicas", t.Config.Replicas, "err", err)
			n.admin.repairs.add(RepairFailed)
			r.short[stream] = now
			continue
		}
		n.log.Warn("partition scaled back to its replication factor", "topic", t.Name, "partition", p, "from", from, "replicas", t.Config.Replicas)
		n.admin.repairs.add(RepairRestored)
		delete(r.short, stream)
	}
	if l.Err() != nil {
		return // keep what was seen: the list is not complete
	}
	for s := range r.short {
		if !short[s] {
			delete(r.short, s)
		}
	}
}

// repairDamaged starts the repair of a damaged copy of a partition of topics,
// once its damage was seen for the repair delay, unless a repair runs already.
// The repair runs on its own, under the upkeep (ctx); cctx bounds the check.
func (n *Node) repairDamaged(ctx, cctx context.Context, topics map[string]semantics.TopicMeta) {
	r := &n.repairs
	all, err := n.admin.meta.allDamage(cctx)
	if err != nil {
		n.log.Debug("damage records not read; next check later", "err", err)
		return
	}
	now := time.Now()
	seen := map[string]bool{}
	type job struct {
		t    semantics.TopicMeta
		p    int32
		node string
		key  string
	}
	var jobs []job
	for id, parts := range all {
		t, ok := topics[id]
		if !ok {
			continue // not ready, not replicated, or gone
		}
		for p, damage := range parts {
			var nodes []string
			for _, d := range damage {
				if !slices.Contains(nodes, d.Node) {
					nodes = append(nodes, d.Node)
				}
			}
			for _, node := range nodes {
				key := semantics.StreamName(t.Name, p) + " " + node
				seen[key] = true
				if _, ok := r.damaged[key]; !ok {
					r.damaged[key] = now
					n.log.Warn("damaged partition copy: automatic repair scheduled", "topic", t.Name, "partition", p, "node", node)
				}
				jobs = append(jobs, job{t: t, p: p, node: node, key: key})
			}
		}
	}
	for k := range r.damaged {
		if !seen[k] {
			delete(r.damaged, k)
		}
	}
	slices.SortFunc(jobs, func(a, b job) int { return r.damaged[a.key].Compare(r.damaged[b.key]) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running != "" {
		return
	}
	for _, j := range jobs {
		if now.Sub(r.damaged[j.key]) < n.cfg.AutoRepairDelay || now.Before(r.retry[j.key]) {
			continue
		}
		stream := semantics.StreamName(j.t.Name, j.p)
		r.running = stream
		n.upkeep.wg.Add(1)
		go func() {
			defer n.upkeep.wg.Done()
			n.runRepair(ctx, j.t, j.p, j.node, j.key)
		}()
		return
	}
}

// runRepair repairs node's copy of partition p of t, as the automatic repair.
func (n *Node) runRepair(ctx context.Context, t semantics.TopicMeta, p int32, node, key string) {
	r := &n.repairs
	rctx, cancel := context.WithTimeout(ctx, repairTimeout)
	gone, cleared, err := n.admin.clearGoneCopy(rctx, t, p, node)
	switch {
	case gone && err != nil:
		n.log.Warn("damage record of a copy no longer held not cleared; will retry", "topic", t.Name, "partition", p, "node", node, "err", err)
	case gone && len(cleared) > 0:
		n.log.Warn("damage record of a copy no longer held cleared: every copy the partition has reads back intact", "topic", t.Name, "partition", p, "node", node)
	case !gone:
		n.log.Warn("automatic repair of a damaged partition copy started", "topic", t.Name, "partition", p, "node", node)
		_, err = n.admin.RepairPartition(rctx, semantics.RepairPartitionRequest{Name: t.Name, Partition: p, Node: node})
	}
	cancel()
	switch {
	case gone:
	case err != nil:
		n.log.Warn("automatic repair of a damaged partition copy did not complete; will retry", "topic", t.Name, "partition", p, "node", node, "err", err)
	default:
		n.log.Warn("automatic repair of a damaged partition copy done", "topic", t.Name, "partition", p, "node", node)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = ""
	if r.retry == nil {
		r.retry = map[string]time.Time{}
	}
	for k, at := range r.retry {
		if time.Now().After(at) {
			delete(r.retry, k)
		}
	}
	if err != nil {
		r.retry[key] = time.Now().Add(repairRetryFactor * n.cfg.AutoRepairDelay)
	}
}

// partitionOf is the partition of t that stream holds (-1 when none).
func partitionOf(t semantics.TopicMeta, stream string) int32 {
	for p := int32(0); p < t.Config.Partitions; p++ {
		if semantics.StreamName(t.Name, p) == stream {
			return p
		}
	}
	return -1
}
