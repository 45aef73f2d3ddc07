package server

import (
	"context"
	"math"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Kafka's partition leader epoch, for a partition stream: the RAFT term of the
// stream's group. Every election raises the term, so it grows with every change
// of leader and never goes back, on every replica, across restarts (RAFT keeps it
// on disk) — what Kafka's leader epoch is. On a single node (no RAFT) leadership
// never changes and the epoch is 0. The writer stamps it on every batch it
// appends, as Kafka's leader does, so that the log says which epoch wrote what
// (OffsetForLeaderEpoch).

// epochs finds partition streams' leader epochs on this node.
type epochs struct {
	n *Node

	mu sync.Mutex
	// groups caches each stream's RAFT group name (fixed for the stream's life; a
	// stream made again under the same name is looked up again when its old group
	// is gone).
	groups map[string]raftGroup
}

type raftGroup struct {
	name string
	seen time.Time // when the name was looked up
}

// groupRecheck is how long a stream's group name is trusted while this node finds
// no such group (it holds no replica, or the stream was made again).
const groupRecheck = 30 * time.Second

// of returns the leader epoch of stream as this node knows it: the term of the
// stream's RAFT group while the group has a leader and this node holds a replica;
// -1 otherwise (no leader, or no replica here).
func (e *epochs) of(ctx context.Context, stream string) int32 {
	if !e.n.ns.JetStreamIsClustered() {
		return 0
	}
	e.mu.Lock()
	g, ok := e.groups[stream]
	e.mu.Unlock()
	if !ok {
		info, err := e.n.js.Stream(ctx, stream)
		if err != nil || info.CachedInfo().Cluster == nil || info.CachedInfo().Cluster.RaftGroup == "" {
			return -1
		}
		g = raftGroup{name: info.CachedInfo().Cluster.RaftGroup, seen: time.Now()}
		e.mu.Lock()
		e.groups[stream] = g
		e.mu.Unlock()
	}
	term, ok := e.term(g.name)
	if !ok && time.Since(g.seen) > groupRecheck {
		e.mu.Lock()
		delete(e.groups, stream)
		e.mu.Unlock()
	}
	return term
}

// term returns the term of RAFT group g on this node, while g knows its leader.
func (e *epochs) term(g string) (int32, bool) {
	rz := e.n.ns.Raftz(&natsserver.RaftzOptions{AccountFilter: natsserver.DEFAULT_GLOBAL_ACCOUNT, GroupFilter: g})
	if rz == nil {
		return -1, false
	}
	grp, ok := (*rz)[natsserver.DEFAULT_GLOBAL_ACCOUNT][g]
	if !ok {
		return -1, false
	}
	if grp.Leader == "" {
		return -1, true
	}
	return int32(min(grp.Term, math.MaxInt32)), true
}
