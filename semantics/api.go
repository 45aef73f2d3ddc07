package semantics

import (
	"encoding/binary"
	"errors"
	"time"
)

// Buckets qxd keeps its metadata in.
const (
	TopicsBucket     = "qxd_topics"
	PartitionsBucket = "qxd_partitions"
	BridgesBucket    = "qxd_bridges"
)

// APIError is the error part of every admin API response.
type APIError struct {
	Code    int16  `json:"code"`
	Message string `json:"message"`
}

// Err converts e to a Go error (nil for nil).
func (e *APIError) Err() error {
	if e == nil {
		return nil
	}
	return FromCode(e.Code, e.Message)
}

// NewAPIError converts a Go error for the wire (nil for nil).
func NewAPIError(err error) *APIError {
	if err == nil {
		return nil
	}
	return &APIError{Code: CodeOf(err), Message: err.Error()}
}

// CreateTopicRequest asks a node to create a topic. Config has not had defaults
// applied: the node applies them. With IfNotExists, a topic that exists is not an
// error: the response has the existing topic, whatever its config.
type CreateTopicRequest struct {
	Name        string      `json:"name"`
	Config      TopicConfig `json:"config"`
	IfNotExists bool        `json:"if_not_exists,omitempty"`
	// Token, when set, names this create call, sent again as is when the client
	// sends the request again: a ready topic made by a request with the same token
	// is this call's own (its first sending's answer was lost), answered as
	// created rather than TOPIC_ALREADY_EXISTS.
	Token string `json:"token,omitempty"`
}

// TopicRequest names one topic (describe, rebalance).
type TopicRequest struct {
	Name string `json:"name"`
}

// DeleteTopicRequest asks a node to delete a topic. With IfExists, a topic that
// does not exist is not an error: the response has neither error nor topic.
type DeleteTopicRequest struct {
	Name     string `json:"name"`
	IfExists bool   `json:"if_exists,omitempty"`
}

// AlterTopicConfigRequest changes a topic's settings: Set gives keys (qxd's or
// Kafka's names, see ConfigKeys) their values as strings ("3d", "10GiB",
// "259200000" for retention.ms), Delete puts keys back to their default. Every
// change is checked before any is made.
type AlterTopicConfigRequest struct {
	Name   string            `json:"name"`
	Set    map[string]string `json:"set,omitempty"`
	Delete []string          `json:"delete,omitempty"`
}

// DeleteRecordsRequest moves a partition's log start offset to Offset (Kafka's
// DeleteRecords): records below it are no longer readable. Offset -1 means the
// high watermark (delete every record stored now).
type DeleteRecordsRequest struct {
	Name      string `json:"name"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// DeleteRecordsResponse answers DeleteRecordsRequest with the partition's log start
// offset after it.
type DeleteRecordsResponse struct {
	Error          *APIError `json:"error,omitempty"`
	LogStartOffset int64     `json:"log_start_offset"`
	// Batches is the number of stored batches removed.
	Batches uint64 `json:"batches"`
}

// Failure returns the response's error, nil on success.
func (r *DeleteRecordsResponse) Failure() error { return r.Error.Err() }

// AddPartitionsRequest raises a topic's partition count to Total.
type AddPartitionsRequest struct {
	Name  string `json:"name"`
	Total int32  `json:"total"`
}

// TopicResponse answers create, delete, add-partitions and alter-config.
type TopicResponse struct {
	Error *APIError  `json:"error,omitempty"`
	Topic *TopicMeta `json:"topic,omitempty"`
	// Existed is set when a create with IfNotExists found the topic there.
	Existed bool `json:"existed,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *TopicResponse) Failure() error { return r.Error.Err() }

// ListTopicsResponse answers list.
type ListTopicsResponse struct {
	Error  *APIError   `json:"error,omitempty"`
	Topics []TopicMeta `json:"topics"`
}

// Failure returns the response's error, nil on success.
func (r *ListTopicsResponse) Failure() error { return r.Error.Err() }

// PartitionInfo describes one partition as describe reports it.
type PartitionInfo struct {
	Partition int32    `json:"partition"`
	Stream    string   `json:"stream"`
	Leader    string   `json:"leader"`
	Replicas  []string `json:"replicas"`
	// InSync are the replicas that are current (Kafka's ISR): the leader, and the
	// followers its leader sees caught up and that are not offline.
	InSync []string `json:"in_sync"`
	// LogStartOffset is the first offset still stored.
	LogStartOffset int64 `json:"log_start_offset"`
	// HighWatermark is the offset the next record will get.
	HighWatermark int64 `json:"high_watermark"`
	// LastStableOffset is the first offset of the earliest transaction still
	// open in the partition, or the high watermark when none is: read-committed
	// consumers read up to it. -1 when the node leading the partition could not
	// be asked.
	LastStableOffset int64 `json:"last_stable_offset"`
	// Records is how many records are stored: HighWatermark - LogStartOffset, or the
	// number of live keys on a compacted topic.
	Records int64  `json:"records"`
	Batches uint64 `json:"batches"`
	Bytes   uint64 `json:"bytes"`
	// Problem is set when the partition's stream is missing or unreadable.
	Problem string `json:"problem,omitempty"`
	// Durability is the partition's durability as its store on the leading node
	// writes now: DurabilitySync or DurabilityAsync, "" when that node cannot
	// tell. It differs from the topic's for a moment after an alter, until the
	// partition's writer applies it, or for good when that node cannot apply
	// it: then DurabilityNote says why, naming the node.
	Durability     string `json:"durability,omitempty"`
	DurabilityNote string `json:"durability_note,omitempty"`
	// Missing counts the batches gone from the middle of the log stored on the
	// leader (stream sequences between its first and last that hold nothing, on a
	// topic that is not compacted): only retention and trims remove batches, both
	// from the head, so a partition with Missing > 0 is damaged. Damage says so in
	// a sentence naming the node. Damage inside a stored batch that left its
	// message in place is not seen here until a read or a verify meets it: then
	// Damaged lists it, and Damage says so too.
	Missing uint64 `json:"missing_batches,omitempty"`
	Damage  string `json:"damage,omitempty"`
	// Damaged is what reads and verifies found damaged in the partition's stored
	// copies, on any replica, recorded until a verify reads that node's copy
	// intact (see DamageRecord).
	Damaged []BatchDamage `json:"damaged,omitempty"`
}

// DescribeTopicResponse answers describe.
type DescribeTopicResponse struct {
	Error      *APIError       `json:"error,omitempty"`
	Topic      *TopicMeta      `json:"topic,omitempty"`
	Partitions []PartitionInfo `json:"partitions,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *DescribeTopicResponse) Failure() error { return r.Error.Err() }

// RebalanceResponse answers rebalance: the replica moves made ("topic/p: from → to")
// and how many partition leaderships moved.
type RebalanceResponse struct {
	Error        *APIError `json:"error,omitempty"`
	Moves        []string  `json:"moves"`
	LeadersMoved int       `json:"leaders_moved"`
}

// Failure returns the response's error, nil on success.
func (r *RebalanceResponse) Failure() error { return r.Error.Err() }

// Produce wire format. A producer sends one RecordBatch (FirstOffset 0) as the body of
// a NATS request to WriterSubject. A request without a reply subject is acks=none.
// The writer answers with a ProduceReply encoded by AppendProduceReply.

// ProduceReply is the writer's answer to one batch.
type ProduceReply struct {
	// Code is 0 on success, else a Kafka error code (see FromCode).
	Code int16
	// BaseOffset is the offset given to the batch's first record.
	BaseOffset int64
	// LogAppendTime is when the batch was stored.
	LogAppendTime time.Time
	// Detail explains a failure.
	Detail string
}

const produceReplyFixed = 2 + 8 + 8

// AppendProduceReply encodes r: code (int16), base offset (int64), append time in ms
// (int64), then the detail text, big-endian.
func AppendProduceReply(dst []byte, r ProduceReply) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Code))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.BaseOffset))
	var ms int64
	if !r.LogAppendTime.IsZero() {
		ms = r.LogAppendTime.UnixMilli()
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(ms))
	return append(dst, r.Detail...)
}

// ParseProduceReply decodes a reply made by AppendProduceReply.
func ParseProduceReply(b []byte) (ProduceReply, error) {
	if len(b) < produceReplyFixed {
		return ProduceReply{}, errors.New("produce reply: too short")
	}
	r := ProduceReply{
		Code:       int16(binary.BigEndian.Uint16(b)),
		BaseOffset: int64(binary.BigEndian.Uint64(b[2:])),
		Detail:     string(b[produceReplyFixed:]),
	}
	if ms := int64(binary.BigEndian.Uint64(b[10:])); ms != 0 {
		r.LogAppendTime = time.UnixMilli(ms)
	}
	return r, nil
}

// Err returns the reply's error, nil on success.
func (r ProduceReply) Err() error { return FromCode(r.Code, r.Detail) }

// OffsetEntry is one partition's offset on the wire (commit, fetch, reset).
type OffsetEntry struct {
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	Offset     int64     `json:"offset"`
	Metadata   string    `json:"metadata,omitempty"`
	Generation int32     `json:"generation,omitempty"`
	Member     string    `json:"member,omitempty"`
	Time       time.Time `json:"time,omitzero"`
	// TopicID is the id of the topic incarnation: in a commit, the one the member
	// read (the commit is refused if the topic was created again since); in a fetch,
	// the one the offset was committed for.
	TopicID string `json:"topic_id,omitempty"`
}
