package qxd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// PartitionRepair is what RepairPartition did.
type PartitionRepair struct {
	Partition int32
	// Node is the node whose damaged copy was dropped.
	Node string
	// Verified are the nodes whose copies were read back intact before it was.
	Verified []string
	// Rebuilt is the node holding the new copy: Node itself (a cluster with no
	// node to spare) or another node; "" when Node held no copy any more (its
	// replica moved, or it left the cluster): nothing was dropped, and the
	// damage entries naming Node were removed once every copy read back intact.
	Rebuilt string
	// Replicas are the nodes holding the partition afterwards.
	Replicas []string
	// Batches is how many batches the new copy read back, intact.
	Batches uint64
}

// RepairWait bounds how long RepairPartition waits for a node's answer (when ctx
// has no earlier deadline): the node verifies every copy and waits for the new one
// to catch up.
const RepairWait = 11 * time.Minute

// RepairPartition rebuilds the copy of partition p of topic that node holds (""
// for the one node the partition's damage record names) from the partition's
// other replicas: a node first reads each other copy back (making it lead in
// turn) and refuses, changing nothing, unless all are current and intact; it then
// drops the damaged copy, lets JetStream place a fresh one (on the same node when
// no other can take it), and reads that back. Producers see the partition's
// leadership move meanwhile. It answers once the new copy is verified.
func (a *Admin) RepairPartition(ctx context.Context, topic string, p int32, node string) (PartitionRepair, error) {
	out := PartitionRepair{Partition: p}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, RepairWait)
		defer cancel()
	}
	b, _ := json.Marshal(semantics.RepairPartitionRequest{Name: topic, Partition: p, Node: node})
	m, err := a.c.requestWatched(ctx, topicAPISubject(semantics.APITopicRepair, topic), b)
	if err != nil {
		return out, fmt.Errorf("repair partition %s: %w", semantics.PartitionString(topic, p), wrapNATSError(err))
	}
	var resp semantics.RepairPartitionResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return out, semantics.Errorf(semantics.ErrInvalidRequest, "malformed response on %s: %v", m.Subject, err)
	}
	out.Node, out.Verified, out.Rebuilt, out.Replicas, out.Batches = resp.Node, resp.Verified, resp.Rebuilt, resp.Replicas, resp.Batches
	return out, resp.Error.Err()
}
