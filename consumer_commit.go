// Commits: the group's committed offsets set by the application (Commit,
// CommitOffsets, CommitRecords, marks for AutoCommitMarks) and read back
// (Committed). Auto-commit is the member's, in consumer_group.go.

package qxd

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// Commit commits the positions Poll has returned for every assigned partition (with
// AutoCommitMarks: the positions after the marked records): the group resumes there
// after a rebalance or a restart.
func (c *Consumer) Commit(ctx context.Context) error {
	c.mu.Lock()
	m := c.member
	o := map[TopicPartition]OffsetAndMetadata{}
	for tp, pc := range c.parts {
		switch {
		case c.cfg.group.autoCommitMarks:
			if pc.hasMarked {
				o[tp] = OffsetAndMetadata{Offset: pc.marked}
			}
		case pc.delivered:
			o[tp] = OffsetAndMetadata{Offset: pc.next}
		}
	}
	c.mu.Unlock()
	if m == nil {
		return c.commitStandalone(ctx, o)
	}
	if len(o) == 0 {
		return nil
	}
	return m.commit(ctx, o)
}

// CommitOffsets commits the given next offsets: for each partition, the offset of
// the next record to read. A topic or partition that does not exist is refused
// with ErrUnknownTopic, an offset beyond the partition's high watermark with
// ErrOffsetOutOfRange, as Kafka refuses them; a refused commit changes nothing.
func (c *Consumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	o := make(map[TopicPartition]OffsetAndMetadata, len(offsets))
	for tp, off := range offsets {
		o[tp] = OffsetAndMetadata{Offset: off}
	}
	return c.CommitOffsetsAndMetadata(ctx, o)
}

// OffsetAndMetadata is a committed offset (the next record to read) and the
// metadata string committed with it, as Kafka's OffsetAndMetadata.
type OffsetAndMetadata struct {
	Offset   int64
	Metadata string
}

// CommitOffsetsAndMetadata is CommitOffsets with a metadata string per partition
// (at most 4096 bytes), which Committed and the group's description return.
func (c *Consumer) CommitOffsetsAndMetadata(ctx context.Context, offsets map[TopicPartition]OffsetAndMetadata) error {
	if err := c.checkCommitOffsets(ctx, offsets); err != nil {
		return err
	}
	c.mu.Lock()
	m := c.member
	c.mu.Unlock()
	if m == nil {
		return c.commitStandalone(ctx, offsets)
	}
	return m.commit(ctx, offsets)
}

// CommitRecords commits, for each partition of rs, the offset after the last of
// its records in rs: those records and every one before them in their partitions
// are done, as kgo's CommitRecords.
func (c *Consumer) CommitRecords(ctx context.Context, rs ...*Record) error {
	o := map[TopicPartition]OffsetAndMetadata{}
	for _, r := range rs {
		tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if r.Offset+1 > o[tp].Offset {
			o[tp] = OffsetAndMetadata{Offset: r.Offset + 1}
		}
	}
	if len(o) == 0 {
		return nil
	}
	return c.CommitOffsetsAndMetadata(ctx, o)
}

// MarkCommitRecords marks records as processed: with AutoCommitMarks, auto-commit,
// the commit before a rebalance and Close commit only the positions after marked
// records, so a record is committed only once the application says it is done
// with it (kgo's MarkCommitRecords). Marks of partitions not assigned are ignored;
// a mark never moves a partition's mark back.
func (c *Consumer) MarkCommitRecords(rs ...*Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		pc := c.parts[TopicPartition{Topic: r.Topic, Partition: r.Partition}]
		if pc != nil && (!pc.hasMarked || r.Offset+1 > pc.marked) && r.Offset < pc.next {
			pc.marked, pc.hasMarked = r.Offset+1, true
		}
	}
}

// Committed reads the group's committed offsets and metadata of tps (all the
// group's partitions when none are given). A read-committed consumer
// (Isolation(ReadCommitted)) reads stable offsets, as Kafka's does: while a
// transaction not yet completed holds the offset of one of tps, Committed waits
// for it (until ctx ends), so that it never returns the offset from before a
// transaction that commits.
func (c *Consumer) Committed(ctx context.Context, tps ...TopicPartition) (map[TopicPartition]OffsetAndMetadata, error) {
	if c.cfg.group.id == "" {
		return nil, ErrNotInGroup
	}
	var got map[TopicPartition]semantics.OffsetEntry
	var err error
	if c.cfg.isolation == ReadCommitted {
		got, err = c.c.fetchStable(ctx, c.cfg.group.id, tps, nil)
	} else {
		got, err = c.c.fetchCommitted(ctx, c.cfg.group.id, tps)
	}
	if err != nil {
		return nil, groupErr("read the committed offsets of", c.cfg.group.id, err)
	}
	out := make(map[TopicPartition]OffsetAndMetadata, len(got))
	for tp, e := range got {
		out[tp] = OffsetAndMetadata{Offset: e.Offset, Metadata: e.Metadata}
	}
	return out, nil
}

// SeekToCommitted moves the consumer's position in tps (every assigned partition
// when none are given) back to the group's committed offsets, and to the
// partition's start where the group committed none: what a transactional
// pipeline does after AbortTransaction, so that it reads the aborted
// transaction's input again. Records buffered from those partitions are dropped.
func (c *Consumer) SeekToCommitted(ctx context.Context, tps ...TopicPartition) error {
	if len(tps) == 0 {
		tps = c.Assigned()
	}
	if len(tps) == 0 {
		return nil
	}
	committed, err := c.Committed(ctx, tps...)
	if err != nil {
		return err
	}
	for _, tp := range tps {
		at := AtStart()
		if o, ok := committed[tp]; ok {
			at = At(o.Offset)
		}
		if err := c.Seek(ctx, tp.Topic, tp.Partition, at); err != nil {
			return err
		}
	}
	return nil
}

// checkCommitOffsets refuses offsets beyond their partition's high watermark. An
// offset at or before the position Poll reached is below it and needs no read.
// The coordinator checks the topics and partitions.
func (c *Consumer) checkCommitOffsets(ctx context.Context, offsets map[TopicPartition]OffsetAndMetadata) error {
	if c.cfg.group.id == "" {
		return ErrNotInGroup
	}
	// The group's right first: without it the commit is refused for that, whatever
	// the offsets.
	if err := c.c.authorizeTopic(ctx, semantics.OpGroup, c.cfg.group.id); err != nil {
		return err
	}
	for tp, om := range offsets {
		off := om.Offset
		if off < 0 {
			// Kafka's logical offsets (-1 latest, -2 earliest), which a Kafka
			// client's commit stores to clear a position, mean nothing to the
			// SDK's reader.
			return semantics.Errorf(semantics.ErrInvalidRequest, "commit %s: offset %d is negative: commit the next offset to read (0 or more); to move a group's position use Admin.SeekGroup or 'qxd group seek'", tp, off)
		}
		c.mu.Lock()
		pc := c.parts[tp]
		seen := c.highWater[tp]
		c.mu.Unlock()
		if pc != nil && off <= pc.next {
			continue
		}
		if pc == nil {
			// Reading the high watermark takes consume rights on the topic, as a
			// commit does in Kafka.
			if err := c.c.authorizeTopic(ctx, semantics.OpConsume, tp.Topic); err != nil {
				return err
			}
			// A high watermark read before answers a commit checked again (it
			// never goes back), with no read of the topic's record either; the
			// commit carries the id of the topic it was read of, so that the
			// coordinator refuses it if the topic was created again since
			// (offsetEntriesLocked).
			if seen.topicID != "" && off <= seen.offset {
				continue
			}
			meta, err := c.c.topic(ctx, tp.Topic)
			if err != nil {
				return fmt.Errorf("commit %s: %w", tp, err)
			}
			if tp.Partition < 0 || tp.Partition >= meta.Config.Partitions {
				return semantics.Errorf(semantics.ErrUnknownTopic, "commit %s: topic %q has partitions 0 to %d: partition %d does not exist",
					tp, tp.Topic, meta.Config.Partitions-1, tp.Partition)
			}
			pc = newPartSource(c.c, meta, tp.Partition, true)
		}
		// A high watermark read before, of the same topic, answers a commit
		// checked again; any replica's last batch answers most others: a commit
		// is seldom past what is stored, and the stream's leader, which
		// ReadOffsets needs, may be the node that just paused or was cut off.
		if seen.topicID == pc.meta.ID && off <= seen.offset {
			continue
		}
		if hw, err := pc.reader.ReplicaHighWatermark(ctx); err == nil {
			c.sawHighWater(tp, pc.meta.ID, hw)
			if off <= hw {
				continue
			}
		}
		offs, err := pc.readOffsets(ctx, c.c)
		if err != nil {
			return fmt.Errorf("commit %s: read its high watermark: %w", tp, err)
		}
		c.sawHighWater(tp, pc.meta.ID, offs.HighWatermark)
		if off > offs.HighWatermark {
			return semantics.Errorf(semantics.ErrOffsetOutOfRange,
				"commit %s at offset %d: beyond the partition's high watermark %d: commit the offset after the last record processed, at most %d",
				tp, off, offs.HighWatermark, offs.HighWatermark)
		}
	}
	return nil
}

// seenHighWater is a high watermark a commit's range check read.
type seenHighWater struct {
	topicID string
	offset  int64
}

// sawHighWater keeps hw as tp's high watermark, read of the topic with id
// topicID, if it is the highest read of that topic.
func (c *Consumer) sawHighWater(tp TopicPartition, topicID string, hw int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seen, ok := c.highWater[tp]; ok && seen.topicID == topicID && seen.offset >= hw {
		return
	}
	if c.highWater == nil {
		c.highWater = map[TopicPartition]seenHighWater{}
	}
	c.highWater[tp] = seenHighWater{topicID: topicID, offset: hw}
}

// groupErr says which operation on which group failed, unless err (the
// coordinator's answer) names the group already.
func groupErr(op, group string, err error) error {
	if strings.Contains(err.Error(), strconv.Quote(group)) {
		return err
	}
	return fmt.Errorf("%s group %q: %w", op, group, err)
}

// CommitAsync commits like Commit without waiting; cb (if not nil) gets the result.
func (c *Consumer) CommitAsync(cb func(error)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.c.cfg.reqTimeout)
		defer cancel()
		err := c.Commit(ctx)
		if cb != nil {
			cb(err)
		}
	}()
}

// commitStandalone commits for an assign-mode consumer with a group: allowed while the
// group has no active members, as Kafka allows.
func (c *Consumer) commitStandalone(ctx context.Context, o map[TopicPartition]OffsetAndMetadata) error {
	if c.cfg.group.id == "" {
		return ErrNotInGroup
	}
	c.mu.Lock()
	req := groups.CommitRequest{Group: c.cfg.group.id, Generation: -1, Offsets: c.offsetEntriesLocked(o)}
	c.mu.Unlock()
	_, err := c.c.groupRequestRetry(ctx, semantics.GroupCommit, req, c.c.cfg.reqTimeout)
	return err
}

// offsetEntriesLocked puts offsets in their wire form, each with the id of the topic
// its partition is read from, if it is, or whose high watermark a range check read:
// the coordinator refuses a commit of a topic that was deleted and created again
// since.
func (c *Consumer) offsetEntriesLocked(o map[TopicPartition]OffsetAndMetadata) []semantics.OffsetEntry {
	out := make([]semantics.OffsetEntry, 0, len(o))
	for tp, om := range o {
		e := semantics.OffsetEntry{Topic: tp.Topic, Partition: tp.Partition, Offset: om.Offset, Metadata: om.Metadata}
		if pc, ok := c.parts[tp]; ok {
			e.TopicID = pc.meta.ID
		} else if seen, ok := c.highWater[tp]; ok {
			e.TopicID = seen.topicID
		}
		out = append(out, e)
	}
	return out
}

// commit commits o as the member of the current generation.
func (m *member) commit(ctx context.Context, o map[TopicPartition]OffsetAndMetadata) error {
	c := m.c
	if m.cutOff() {
		return semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "group %q: cut off from the coordinator (test)", m.cfg.id)
	}
	c.mu.Lock()
	req := groups.CommitRequest{Group: m.cfg.id, MemberID: m.memberID, InstanceID: m.cfg.instanceID, Generation: m.generation,
		Offsets: c.offsetEntriesLocked(o)}
	stable := m.stable
	c.mu.Unlock()
	if !stable {
		return semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q: no assignment right now; commit after the next one", m.cfg.id)
	}
	if _, err := c.c.groupRequestRetry(ctx, semantics.GroupCommit, req, c.c.cfg.reqTimeout); err != nil {
		return groupErr("commit", m.cfg.id, err)
	}
	c.mu.Lock()
	for tp, om := range o {
		m.committed[tp] = om.Offset
		// With AutoCommitMarks, a commit past the marks says the records before
		// it are done too: the next auto-commit must not take the group back to
		// the older marks.
		if pc, ok := c.parts[tp]; ok && m.cfg.autoCommitMarks && pc.hasMarked && om.Offset > pc.marked {
			pc.marked = om.Offset
		}
	}
	c.mu.Unlock()
	return nil
}
