package semantics

// ClusterInfo answers APIClusterInfo: the nodes qxd runs on and how well the
// partitions of ready topics are replicated. A single node reports itself as the
// only node, up, leading every partition.
type ClusterInfo struct {
	// Name is the NATS cluster name ("" for a single node).
	Name string `json:"name"`
	// MetaLeader is the node that leads JetStream's meta group, which places streams
	// (the Kafka controller's job). "" while the cluster has none, e.g. without a
	// majority of its nodes.
	MetaLeader string `json:"meta_leader"`
	// Nodes are the members of the meta group, sorted by name.
	Nodes []NodeInfo `json:"nodes"`
	// Partitions is the number of partitions of all ready topics.
	Partitions int `json:"partitions"`
	// UnderReplicated are the partitions with fewer current replicas than their
	// topic's replication factor, sorted by topic and partition. A partition
	// whose stream has no leader, or that no node answered for, is listed with
	// Leader "" and Current 0.
	UnderReplicated []UnderReplicated `json:"under_replicated"`
	// Damaged are the partitions whose leader's stored log misses batches in its
	// middle (PartitionInfo.Missing), or whose stored copies reads or verifies
	// found damaged (PartitionInfo.Damaged), sorted by topic and partition.
	Damaged []DamagedPartition `json:"damaged"`
	Error   *APIError          `json:"error,omitempty"`
}

// DamagedPartition is a partition whose log stored on its leader misses batches
// in its middle, or whose stored copies reads found damaged: its stored data is
// damaged (see PartitionInfo.Missing and Damaged).
type DamagedPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Leader is the node whose stored log it is.
	Leader string `json:"leader"`
	// Missing counts the missing batches.
	Missing uint64 `json:"missing_batches"`
	// Damaged is what reads and verifies found damaged in its stored copies, on
	// any replica (see PartitionInfo.Damaged); Note says it in a sentence naming
	// the offsets and the nodes.
	Damaged []BatchDamage `json:"damaged,omitempty"`
	Note    string        `json:"note,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *ClusterInfo) Failure() error { return r.Error.Err() }

// NodeInfo is one node of the cluster as ClusterInfo reports it.
type NodeInfo struct {
	// Name is the node's name (its --name, the NATS server name).
	Name string `json:"name"`
	// Up is false when the cluster has seen the node shut down or lost track of it.
	Up bool `json:"up"`
	// Leaders is the number of partitions whose stream the node leads.
	Leaders int `json:"leaders"`
	// Replicas is the number of partition replicas placed on the node, the ones it
	// leads included.
	Replicas int `json:"replicas"`
	// Lag is the sum over the partitions the node follows of how many operations it
	// is behind their leaders, as the leaders last saw.
	Lag uint64 `json:"lag,omitempty"`
	// Sync is the node's --sync: "always" (every append synced to disk before it
	// is acknowledged) or the interval of its background sync; "" when the node
	// did not answer.
	Sync string `json:"sync,omitempty"`
	// Kafka is the host:port the node's Kafka listener advertises to Kafka
	// clients; "" when it has none or did not answer.
	Kafka string `json:"kafka,omitempty"`
}

// UnderReplicated is a partition with fewer current replicas than its topic's
// replication factor. The leader counts as current; a follower is current when
// its leader sees it caught up and the node is not offline.
type UnderReplicated struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Leader is the node leading the partition's stream, "" when it has none.
	Leader string `json:"leader"`
	// Replicas is the topic's replication factor.
	Replicas int `json:"replicas"`
	// Current is how many replicas are current, the leader included.
	Current int `json:"current"`
	// OutOfSync names the replicas that are not current, sorted.
	OutOfSync []string `json:"out_of_sync,omitempty"`
}
