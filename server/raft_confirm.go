package server

import (
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A RAFT group's new leader is not yet the leader JetStream acts on: nats-server
// v2.15.2 tells the stream (or consumer, or the meta layer) only once the
// leader's first entry, its peer state, is committed and applied (raft.go,
// switchToLeader and Processed). Until then the partition has no writer, and
// producers wait.
//
// That entry commits when a follower answers an append entry that it stored
// as new. A follower that lacks an entry before it — the former leader appended
// one just before it stepped down, and the follower, already at the higher
// term of the vote request that deposed it, refused it — is caught up through
// a catch-up stream instead, whose answers count towards no quorum (raft.go,
// processAppendEntry: "providing quorum based on catchup is unsafe"). With
// every follower caught up so (after a pause the woken node is far behind, and
// the other one lacks that last entry), the entry is committed only by the
// answers to the next append entry, which nothing sends: no client can write
// to a stream without a leader, and the leader's heartbeat comes once a
// second. Drills saw exactly that: a healthy partition's former leader elected
// again 0.2–0.3 s after a paused node woke, and leading its stream 1.0 s
// later, at its next heartbeat.
//
// So the election watch, every ledCheckEvery, makes each group this node leads
// in RAFT, whose leadership is not yet signalled and whose first entry is not
// yet committed, send a heartbeat (RaftNode.SendHeartbeat): a caught-up
// follower answers it as new, with its last index, and that answer commits the
// entry. A follower still catching up ignores it (as it does the leader's own
// heartbeats). It is safe: a heartbeat is an append entry without entries at
// the leader's term and last index, as the leader sends every second anyway and
// after every commit (processAppendEntryResponse); it carries nothing a
// follower could apply wrongly, and RAFT's rule for commits is unchanged —
// only answers to new entries at the leader's term count, from a quorum.

// confirmLeads makes every group of the node that is the leader in RAFT but not
// yet the leader JetStream acts on, its first entry not yet committed, send a
// heartbeat (see above), and returns those that sent their first one for their
// current term.
func (w *electionWatch) confirmLeads() []string {
	var out []string
	for _, name := range w.names {
		rn := lookupRaftNode(w.ns, name)
		if rn == nil || rn.State() != natsserver.Leader || rn.Leader() {
			continue
		}
		// Committed already: the leadership waits for the group's own apply,
		// which a heartbeat does not speed up.
		if index, commit, _ := rn.Progress(); commit >= index {
			continue
		}
		rn.SendHeartbeat()
		if term := rn.Term(); w.confirming[name] != term {
			w.confirming[name] = term
			out = append(out, name)
		}
	}
	return out
}
