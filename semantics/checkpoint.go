package semantics

import "strconv"

// Checkpoint is a partition writer's periodic record of where the partition stands.
// The writer stores it in the partition's own stream, as the CheckpointHeader of a
// batch message on CheckpointSubject (covering that batch), and also in the
// partitions KV bucket, which keeps it after every batch aged out. A writer taking
// over a partition starts from the latest checkpoint and replays the batches stored
// after it (as Kafka replays the log after a producer-state snapshot), and the
// offsets survive batches aging out.
type Checkpoint struct {
	// Seq is the stream sequence of the last batch the checkpoint covers.
	Seq uint64 `json:"seq"`
	// Next is the offset the next record gets.
	Next int64 `json:"next"`
	// Producers is the idempotent producer state, by producer id.
	Producers map[int64]ProducerCheckpoint `json:"producers,omitempty"`
	// MaxTimestamp is the batch holding the partition's largest record timestamp
	// among the batches the checkpoint covers (ListOffsets' MAX_TIMESTAMP); nil
	// when the writer did not know it (a checkpoint written before it was kept).
	MaxTimestamp *TimestampMark `json:"max_ts,omitempty"`
}

// TimestampMark locates the batch that holds a partition's largest record
// timestamp: the first batch, in offset order, whose MaxTimestamp is the
// largest. Timestamp -1 means no batch (nothing stored).
type TimestampMark struct {
	Timestamp int64 `json:"ts"`
	// BaseOffset and Seq are the batch's base offset and stream sequence.
	BaseOffset int64  `json:"base"`
	Seq        uint64 `json:"seq"`
}

// NoTimestampMark is the mark of a partition with no batch.
var NoTimestampMark = TimestampMark{Timestamp: -1, BaseOffset: -1}

// Fold returns the mark of the later of m and o in a log where both are stored:
// the larger timestamp, and on a tie the batch with the lower offset (the first
// record with the largest timestamp is the one Kafka answers).
func (m TimestampMark) Fold(o TimestampMark) TimestampMark {
	if o.Timestamp > m.Timestamp || o.Timestamp == m.Timestamp && o.Timestamp >= 0 && o.BaseOffset < m.BaseOffset {
		return o
	}
	return m
}

// ProducerCheckpoint is one idempotent producer's state in a partition: its epoch and
// the last batches it stored (Kafka keeps the last five per producer, so that a
// resend of any batch still in flight is answered with its offsets).
type ProducerCheckpoint struct {
	Epoch      int16 `json:"epoch"`
	BaseSeq    int32 `json:"base_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
	// Earlier are the batches stored before the last one, oldest first.
	Earlier []BatchMeta `json:"earlier,omitempty"`
	// Seen is when the producer last wrote, in Unix ms; idle producers are forgotten.
	Seen int64 `json:"seen"`
	// TxnFirst is the first offset of the producer's transaction that is open in
	// the partition (no marker yet), if one is.
	TxnFirst *int64 `json:"txn_first,omitempty"`
}

// BatchMeta is where one idempotent batch was stored: its producer sequences and
// its base offset.
type BatchMeta struct {
	BaseSeq    int32 `json:"base_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
}

// CheckpointHeader is the NATS header of a stored batch message that carries the
// writer's checkpoint (JSON), covering the batch itself.
const CheckpointHeader = "Qxd-Checkpoint"

// CheckpointKey is the partitions-bucket key of partition p of the topic with id.
func CheckpointKey(topicID string, p int32) string {
	return topicID + "." + strconv.Itoa(int(p))
}
