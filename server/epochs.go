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
	// listed is when local last listed the node's own streams.
	listed time.Time
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
		g, ok = e.local(stream)
	}
	if !ok {
		// The stream's leader answers its info: bounded, as a dead leader's
		// stream answers nothing until its successor is elected, and a caller
		// without a deadline (a Kafka Metadata request) would otherwise wait
		// JetStream's default 5 s for a -1 it can have at once.
		ictx, cancel := context.WithTimeout(ctx, streamInfoWait)
		info, err := e.n.js.Stream(ictx, stream)
		cancel()
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

// streamInfoWait bounds of's stream info request for a stream whose group this
// node has not found among its own.
const streamInfoWait = 500 * time.Millisecond

// localListEvery is how often local lists the node's streams at most.
const localListEvery = time.Second

// cached is stream's RAFT group if this node has looked it up (it holds a
// replica of the stream).
func (e *epochs) cached(stream string) (raftGroup, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.groups[stream]
	return g, ok
}

// local finds the RAFT group of stream among the streams this node holds a
// replica of, from the node's own JetStream state, and caches the groups of all
// of them; at most every localListEvery. The stream's description (of asks
// for it otherwise) is the stream leader's to give: while that leader is lost,
// the request waits 5 s for an answer that does not come, and a Kafka Metadata
// answer with it.
func (e *epochs) local(stream string) (raftGroup, bool) {
	e.mu.Lock()
	if time.Since(e.listed) < localListEvery {
		e.mu.Unlock()
		return raftGroup{}, false
	}
	e.listed = time.Now()
	e.mu.Unlock()
	jsz, err := e.n.ns.Jsz(&natsserver.JSzOptions{Account: natsserver.DEFAULT_GLOBAL_ACCOUNT, Streams: true, RaftGroups: true})
	if err != nil {
		return raftGroup{}, false
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range jsz.AccountDetails {
		for _, sd := range a.Streams {
			if sd.RaftGroup != "" {
				if _, known := e.groups[sd.Name]; !known {
					e.groups[sd.Name] = raftGroup{name: sd.RaftGroup, seen: now}
				}
			}
		}
	}
	g, ok := e.groups[stream]
	return g, ok
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
