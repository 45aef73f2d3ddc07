package semantics

// RepairPartitionRequest asks a node to rebuild the copy of partition Partition of
// topic Name that node Node holds ("": the one node its damage record names) from
// the partition's other replicas, which must be current and read back intact
// first. The answer (RepairPartitionResponse) comes when the rebuilt copy is
// current and verified, or with the error that stopped the repair.
type RepairPartitionRequest struct {
	Name      string `json:"name"`
	Partition int32  `json:"partition"`
	Node      string `json:"node,omitempty"`
}

// RepairPartitionResponse answers a RepairPartitionRequest.
type RepairPartitionResponse struct {
	Error *APIError `json:"error,omitempty"`
	// Node is the node whose copy was dropped.
	Node string `json:"node"`
	// Verified are the nodes whose copies were read back intact before it was.
	Verified []string `json:"verified"`
	// Rebuilt is the node that holds the new copy: Node itself, rebuilt from the
	// others (a cluster with no node to spare), or another node. It is "" when
	// Node held no copy any more (its replica moved, or it left the cluster):
	// then nothing was dropped, and once every copy in Replicas read back
	// intact (Verified) the damage entries naming Node were removed.
	Rebuilt string `json:"rebuilt"`
	// Replicas are the nodes holding the partition afterwards.
	Replicas []string `json:"replicas"`
	// Batches is how many batches the new copy was read back with, intact.
	Batches uint64 `json:"batches"`
}

// Failure returns the response's error, nil on success.
func (r *RepairPartitionResponse) Failure() error { return r.Error.Err() }
