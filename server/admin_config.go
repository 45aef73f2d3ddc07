package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// AlterTopicConfig changes a ready topic's settings (semantics.AlterConfig) on every
// partition's stream and in the topic's record. Every change is checked before any
// is made. The streams change first, then the record (compare-and-set), so a
// failure half-way leaves the record as it was and the same request, retried,
// finishes the job. A smaller max-record-bytes is put on the streams only after the
// record, which the partition writers follow, so that no writer sends a batch the
// stream's new limit would refuse.
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
	rev, err := a.meta.putTopic(ctx, nt)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return t, semantics.Errorf(semantics.ErrInvalidRequest, "alter topic %q: the topic changed meanwhile: retry", name)
		}
		return t, fmt.Errorf("alter topic %q: record the new config: %w (retry to finish)", name, err)
	}
	nt.Revision = rev
	a.follow.topicChanged(ctx, nt)
	if nt.Config.DurabilityOrDefault() != t.Config.DurabilityOrDefault() {
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

// awaitDurability waits until every partition of t whose leading node can tell
// writes with t's durability (each writer applies it within a background tick of
// seeing the record, store_durability.go), so that a producer acknowledged after
// the alter returns has the new durability. A partition no writer serves applies
// it before its first append.
func (a *Admin) awaitDurability(ctx context.Context, t semantics.TopicMeta) error {
	want := t.Config.DurabilityOrDefault()
	ctx, cancel := context.WithTimeout(ctx, durabilityApplyTimeout)
	defer cancel()
	for {
		d, err := a.DescribeTopic(ctx, t.Name)
		var behind []string
		if err == nil {
			for _, p := range d.Partitions {
				if p.Durability != "" && p.Durability != want {
					behind = append(behind, strconv.Itoa(int(p.Partition)))
				}
			}
			if len(behind) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("partition(s) %s still write %s", strings.Join(behind, ", "), map[string]string{semantics.DurabilitySync: semantics.DurabilityAsync, semantics.DurabilityAsync: semantics.DurabilitySync}[want])
			}
			return semantics.Errorf(semantics.ErrTimeout, "alter topic %q: durability %s is recorded, but not yet in effect everywhere after %v: %v; their writers apply it shortly: check with 'qxd topic describe %s'",
				t.Name, want, durabilityApplyTimeout, err, t.Name)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
