package qxd

import (
	"context"
	"fmt"

	"github.com/qxd-io/qxd/semantics"
)

// BatchDamage is one stretch of a partition's stored log that a verify found
// damaged: its kind (semantics.DamageUnreadable, DamageCorrupt, DamageOffsets),
// stream sequences, offsets, node and a sentence saying what is wrong. It is part
// of the wire contract (the admin API's JSON form), shared with the node and the
// CLI.
type BatchDamage = semantics.BatchDamage

// PartitionCheck is what VerifyPartition found in one partition.
type PartitionCheck struct {
	Partition int32
	// Leader is the node whose stored copy was read.
	Leader string
	// Batches, Records and Bytes are what was read back intact.
	Batches uint64
	Records int64
	Bytes   uint64
	// Damage lists what was found wrong, in log order; empty when the partition is
	// whole.
	Damage []BatchDamage
}

// VerifyPartition reads back every batch partition p of topic stores on its
// leader and checks it: the store returns each stream sequence between the first
// and the last it holds, each batch passes its Kafka CRC-32C and format checks,
// and (unless the topic is compacted) its offsets follow the previous batch's. It
// changes nothing. It reads the whole partition, one batch per request to the
// leader, so it takes a while on a large one; batches appended after it started
// are not checked.
func (a *Admin) VerifyPartition(ctx context.Context, topic string, p int32) (PartitionCheck, error) {
	return a.VerifyPartitionOn(ctx, topic, p, "")
}

// VerifyPartitionOn is VerifyPartition of the copy replica node holds: the node
// answering first makes node lead the partition (only the leader's copy can be
// read sequence by sequence), so producers see its leadership move. It fails if
// the leadership moves again before the verify is done. "" verifies the leader's
// copy, as VerifyPartition does.
func (a *Admin) VerifyPartitionOn(ctx context.Context, topic string, p int32, node string) (PartitionCheck, error) {
	out := PartitionCheck{Partition: p}
	req := semantics.VerifyPartitionRequest{Name: topic, Partition: p, NextOffset: -1, Node: node}
	for {
		var resp semantics.VerifyPartitionResponse
		if err := a.c.query(ctx, topicAPISubject(semantics.APITopicVerify, topic), req, &resp); err != nil {
			return out, fmt.Errorf("verify partition %s: %w", semantics.PartitionString(topic, p), err)
		}
		if err := resp.Error.Err(); err != nil {
			return out, err
		}
		out.Leader = resp.Leader
		out.Batches += resp.Batches
		out.Records += resp.Records
		out.Bytes += resp.Bytes
		out.Damage = append(out.Damage, resp.Damage...)
		if resp.NextSeq == 0 {
			return out, nil
		}
		req.FromSeq, req.NextOffset = resp.NextSeq, resp.NextOffset
	}
}
