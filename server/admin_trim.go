package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// DeleteRecords moves a partition's log start offset up to req.Offset, as Kafka's
// DeleteRecords does: records below it are no longer readable, and offsets stay as
// they are.
//
// A partition stores whole record batches, and the new log start may fall inside
// one. So the trim first records the exact log start in the stream's metadata
// (semantics.LogStartMetadata), which every reader of the partition's offsets
// (partition.ReadOffsets) applies: reads from below it start at it, or fail as
// out of range by the reader's reset policy. Then it purges the batches wholly
// below it. The batch that holds the new log start stays, its records below it
// hidden; so does the last batch when the trim reaches the high watermark, so that
// the high watermark stays readable from the stream itself. A log start never
// moves down: a trim to or below it changes nothing. Compacted topics are refused,
// as Kafka refuses them: their records leave by key.
func (a *Admin) DeleteRecords(ctx context.Context, req semantics.DeleteRecordsRequest) (Trimmed, error) {
	fail := func(err error) (Trimmed, error) { return Trimmed{}, err }
	name := req.Name
	if err := semantics.ValidateTopicName(name); err != nil {
		return fail(err)
	}
	t, err := a.meta.getTopic(ctx, name)
	if err != nil {
		return fail(err)
	}
	if t.State != semantics.TopicReady {
		return fail(semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", name, t.State))
	}
	if t.Config.Compact {
		return fail(semantics.Errorf(semantics.ErrPolicyViolation,
			"topic %q is compacted: its records leave by key (a tombstone removes one), not by offset, so it cannot be trimmed", name))
	}
	p := req.Partition
	if p < 0 || p >= t.Config.Partitions {
		return fail(semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has partitions 0 to %d: partition %d does not exist", name, t.Config.Partitions-1, p))
	}
	part := semantics.PartitionString(name, p)
	r := partition.NewReader(a.nc, name, p, false)
	o, err := r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
		ck, err := a.meta.getCheckpoint(ctx, t.ID, p)
		return ck.Next, err
	})
	if err != nil {
		return fail(fmt.Errorf("trim %s: read its offsets: %w", part, err))
	}
	target := req.Offset
	if target == -1 {
		target = o.HighWatermark
	}
	if target < 0 || target > o.HighWatermark {
		return fail(semantics.Errorf(semantics.ErrOffsetOutOfRange,
			"trim %s: offset %d is out of range: give an offset from %d (the log start) to %d (the high watermark), or -1 for the high watermark",
			part, req.Offset, o.LogStart, o.HighWatermark))
	}
	if target <= o.LogStart {
		return Trimmed{LogStartOffset: o.LogStart}, nil
	}

	// 1. The exact log start, in the stream's metadata: from now on no reader starts
	// below it.
	s, err := a.js.Stream(ctx, r.Stream)
	if err != nil {
		return fail(fmt.Errorf("trim %s: %w (nothing changed: retry)", part, err))
	}
	cfg := s.CachedInfo().Config
	if cur, ok := cfg.Metadata[semantics.LogStartMetadata]; ok {
		if n, err := strconv.ParseInt(cur, 10, 64); err == nil && n >= target {
			target = n // a trim further up got there first
		}
	}
	cfg.Metadata = maps.Clone(cfg.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[semantics.LogStartMetadata] = strconv.FormatInt(target, 10)
	if _, err := a.js.UpdateStream(ctx, cfg); err != nil {
		return fail(fmt.Errorf("trim %s: record log start %d: %w (nothing changed: retry)", part, target, err))
	}

	// 2. The batches wholly below it go.
	resp := Trimmed{LogStartOffset: target}
	if o.Msgs == 0 {
		return resp, nil
	}
	keep := o.LastBatchSeq // the batch that holds target, or the last one
	if target < o.HighWatermark {
		seq, found, err := semantics.FindOffset(ctx, r, o.FirstSeq, o.LastSeq, target)
		if err != nil {
			return fail(fmt.Errorf("trim %s: find the batch of offset %d: %w (the log start is %d already; retry to remove the batches below it)", part, target, err, target))
		}
		if found {
			keep = seq
		} else {
			keep = o.FirstSeq
		}
	}
	if keep <= o.FirstSeq {
		return resp, nil
	}
	purged, err := a.purgeBelow(ctx, r.Stream, keep)
	if err != nil {
		return fail(fmt.Errorf("trim %s: remove the batches below offset %d: %w (the log start is %d already; retry to remove them)", part, target, err, target))
	}
	resp.Batches = purged
	a.log.Info("partition trimmed", "topic", name, "partition", p, "offset", target)
	return resp, nil
}

// purgeBelow removes the messages of stream below sequence seq and returns how many
// went.
func (a *Admin) purgeBelow(ctx context.Context, stream string, seq uint64) (uint64, error) {
	body, _ := json.Marshal(struct {
		Seq uint64 `json:"seq"`
	}{seq})
	resp, err := a.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+stream, body)
	if err != nil {
		return 0, err
	}
	var out struct {
		Purged uint64 `json:"purged"`
		Error  *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return 0, err
	}
	if out.Error != nil {
		return 0, errors.New(out.Error.Description)
	}
	return out.Purged, nil
}
