package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// AlterTopicConfig changes a ready topic's settings (semantics.AlterConfig) on every
// partition's stream and in the topic's record. Every change is checked before any
// is made. The streams change first, then the record (compare-and-set), so a
// failure half-way leaves the record as it was and the same request, retried,
// finishes the job. A smaller max-record-bytes is put on the streams only after the
// record, which the partition writers follow, so that no writer sends a batch the
// stream's new limit would refuse. An alter that changes none of the streams'
// limits (the durability alone) reads no stream (alterLimits).
func (a *Admin) AlterTopicConfig(ctx context.Context, req semantics.AlterTopicConfigRequest) (semantics.TopicMeta, error) {
	name := req.Name
	if err := semantics.ValidateTopicName(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return semantics.TopicMeta{}, err
	}
	if t.State != semantics.TopicReady {
		return t, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", name, t.State)
	}
	cfg, over, err := semantics.AlterConfig(t, req.Set, req.Delete)
	if err != nil {
		return t, topicErr(name, err)
	}
	nt := t
	nt.Config, nt.Overrides = cfg, over
	loose := nt
	loose.Config.MaxMessageBytes = max(t.Config.MaxMessageBytes, cfg.MaxMessageBytes)
	if alterLimits(t, loose, req) {
		for p := int32(0); p < t.Config.Partitions; p++ {
			if err := a.updateStreamLimits(ctx, loose, p); err != nil {
				if refusedForResources(err) {
					// JetStream refused the new limits (too much storage to reserve, say):
					// a retry would be refused again, so put back the partitions changed
					// so far.
					for q := int32(0); q < p; q++ {
						if rerr := a.updateStreamLimits(ctx, t, q); rerr != nil {
							return t, fmt.Errorf("alter topic %q: partition %d refused the new config (%w), and partition %d could not be put back (%v): retry with the old values to undo", name, p, err, q, rerr)
						}
					}
					return t, semantics.Errorf(semantics.ErrInvalidConfig, "alter topic %q: partition %d refused the new config: %v; nothing changed (retention-bytes is reserved per partition on each replica's node: use a smaller value or free disk)", name, p, err)
				}
				return t, fmt.Errorf("alter topic %q: partition %d: %w (nothing is recorded yet: retry to finish)", name, p, err)
			}
		}
	}
	rev, err := a.meta.putTopic(ctx, nt)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return t, semantics.Errorf(semantics.ErrInvalidRequest, "alter topic %q: the topic changed meanwhile: retry", name)
		}
		return t, fmt.Errorf("alter topic %q: record the new config: %w (retry to finish)", name, err)
	}
	nt.Revision = rev
	a.follow.topicChanged(ctx, nt)
	if nt.Config.DurabilityOrDefault() != t.Config.DurabilityOrDefault() || touchesDurability(req) {
		// Also when the record had it already: the same alter, run again after
		// it failed, says again where the durability is not in effect.
		if err := a.awaitDurability(ctx, nt); err != nil {
			return nt, err
		}
	}
	if cfg.MaxMessageBytes < t.Config.MaxMessageBytes {
		for p := int32(0); p < t.Config.Partitions; p++ {
			if err := a.updateStreamLimits(ctx, nt, p); err != nil {
				return nt, fmt.Errorf("alter topic %q: partition %d: lower the stream's message size limit: %w (the topic's limit applies already; retry to finish)", name, p, err)
			}
		}
	}
	a.log.Info("topic config altered", "topic", name)
	return nt, nil
}

// durabilityApplyTimeout bounds how long an alter of a topic's durability waits
// for the partitions' writers to apply it.
const durabilityApplyTimeout = 10 * time.Second

// awaitDurability asks the partitions still behind again first after
// durabilityPoll, then after twice as long each round, up to durabilityPollMax.
// A writer applies a new durability within milliseconds of seeing the record
// (writer.setConfig): the first round after the alter may come just before.
const (
	durabilityPoll    = 10 * time.Millisecond
	durabilityPollMax = 500 * time.Millisecond
)

// touchesDurability reports whether req sets or deletes the durability key.
func touchesDurability(req semantics.AlterTopicConfigRequest) bool {
	return touches(req, semantics.ConfigDurability)
}

// touches reports whether req sets or deletes one of keys.
func touches(req semantics.AlterTopicConfigRequest, keys ...string) bool {
	is := func(k string) bool {
		key, err := semantics.CanonicalConfigKey(k)
		return err == nil && slices.Contains(keys, key)
	}
	for k := range req.Set {
		if is(k) {
			return true
		}
	}
	return slices.ContainsFunc(req.Delete, is)
}

// streamLimitKeys are the settings streamConfig derives the partition streams'
// limits from (updateStreamLimits).
var streamLimitKeys = []string{semantics.ConfigRetention, semantics.ConfigRetentionBytes, semantics.ConfigMaxRecordBytes}

// alterLimits reports whether an alter of t to loose (the new config, with the
// larger of the two max-record-bytes) must put limits on the partitions'
// streams: they differ from t's, or req names one of them. The latter is the
// same alter sent again after it failed half-way (its record written, a
// smaller max-record-bytes not yet on every stream), which finishes the job.
// An alter of the durability alone reads no stream: it costs a stream info per
// partition otherwise.
func alterLimits(t, loose semantics.TopicMeta, req semantics.AlterTopicConfigRequest) bool {
	if touches(req, streamLimitKeys...) {
		return true
	}
	was, now := streamConfig(t, 0), streamConfig(loose, 0)
	return was.MaxAge != now.MaxAge || was.MaxBytes != now.MaxBytes || was.MaxMsgSize != now.MaxMsgSize || was.Duplicates != now.Duplicates
}

// awaitDurability waits until every partition of t whose leading node can tell
// writes with t's durability (each writer applies it as soon as it sees the
// record, writer.setConfig), so that a producer acknowledged after
// the alter returns has the new durability. A partition no writer serves applies
// it before its first append. Each round asks only the partitions still behind,
// each of its leading node alone (partitionDurability): an alter of a topic with
// hundreds of partitions costs a question per partition, and one more for each
// that has not applied it yet when asked, not a describe of the whole topic per
// round.
//
// A partition whose node says it cannot apply the durability (storeSyncOf: its
// nats-server's file store is not laid out as this qxd expects) is not waited
// for: the alter fails, naming the topic, the partitions, the node and the
// durability in effect there. The record keeps the durability asked for, which
// a node able to apply it does (the partition moved, or qxd and nats-server
// match again), and describe shows each partition's with the reason.
func (a *Admin) awaitDurability(ctx context.Context, t semantics.TopicMeta) error {
	if a.stable == nil {
		return nil
	}
	want := t.Config.DurabilityOrDefault()
	ctx, cancel := context.WithTimeout(ctx, durabilityApplyTimeout)
	defer cancel()
	behind := make([]int32, t.Config.Partitions)
	for p := range behind {
		behind[p] = int32(p)
	}
	leaders := map[int32]string{} // as found, kept across rounds
	// stuck are the durabilities in effect where the nodes cannot apply want,
	// with why, and the partitions of each.
	type stuckAt struct{ durability, why string }
	var stuck []stuckAt
	var stuckParts [][]int32
	for wait := durabilityPoll; ; wait = min(2*wait, durabilityPollMax) {
		still := behind[:0]
		for _, p := range behind {
			r, ok := a.partitionDurability(ctx, t.Name, p, leaders)
			switch {
			case !ok || r.Durability == "" || r.Durability == want:
				// No writer to wait for (one that starts applies it before its
				// first append), or in effect.
			case r.DurabilityNote != "":
				at := stuckAt{r.Durability, r.DurabilityNote}
				i := slices.Index(stuck, at)
				if i < 0 {
					i = len(stuck)
					stuck, stuckParts = append(stuck, at), append(stuckParts, nil)
				}
				stuckParts[i] = append(stuckParts[i], p)
			default:
				still = append(still, p)
			}
		}
		behind = still
		if ctx.Err() != nil {
			// Asks cut short count for nothing.
			break
		}
		if len(behind) == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	var errs []string
	for i, at := range stuck {
		errs = append(errs, fmt.Sprintf("partition(s) %s write %s (%s)", partitionList(stuckParts[i]), at.durability, at.why))
	}
	if len(stuck) > 0 {
		if len(behind) > 0 {
			errs = append(errs, fmt.Sprintf("partition(s) %s not yet in effect after %v", partitionList(behind), durabilityApplyTimeout))
		}
		effect := fmt.Sprintf("their appends are synced as the node's --sync says, as safe as before and as slow; 'qxd topic alter-config %s --set durability=sync' records sync again", t.Name)
		if want == semantics.DurabilitySync {
			effect = "their appends are flushed lazily: a power failure can lose acknowledged records"
		}
		return semantics.Errorf(semantics.ErrInvalidConfig, "alter topic %q: durability %s is recorded, but cannot be applied everywhere: %s; %s. A node that can apply it (a qxd built for its nats-server) does so when it holds them; 'qxd topic describe %s' shows each partition's",
			t.Name, want, strings.Join(errs, "; "), effect, t.Name)
	}
	if ctx.Err() != nil {
		other := map[string]string{semantics.DurabilitySync: semantics.DurabilityAsync, semantics.DurabilityAsync: semantics.DurabilitySync}[want]
		what := "some partitions may still write " + other // cut short before all were asked
		if len(behind) > 0 {
			what = fmt.Sprintf("partition(s) %s still write %s", partitionList(behind), other)
		}
		return semantics.Errorf(semantics.ErrTimeout, "alter topic %q: durability %s is recorded, but not yet in effect everywhere after %v: %s; their writers apply it shortly: check with 'qxd topic describe %s'",
			t.Name, want, durabilityApplyTimeout, what, t.Name)
	}
	return nil
}

// partitionDurability asks the node leading partition p of topic what its store
// writes: this node's writer when it has one, else the node found leading it
// before (leaders), else the leader JetStream names, found once and kept. ok is
// false when no writer answers.
func (a *Admin) partitionDurability(ctx context.Context, topic string, p int32, leaders map[int32]string) (stableReply, bool) {
	ask := func(leader string) (stableReply, error) {
		ctx, cancel := context.WithTimeout(ctx, stableTimeout)
		defer cancel()
		// From the end of the log: no aborted transactions to list.
		return a.stable.ask(ctx, leader, topic, p, math.MaxInt64, 0)
	}
	leader := leaders[p]
	if r, err := ask(leader); err == nil {
		return r, true
	}
	st, err := partition.NewReader(a.nc, topic, p, false).StreamInfo(ctx)
	if err != nil || st.Leader == "" || st.Leader == leader {
		return stableReply{}, false
	}
	leaders[p] = st.Leader
	r, err := ask(st.Leader)
	return r, err == nil
}

// partitionList writes partitions as "0, 1, 2".
func partitionList(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// updateStreamLimits puts t's limits (age, size, message size, duplicate window) on
// partition p's stream, keeping the rest of the stream's config (its metadata holds
// a trimmed log start).
func (a *Admin) updateStreamLimits(ctx context.Context, t semantics.TopicMeta, p int32) error {
	s, err := a.js.Stream(ctx, semantics.StreamName(t.Name, p))
	if err != nil {
		return err
	}
	want := streamConfig(t, p)
	cur := s.CachedInfo().Config
	if cur.MaxAge == want.MaxAge && cur.MaxBytes == want.MaxBytes && cur.MaxMsgSize == want.MaxMsgSize && cur.Duplicates == want.Duplicates {
		return nil
	}
	cur.MaxAge, cur.MaxBytes, cur.MaxMsgSize, cur.Duplicates = want.MaxAge, want.MaxBytes, want.MaxMsgSize, want.Duplicates
	_, err = a.js.UpdateStream(ctx, cur)
	return err
}

// topicErr prefixes err's detail with the topic, keeping its kind.
func topicErr(name string, err error) error {
	var de *semantics.DetailError
	if errors.As(err, &de) {
		return semantics.Errorf(de.Kind, "topic %q: %s", name, de.Detail)
	}
	return fmt.Errorf("topic %q: %w", name, err)
}

// refusedForResources reports whether JetStream refused a stream update because it
// cannot reserve the storage the new limits ask for: a retry would be refused again.
func refusedForResources(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10023, 10047: // insufficient resources; insufficient storage resources available
		return true
	}
	return false
}
