package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// giveBackTimeout bounds the seeks that keep records Poll returned but consume did
// not print out of the group's commit, also after an interrupt.
const giveBackTimeout = 10 * time.Second

// consumeGroup reads s.topic as a member of group s.group until interrupted, after
// --num records, or with --exit-at-end once its assignment is read to its end.
// Close, deferred, commits the positions and leaves the group.
func (a *app) consumeGroup(c *cli.Context, s consumeSettings) error {
	ctx := c.Context
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if s.reset == qxd.ResetNone {
		if err := checkCommitted(ctx, cl.Admin(), s.group, s.topic); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}

	w := &memberWatch{log: a.log, admin: cl.Admin(), group: s.group, topic: s.topic, exitAtEnd: s.exitAtEnd}
	opts := []qxd.ConsumerOption{
		qxd.Group(s.group), qxd.WithResetPolicy(s.reset), qxd.SessionTimeout(s.sessionTimeout), qxd.Isolation(s.isolation),
		qxd.OnAssigned(w.assigned), qxd.OnRevoked(w.revoked), qxd.OnLost(w.lost),
	}
	if s.instanceID != "" {
		opts = append(opts, qxd.InstanceID(s.instanceID))
	}
	cons, err := cl.NewConsumer(opts...)
	if err != nil {
		return fmt.Errorf("consume %q with group %s: %w", s.topic, s.group, err)
	}
	w.cons = cons // before Subscribe starts the member that calls w back
	defer w.close()
	if err := cons.Subscribe(ctx, s.topic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %q with group %s: %w", s.topic, s.group, err)
	}

	out := bufio.NewWriterSize(a.stdout, 64<<10)
	count := 0
	for {
		// An assignment change cancels pctx, so that a Poll waiting for records
		// returns and the end is checked again.
		pctx, cancel := context.WithCancel(ctx)
		w.setKick(cancel)
		if s.exitAtEnd {
			done, err := w.atEnd()
			if err != nil || done {
				cancel()
				return err
			}
		}
		recs, err := cons.Poll(pctx)
		w.setKick(nil)
		kicked := pctx.Err() != nil && ctx.Err() == nil
		cancel()

		// Records Poll returned but consume does not print, beyond --num or past the
		// end of the assignment, go back to the group: each of their partitions is
		// paused and its position set to the first of them, so commits stop there.
		var giveBack map[int32]int64
		for i := range recs {
			r := &recs[i]
			if (s.num > 0 && count >= s.num) || (s.exitAtEnd && w.pastEnd(r)) {
				if giveBack == nil {
					giveBack = map[int32]int64{}
				}
				if _, ok := giveBack[r.Partition]; !ok {
					giveBack[r.Partition] = r.Offset
				}
				continue
			}
			if err := s.format.write(out, r); err != nil {
				return err
			}
			count++
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		a.giveBack(ctx, cons, s.topic, giveBack)
		if s.num > 0 && count >= s.num {
			return nil
		}
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil // interrupted: a normal way to stop following
			case kicked && errors.Is(err, context.Canceled):
				continue // the assignment changed
			}
			return fmt.Errorf("consume %q with group %s: %w", s.topic, s.group, err)
		}
	}
}

// giveBack pauses the partitions of records that were not printed and moves their
// positions back to the first of them, so that the group's commits leave them for
// the next member. Failures are logged: the partition may have been revoked.
func (a *app) giveBack(ctx context.Context, cons *qxd.Consumer, topic string, from map[int32]int64) {
	if len(from) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	for p, off := range from {
		cons.Pause(qxd.TopicPartition{Topic: topic, Partition: p})
		if err := cons.Seek(ctx, topic, p, qxd.At(off)); err != nil {
			a.log.Debug("records not printed stay in the commit", "topic", topic, "partition", p, "offset", off, "err", err)
		}
	}
}

// checkCommitted fails unless group has a committed offset in range for every
// partition of topic: with --reset none, a member given a partition without one
// could not start it.
func checkCommitted(ctx context.Context, admin *qxd.Admin, group, topic string) error {
	d, err := admin.DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	gd, err := admin.DescribeGroup(ctx, group)
	if err != nil && !errors.Is(err, semantics.ErrGroupIDNotFound) {
		return fmt.Errorf("consume %q with group %s: %w", topic, group, err)
	}
	rows := map[int32]qxd.GroupPartition{}
	for _, r := range gd.Partitions {
		if r.Topic == topic && r.Committed >= 0 {
			rows[r.Partition] = r
		}
	}
	var missing []int32
	for p := range d.Topic.Config.Partitions {
		r, ok := rows[p]
		switch {
		case !ok:
			missing = append(missing, p)
		case r.Committed < r.LogStart || r.Committed > r.HighWatermark:
			why := "behind the log start: records expired or were trimmed"
			if r.Committed > r.HighWatermark {
				why = "ahead of the log: records were trimmed, or the topic was created again"
			}
			return fmt.Errorf("consume %q with group %s and --reset none: the committed offset %d of %s is out of range (%s): stored offsets are %d to %d (high watermark %d); move it with 'qxd group seek %s --topic %s --partition %d --to start', or use --reset earliest or latest",
				topic, group, r.Committed, semantics.PartitionString(topic, p), why, r.LogStart, r.HighWatermark-1, r.HighWatermark, group, topic, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("consume %q with group %s and --reset none: the group has no committed offset for %s: set them with 'qxd group seek %s --topic %s --to start' (or end), or use --reset earliest or latest",
			topic, group, formatPartitions(tps(topic, missing)), group, topic)
	}
	return nil
}

func tps(topic string, parts []int32) []qxd.TopicPartition {
	out := make([]qxd.TopicPartition, 0, len(parts))
	for _, p := range parts {
		out = append(out, qxd.TopicPartition{Topic: topic, Partition: p})
	}
	return out
}

// memberWatch follows the member's assignment for consume --group: it logs the
// changes and, for --exit-at-end, keeps the high watermark each assigned partition
// had when it was assigned. The group's member calls it back from its own goroutine.
type memberWatch struct {
	log          *slog.Logger
	admin        *qxd.Admin
	cons         *qxd.Consumer
	group, topic string
	exitAtEnd    bool

	mu      sync.Mutex
	current []qxd.TopicPartition
	end     map[qxd.TopicPartition]int64 // high watermarks at the assignment
	endErr  error
	stable  bool               // has an assignment now (so it has had one)
	closing bool               // the consumer is closing: its partitions are released, not lost
	kick    context.CancelFunc // ends the Poll in progress, if any
}

func (w *memberWatch) assigned(ctx context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
	gen, member := w.cons.Generation()
	w.log.Info("group partitions assigned", "group", w.group, "member", member, "generation", gen, "partitions", formatPartitions(tps))
	var end map[qxd.TopicPartition]int64
	var err error
	if w.exitAtEnd && len(tps) > 0 {
		end, err = w.highWatermarks(ctx)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.current, w.end, w.endErr = tps, end, err
	w.stable = true
	w.kickLocked()
}

func (w *memberWatch) highWatermarks(ctx context.Context) (map[qxd.TopicPartition]int64, error) {
	d, err := w.admin.DescribeTopic(ctx, w.topic)
	if err != nil {
		return nil, fmt.Errorf("consume %q with group %s: read the high watermarks of the assigned partitions for --exit-at-end: %w", w.topic, w.group, err)
	}
	end := map[qxd.TopicPartition]int64{}
	for _, p := range d.Partitions {
		end[qxd.TopicPartition{Topic: w.topic, Partition: p.Partition}] = p.HighWatermark
	}
	return end, nil
}

func (w *memberWatch) revoked(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
	gen, member := w.cons.Generation()
	w.log.Info("group partitions revoked", "group", w.group, "member", member, "generation", gen, "partitions", formatPartitions(tps))
	w.unassign()
}

// lost is called when the member lost its partitions without committing, and by
// Close after its final commit.
func (w *memberWatch) lost(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
	gen, member := w.cons.Generation()
	w.mu.Lock()
	closing := w.closing
	w.mu.Unlock()
	if closing {
		w.log.Info("group partitions revoked", "group", w.group, "member", member, "generation", gen, "partitions", formatPartitions(tps))
	} else {
		w.log.Warn("group partitions lost", "group", w.group, "member", member, "generation", gen, "partitions", formatPartitions(tps))
	}
	w.unassign()
}

func (w *memberWatch) unassign() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.current, w.end, w.endErr, w.stable = nil, nil, nil, false
	w.kickLocked()
}

// close commits and leaves the group.
func (w *memberWatch) close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.cons.Close(context.Background()) // bounded: 10s
}

func (w *memberWatch) setKick(cancel context.CancelFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kick = cancel
}

func (w *memberWatch) kickLocked() {
	if w.kick != nil {
		w.kick()
	}
}

// atEnd reports whether the member has an assignment and each of its partitions
// reached the high watermark it had when assigned.
func (w *memberWatch) atEnd() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.endErr != nil {
		return false, w.endErr
	}
	if !w.stable {
		return false, nil
	}
	for _, tp := range w.current {
		end, ok := w.end[tp]
		if !ok {
			return false, nil
		}
		if pos, ok := w.cons.Position(tp.Topic, tp.Partition); !ok || pos < end {
			return false, nil
		}
	}
	return true, nil
}

// pastEnd reports whether r is at or past the high watermark its partition had
// when assigned.
func (w *memberWatch) pastEnd(r *qxd.Record) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	end, ok := w.end[qxd.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
	return ok && r.Offset >= end
}

// formatPartitions writes partitions compactly, by topic: "orders:0,1,2 users:3";
// "-" for none.
func formatPartitions(tps []qxd.TopicPartition) string {
	if len(tps) == 0 {
		return "-"
	}
	tps = slices.Clone(tps)
	slices.SortFunc(tps, func(x, y qxd.TopicPartition) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	var b strings.Builder
	for i, tp := range tps {
		switch {
		case i == 0:
		case tp.Topic == tps[i-1].Topic:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(int(tp.Partition)))
			continue
		default:
			b.WriteByte(' ')
		}
		b.WriteString(tp.Topic)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(tp.Partition)))
	}
	return b.String()
}
