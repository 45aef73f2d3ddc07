package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// verifyUsage is the --verify flag's help of "topic describe".
const verifyUsage = "also read back every batch of each partition on its leader and check it (CRC-32C, format, offsets following on); " +
	"reports damage, changes nothing, exits with status 1 when a partition is damaged; reads the whole topic, so it takes a while on a large one"

// verifyReplicasUsage is the --verify-replicas flag's help of "topic describe".
const verifyReplicasUsage = "as --verify, reading back every replica's copy, not only the leader's: each replica in turn is made to lead " +
	"the partition while its copy is read (producers see the leadership move); names the node of each finding"

// verifyJSON is one partition's verify in "topic describe --verify --json".
type verifyJSON struct {
	Leader  string            `json:"leader"`
	Batches uint64            `json:"batches"`
	Records int64             `json:"records"`
	Bytes   uint64            `json:"bytes"`
	Damage  []qxd.BatchDamage `json:"damage"`
	Error   string            `json:"error,omitempty"`
	// Copies are the verifies of each replica's copy (--verify-replicas); Damage
	// and Error above then sum them up.
	Copies []*verifyJSON `json:"copies,omitempty"`
}

// verifyPartitions verifies each partition of d that describe could read (every
// replica's copy with replicas, else the leader's), and returns what each showed,
// by partition.
func verifyPartitions(ctx context.Context, adm *qxd.Admin, d qxd.TopicDescription, replicas bool) map[int32]*verifyJSON {
	out := map[int32]*verifyJSON{}
	one := func(p int32, node string) *verifyJSON {
		chk, err := adm.VerifyPartitionOn(ctx, d.Topic.Name, p, node)
		v := &verifyJSON{Leader: chk.Leader, Batches: chk.Batches, Records: chk.Records, Bytes: chk.Bytes,
			Damage: append([]qxd.BatchDamage{}, chk.Damage...)}
		if err != nil {
			v.Error = err.Error()
			if v.Leader == "" {
				v.Leader = node
			}
		}
		return v
	}
	for _, p := range d.Partitions {
		if p.Problem != "" {
			continue
		}
		if !replicas || len(p.Replicas) < 2 {
			out[p.Partition] = one(p.Partition, "")
			continue
		}
		all := &verifyJSON{Leader: p.Leader, Damage: []qxd.BatchDamage{}}
		for _, node := range p.Replicas {
			v := one(p.Partition, node)
			all.Copies = append(all.Copies, v)
			all.Damage = append(all.Damage, v.Damage...)
			if v.Error != "" && all.Error == "" {
				all.Error = v.Error
			}
		}
		all.Batches, all.Records, all.Bytes = all.Copies[0].Batches, all.Copies[0].Records, all.Copies[0].Bytes
		out[p.Partition] = all
	}
	return out
}

// verifyProblem is the PROBLEM column for a partition a verify found damaged, ""
// when it did not.
func verifyProblem(v *verifyJSON) string {
	switch {
	case v == nil:
		return ""
	case v.Error != "":
		return "VERIFY FAILED"
	case len(v.Damage) == 0:
		return ""
	}
	var kinds []string
	for _, k := range []string{semantics.DamageUnreadable, semantics.DamageCorrupt, semantics.DamageOffsets} {
		n := 0
		for _, d := range v.Damage {
			if d.Kind == k {
				n++
			}
		}
		if n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
	}
	return "DAMAGED: " + strings.Join(kinds, ", ")
}

// maxDamageNotes bounds the damage notes printed per partition.
const maxDamageNotes = 10

// writeVerifyNotes prints, after describe's partition table, what the verify of
// each partition read and every damage it found, and returns the partitions found
// damaged or not verified.
func writeVerifyNotes(w io.Writer, d qxd.TopicDescription, vs map[int32]*verifyJSON) (bad []int32) {
	fmt.Fprintln(w)
	for _, p := range d.Partitions {
		v := vs[p.Partition]
		if v == nil {
			fmt.Fprintf(w, "verify: partition %d not verified: %s\n", p.Partition, oneLine(p.Problem))
			bad = append(bad, p.Partition)
			continue
		}
		copies := v.Copies
		if len(copies) == 0 {
			copies = []*verifyJSON{v}
		}
		damaged := false
		for _, v := range copies {
			if writeCopyNotes(w, p.Partition, v, len(v.Copies) > 0 || len(copies) > 1) {
				damaged = true
			}
		}
		if damaged {
			bad = append(bad, p.Partition)
		}
	}
	return bad
}

// writeCopyNotes prints what the verify of one copy of partition p read and found
// (naming its node when named), and reports whether it was damaged or not
// verified.
func writeCopyNotes(w io.Writer, p int32, v *verifyJSON, named bool) bool {
	if v.Error != "" {
		if named {
			fmt.Fprintf(w, "verify: partition %d on node %s: %s\n", p, dash(v.Leader), oneLine(v.Error))
		} else {
			fmt.Fprintf(w, "verify: partition %d: %s\n", p, oneLine(v.Error))
		}
		return true
	}
	state := "intact"
	if len(v.Damage) > 0 {
		state = fmt.Sprintf("DAMAGED (%d findings)", len(v.Damage))
	}
	fmt.Fprintf(w, "verify: partition %d on node %s: %d batches, %d records, %d bytes read back; %s\n",
		p, dash(v.Leader), v.Batches, v.Records, v.Bytes, state)
	for i, dm := range v.Damage {
		if i == maxDamageNotes {
			fmt.Fprintf(w, "  … and %d more (--json lists them all)\n", len(v.Damage)-i)
			break
		}
		fmt.Fprintf(w, "  %s: %s\n", dm.Kind, dm.Detail)
	}
	return len(v.Damage) > 0
}

// verifyErr is describe --verify's error when partitions are damaged or could not
// be verified.
func verifyErr(topic string, bad []int32) error {
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("topic %q: partitions %v are damaged or could not be verified (see above): rebuild a damaged copy from the healthy replicas with 'qxd topic repair %s', or restore the partition", topic, bad, topic)
}
