package semantics

// MetadataRequest asks for the metadata of Topics, or of every topic when empty.
type MetadataRequest struct {
	Topics []string `json:"topics,omitempty"`
}

// Metadata answers APIClusterMetadata.
type Metadata struct {
	// Cluster is the NATS cluster name ("" for a single node).
	Cluster string `json:"cluster"`
	// MetaLeader is the node leading JetStream's meta group (Kafka's controller),
	// "" while there is none.
	MetaLeader string `json:"meta_leader"`
	// Brokers are the nodes, sorted by name.
	Brokers []BrokerInfo `json:"brokers"`
	// Topics are sorted by name.
	Topics []TopicMetadata `json:"topics"`
	Error  *APIError       `json:"error,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *Metadata) Failure() error { return r.Error.Err() }

// BrokerInfo is one node in Metadata.
type BrokerInfo struct {
	Name string `json:"name"`
	// Addr is the host:port the node takes clients on; "" when the node did not
	// answer (it is down, or slow).
	Addr string `json:"addr"`
	// Up is false when the cluster saw the node shut down or lost track of it.
	Up bool `json:"up"`
	// Sync is the node's --sync: "always" (every append synced to disk before it
	// is acknowledged) or the interval of its background sync; "" when the node
	// did not answer.
	Sync string `json:"sync,omitempty"`
	// Kafka is the host:port the node's Kafka listener advertises to Kafka
	// clients; "" when it has none or did not answer.
	Kafka string `json:"kafka,omitempty"`
	// Reaches names the other nodes the node has a route to now, each with how
	// long ago, in milliseconds, it last heard that node answer its probes of
	// NodeInfoSubject. A node that is cut from one peer while another still
	// reaches that peer learns so from the other's answer (the pre-vote of the
	// election watch). Empty from a node alone, and in Metadata.
	Reaches map[string]int64 `json:"reaches,omitempty"`
}

// TopicMetadata is one topic in Metadata.
type TopicMetadata struct {
	Name       string              `json:"name"`
	ID         string              `json:"id"`
	State      TopicState          `json:"state"`
	Replicas   int                 `json:"replicas"`
	Partitions []PartitionMetadata `json:"partitions"`
	// Error is set for a topic asked for by name that does not exist.
	Error *APIError `json:"error,omitempty"`
}

// PartitionMetadata is one partition in Metadata.
type PartitionMetadata struct {
	Partition int32 `json:"partition"`
	// Leader is "" while the partition's stream has no leader.
	Leader string `json:"leader"`
	// Replicas are the nodes holding a replica, sorted by name.
	Replicas []string `json:"replicas"`
	// InSync are the replicas that are current (Kafka's ISR): the leader, and the
	// followers it sees caught up and that are not offline; sorted by name.
	InSync []string `json:"in_sync"`
	// Problem is set when no node answered for the partition's stream.
	Problem string `json:"problem,omitempty"`
}
