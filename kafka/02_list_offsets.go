package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// ListOffsets' special timestamps.
const (
	latestTimestamp        = -1 // the high watermark, or the last stable offset read_committed
	earliestTimestamp      = -2 // the log start
	maxTimestamp           = -3 // the record with the largest timestamp (v7+, KIP-734)
	earliestLocalTimestamp = -4 // the local log start (v8+, KIP-405): the log start, nothing is tiered
	latestTieredTimestamp  = -5 // the last offset in remote storage (v9+, KIP-1005): none, -1
	earliestPendingUpload  = -6 // the first offset not yet tiered (v11+, KIP-1023): none, -1
)

// ListOffsets: timestamp -2 is the log start, -1 the high watermark
// (read_uncommitted) or the last stable offset (read_committed, from the node
// leading the partition), -3 the record with the largest timestamp (-1, -1 on an
// empty partition; read_committed, -1, -1 when that record is not stable yet,
// as Kafka answers; the leader epoch is its batch's), any other the first record
// at or after that time (offset -1 when there is none). qxd tiers nothing to
// remote storage, so -4, the local log start, is the log start, and -5, the last
// tiered offset, and -6, the first offset pending upload, are -1, as Kafka
// answers for a topic without tiered storage. The leader epoch answered is
// otherwise the partition's current one; a client's current leader epoch is
// checked as Kafka does. From v10 the request's TimeoutMillis bounds the answer:
// partitions not answered by then get REQUEST_TIMED_OUT.
func handleListOffsets(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ListOffsetsRequest)
	return func() kmsg.Response {
		ctx := ctx
		if req.Version >= 10 && req.TimeoutMillis > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
			defer cancel()
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		b := c.b
		for _, t := range req.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition = p.Partition
				rp.LeaderEpoch = -1
				rp.Timestamp = -1
				if err := ctx.Err(); err != nil {
					rp.ErrorCode, rp.Offset = code(err), -1
					rt.Partitions = append(rt.Partitions, rp)
					continue
				}
				if rp.ErrorCode = checkLeaderEpoch(ctx, b, t.Topic, p.Partition, p.CurrentLeaderEpoch); rp.ErrorCode != 0 {
					rp.Offset = -1
					rt.Partitions = append(rt.Partitions, rp)
					continue
				}
				var err error
				switch ts := p.Timestamp; {
				case ts == latestTimestamp || ts == earliestTimestamp || ts == earliestLocalTimestamp && req.Version >= 8:
					var start, hw int64
					start, hw, err = b.Offsets(ctx, t.Topic, p.Partition)
					if ts == latestTimestamp && req.IsolationLevel == 1 && err == nil {
						hw, err = c.stableOffset(ctx, t.Topic, p.Partition, hw)
					}
					if ts == latestTimestamp {
						rp.Offset = hw
					} else {
						rp.Offset = start
					}
				case ts == maxTimestamp && req.Version >= 7:
					var epoch int32
					rp.Offset, rp.Timestamp, epoch, err = b.MaxTimestamp(ctx, t.Topic, p.Partition)
					if err == nil && rp.Offset >= 0 && epoch >= 0 {
						rp.LeaderEpoch = epoch
					}
					if err == nil && rp.Offset >= 0 && req.IsolationLevel == 1 {
						var lso int64
						if lso, err = c.stableOffset(ctx, t.Topic, p.Partition, rp.Offset+1); err == nil && rp.Offset >= lso {
							rp.Offset, rp.Timestamp, rp.LeaderEpoch = -1, -1, -1
						}
					}
				case ts == latestTieredTimestamp && req.Version >= 9, ts == earliestPendingUpload && req.Version >= 11:
					// Nothing is tiered: no offset, as Kafka answers without
					// tiered storage; the partition must still exist.
					_, _, err = b.Offsets(ctx, t.Topic, p.Partition)
					rp.Offset = -1
				case ts < 0:
					err = semantics.Errorf(semantics.ErrInvalidRequest,
						"ListOffsets v%d: timestamp %d is not one this version knows: give a time in Unix milliseconds, -1 (latest), -2 (earliest)%s",
						req.Version, ts, specialsFrom(req.Version))
				default:
					rp.Offset, rp.Timestamp, err = b.OffsetForTime(ctx, t.Topic, p.Partition, ts)
				}
				rp.ErrorCode = code(err)
				if errors.Is(err, context.DeadlineExceeded) || err != nil && ctx.Err() != nil {
					rp.ErrorCode = semantics.ErrTimeout.Code
				}
				if rp.ErrorCode != 0 {
					rp.Offset, rp.Timestamp, rp.LeaderEpoch = -1, -1, -1
				} else if rp.Offset >= 0 && rp.LeaderEpoch < 0 {
					rp.LeaderEpoch = b.LeaderEpoch(ctx, t.Topic, p.Partition)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

// specialsFrom names the special timestamps a ListOffsets version knows beyond
// -1 and -2.
func specialsFrom(v int16) string {
	switch {
	case v >= 11:
		return ", -3 (max timestamp), -4 (earliest local), -5 (latest tiered) or -6 (earliest pending upload)"
	case v >= 9:
		return ", -3 (max timestamp), -4 (earliest local) or -5 (latest tiered)"
	case v >= 8:
		return ", -3 (max timestamp) or -4 (earliest local)"
	case v >= 7:
		return " or -3 (max timestamp)"
	}
	return ""
}
