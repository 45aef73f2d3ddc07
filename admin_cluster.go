package qxd

import (
	"context"
	"fmt"

	"github.com/qxd-io/qxd/semantics"
)

// ClusterInfo is the cluster's health: its nodes (up, partitions led, replicas
// held), the meta leader, and the under-replicated partitions. See
// semantics.ClusterInfo for the fields. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type ClusterInfo = semantics.ClusterInfo

// NodeInfo is one node in ClusterInfo. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type NodeInfo = semantics.NodeInfo

// UnderReplicated is a partition with fewer current replicas than its topic's
// replication factor. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type UnderReplicated = semantics.UnderReplicated

// ClusterInfo asks a node for the cluster's nodes, its meta leader and the
// partitions that are under-replicated. Any node answers; a single node reports
// itself as the only node, leading every partition.
func (a *Admin) ClusterInfo(ctx context.Context) (ClusterInfo, error) {
	var resp semantics.ClusterInfo
	if err := a.c.query(ctx, semantics.APIClusterInfo, struct{}{}, &resp); err != nil {
		return ClusterInfo{}, fmt.Errorf("cluster info: %w", err)
	}
	if err := resp.Failure(); err != nil {
		return ClusterInfo{}, err
	}
	return resp, nil
}

// Metadata is a one-shot view of the cluster, as kcat -L shows Kafka's: the nodes
// with their addresses, and per partition the leader, replicas and in-sync
// replicas. See semantics.Metadata for the fields. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type Metadata = semantics.Metadata

// Metadata asks a node for the cluster's metadata: of the topics named, or of every
// topic when none is. A topic named that does not exist is listed with its error.
func (a *Admin) Metadata(ctx context.Context, topics ...string) (Metadata, error) {
	var resp semantics.Metadata
	if err := a.c.query(ctx, semantics.APIClusterMetadata, semantics.MetadataRequest{Topics: topics}, &resp); err != nil {
		return Metadata{}, fmt.Errorf("metadata: %w", err)
	}
	if err := resp.Failure(); err != nil {
		return Metadata{}, err
	}
	return resp, nil
}
