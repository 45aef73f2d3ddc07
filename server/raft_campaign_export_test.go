package server

import natsserver "github.com/nats-io/nats-server/v2/server"

// RaftNode exposes lookupRaftNode to the tests: the node's RAFT node of group,
// or nil.
func (n *Node) RaftNode(group string) natsserver.RaftNode {
	return lookupRaftNode(n.ns, group)
}
