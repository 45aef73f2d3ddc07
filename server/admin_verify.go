package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// verifyBudget bounds how long one verify request reads before it answers with
// where to go on, well inside adminTimeout.
const verifyBudget = 10 * time.Second

// VerifyPartition reads back the batches partition req.Partition of topic
// req.Name stores on its leader (on req.Node, made to lead it first, when set),
// one after the other from req.FromSeq, and checks
// each: that the store returns every sequence between the first and the last it
// holds, that the batch passes its Kafka CRC-32C and format checks, and (on a
// topic that is not compacted) that its offsets follow the previous batch's. It
// reports what it found and changes nothing. It stops after verifyBudget and says
// where to go on.
func (a *Admin) VerifyPartition(ctx context.Context, req semantics.VerifyPartitionRequest) (semantics.VerifyPartitionResponse, error) {
	if err := semantics.ValidateTopicName(req.Name); err != nil {
		return semantics.VerifyPartitionResponse{}, err
	}
	t, err := a.meta.getTopic(ctx, req.Name)
	if err != nil {
		return semantics.VerifyPartitionResponse{}, err
	}
	if req.Partition < 0 || req.Partition >= t.Config.Partitions {
		return semantics.VerifyPartitionResponse{}, semantics.Errorf(semantics.ErrUnknownTopic,
			"partition %d of topic %q does not exist: the topic has partitions 0 to %d", req.Partition, req.Name, t.Config.Partitions-1)
	}
	part := semantics.PartitionString(req.Name, req.Partition)
	if req.Node != "" {
		if err := a.leadForVerify(ctx, semantics.StreamName(req.Name, req.Partition), part, req.Node); err != nil {
			return semantics.VerifyPartitionResponse{}, err
		}
	}
	r := partition.NewReader(a.nc, req.Name, req.Partition, false) // not direct: the leader's copy
	st, err := r.StreamInfo(ctx)
	if err != nil {
		return semantics.VerifyPartitionResponse{}, fmt.Errorf("verify partition %s: %w", part, err)
	}
	v := verifier{r: r, compact: t.Config.Compact, leader: st.Leader, next: req.NextOffset}
	if v.leader == "" {
		v.leader = a.ns.Name() // a single node: no cluster info
	}
	if req.Node != "" && v.leader != req.Node {
		return semantics.VerifyPartitionResponse{}, semantics.Errorf(semantics.ErrNotLeader,
			"verify partition %s on node %s: node %s leads it now; verify again", part, req.Node, v.leader)
	}
	from := max(req.FromSeq, st.FirstSeq, 1)
	resp := semantics.VerifyPartitionResponse{Leader: v.leader, FirstSeq: from, LastSeq: st.LastSeq}
	if st.Msgs == 0 || from > st.LastSeq {
		resp.NextOffset = v.next
		if st.Msgs == 0 { // nothing stored: nothing up to the last sequence can be damaged
			kctx, cancel := bookkeeping(ctx)
			a.keepVerified(kctx, t, req.Partition, resp, 0, st.LastSeq)
			cancel()
		}
		return resp, nil
	}
	deadline := time.Now().Add(verifyBudget)
	if d, ok := ctx.Deadline(); ok && time.Until(d) < 2*verifyBudget {
		deadline = time.Now().Add(time.Until(d) / 2)
	}
	seq, err := v.run(ctx, &resp, from, st.LastSeq, deadline)
	if err != nil {
		return semantics.VerifyPartitionResponse{}, fmt.Errorf("verify partition %s at stream sequence %d: %w", semantics.PartitionString(req.Name, req.Partition), seq, err)
	}
	if seq <= st.LastSeq {
		resp.NextSeq, resp.LastSeq = seq, seq-1
	}
	resp.NextOffset = v.next
	// The stretch read: from the log's start when the request began there (what
	// lies before it is gone), to the last sequence read. Only when the same node
	// led all along was it one node's copy.
	lo, hi := from, seq-1
	if from <= st.FirstSeq {
		lo = 0
	}
	kctx, cancel := bookkeeping(ctx)
	defer cancel()
	if after, err := r.StreamInfo(kctx); err != nil || (after.Leader != "" && after.Leader != v.leader) {
		hi = 0 // not known to be the leader's copy throughout: clear nothing
	}
	a.keepVerified(kctx, t, req.Partition, resp, lo, hi)
	return resp, nil
}

// bookkeeping is the context of what a verify records once its reads are done
// (the leader check after them, the damage record): not the caller's, whose
// deadline a verify in short pages may reach just after the reads, and the page
// would be answered with its damage found or cleared left unrecorded, never to
// be read again; bounded on its own.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// keepVerified records in partition p's damage record what a verify found
// damaged (a corrupt or unreadable batch), and, when it found nothing, removes
// the leader's entries for stream sequences lo to hi, which it read intact (hi
// 0: none). A verify in pages thus clears the record page by page.
func (a *Admin) keepVerified(ctx context.Context, t semantics.TopicMeta, p int32, resp semantics.VerifyPartitionResponse, lo, hi uint64) {
	for _, d := range resp.Damage {
		if d.Kind != semantics.DamageCorrupt && d.Kind != semantics.DamageUnreadable {
			continue
		}
		if err := damageFound(ctx, a.log, a.meta, t, p, d, false); err != nil {
			a.log.Warn("damage not recorded", "topic", t.Name, "partition", p, "node", d.Node, "err", err)
		}
	}
	if hi == 0 || hi < lo || len(resp.Damage) > 0 {
		return
	}
	if cleared, err := a.meta.clearDamage(ctx, t.ID, p, resp.Leader, lo, hi); err != nil {
		a.log.Warn("damage record not cleared", "topic", t.Name, "partition", p, "node", resp.Leader, "err", err)
	} else if cleared {
		a.log.Info("partition copy verified intact: damage record cleared", "topic", t.Name, "partition", p, "node", resp.Leader)
	}
}

// verifier checks one partition's stored batches in log order.
type verifier struct {
	r       *partition.Reader
	compact bool
	leader  string
	next    int64 // the offset the next batch should start at; -1 when not known
}

// run checks the batches stored at sequences from to last, adding what it finds to
// resp, until deadline. It returns the sequence to go on from (last+1 when done).
func (v *verifier) run(ctx context.Context, resp *semantics.VerifyPartitionResponse, from, last uint64, deadline time.Time) (uint64, error) {
	seq := from
	for seq <= last && time.Now().Before(deadline) {
		m, err := v.r.Get(ctx, seq)
		if errors.Is(err, semantics.ErrNoBatch) {
			v.gap(ctx, resp, seq, last, -1)
			return last + 1, nil
		}
		if err != nil {
			return seq, err
		}
		if m.Seq > last { // the last ones are gone from the store
			v.gap(ctx, resp, seq, last, -1)
			return last + 1, nil
		}
		if m.Seq > seq {
			base := int64(-1)
			if h, err := semantics.PeekBatchHeader(m.Data); err == nil {
				base = h.BaseOffset
			}
			v.gap(ctx, resp, seq, m.Seq-1, base)
		}
		h, err := semantics.ParseBatchHeader(m.Data)
		if err != nil {
			v.corrupt(resp, m.Seq, m.Data, err)
			seq = m.Seq + 1
			continue
		}
		if !v.compact && v.next >= 0 && h.BaseOffset != v.next {
			d := semantics.BatchDamage{Kind: semantics.DamageOffsets, FromSeq: m.Seq, ToSeq: m.Seq, Node: v.leader}
			if h.BaseOffset > v.next {
				d.FromOffset, d.ToOffset = v.next, h.BaseOffset-1
				d.Detail = fmt.Sprintf("offsets %d to %d are in no stored batch on node %s: the batch at stream sequence %d starts at offset %d",
					v.next, h.BaseOffset-1, v.leader, m.Seq, h.BaseOffset)
			} else {
				d.FromOffset, d.ToOffset = h.BaseOffset, v.next-1
				d.Detail = fmt.Sprintf("the batch at stream sequence %d on node %s starts at offset %d, which an earlier batch already holds (up to %d)",
					m.Seq, v.leader, h.BaseOffset, v.next-1)
			}
			resp.Damage = append(resp.Damage, d)
		}
		resp.Batches++
		resp.Records += int64(h.NumRecords)
		resp.Bytes += uint64(len(m.Data))
		v.next = h.LastOffset() + 1
		seq = m.Seq + 1
	}
	return seq, nil
}

// corrupt records that the batch data stored at stream sequence seq fails its
// checks with err.
func (v *verifier) corrupt(resp *semantics.VerifyPartitionResponse, seq uint64, data []byte, err error) {
	from, to := v.next, int64(-1)
	if ph, perr := semantics.PeekBatchHeader(data); perr == nil {
		from, to = ph.BaseOffset, ph.LastOffset()
	}
	resp.Damage = append(resp.Damage, semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: seq, ToSeq: seq,
		FromOffset: from, ToOffset: to, Node: v.leader,
		Detail: fmt.Sprintf("the batch stored at stream sequence %d on node %s fails its checks: %v", seq, v.leader, err)})
	v.next = -1
}

// gap records that stream sequences from to to hold nothing the leader's store
// returns, unless retention or a trim removed them meanwhile (the head moved past
// them) or the topic is compacted (compaction removes batches anywhere). base is
// the offset of the batch after the gap, -1 when none or not known.
func (v *verifier) gap(ctx context.Context, resp *semantics.VerifyPartitionResponse, from, to uint64, base int64) {
	if v.compact {
		return
	}
	if st, err := v.r.StreamInfo(ctx); err == nil && st.FirstSeq > to {
		v.next = -1 // the head moved: offsets start afresh
		return
	}
	d := semantics.BatchDamage{Kind: semantics.DamageUnreadable, FromSeq: from, ToSeq: to, FromOffset: v.next, ToOffset: -1, Node: v.leader}
	if base > 0 {
		d.ToOffset = base - 1
	}
	offsets := "offsets not known"
	switch {
	case d.FromOffset >= 0 && d.ToOffset >= d.FromOffset:
		offsets = fmt.Sprintf("offsets %d to %d", d.FromOffset, d.ToOffset)
	case d.FromOffset >= 0:
		offsets = fmt.Sprintf("offsets from %d", d.FromOffset)
	case d.ToOffset >= 0:
		offsets = fmt.Sprintf("offsets up to %d", d.ToOffset)
	}
	seqs := fmt.Sprintf("stream sequences %d to %d", from, to)
	if from == to {
		seqs = fmt.Sprintf("stream sequence %d", from)
	}
	d.Detail = fmt.Sprintf("%s (%s) cannot be read from node %s: its stored data is damaged", seqs, offsets, v.leader)
	resp.Damage = append(resp.Damage, d)
	if base >= 0 {
		v.next = base // the batch after the gap is checked against itself, not the gap
	} else {
		v.next = -1
	}
}

// leadForVerify makes node, a replica of stream, lead it, for a verify of its copy.
func (a *Admin) leadForVerify(ctx context.Context, stream, part, node string) error {
	st, err := a.groupState(ctx, stream)
	if err != nil {
		return fmt.Errorf("verify partition %s on node %s: %w", part, node, err)
	}
	peers := st.peers()
	if len(peers) == 0 { // a single node: no cluster info
		peers = []string{a.ns.Name()}
	}
	if !slices.Contains(peers, node) {
		return semantics.Errorf(semantics.ErrInvalidRequest, "verify partition %s on node %s: the node holds no copy of it (its replicas are on %s): name one of them",
			part, node, strings.Join(peers, ", "))
	}
	if st.Leader == "" && node == a.ns.Name() {
		return nil
	}
	if err := a.leadOn(ctx, stream, node); err != nil {
		return fmt.Errorf("verify partition %s on node %s: %w", part, node, err)
	}
	return nil
}
