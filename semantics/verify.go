package semantics

// VerifyPartitionRequest asks a node to read back the batches a partition stores
// on its leader, from stream sequence FromSeq (0: the first stored), and check
// each: its Kafka CRC-32C and format, and that its offsets follow the previous
// batch's. NextOffset is the offset the batch at FromSeq should start at (-1: not
// known, as at the start). A node answers within its request budget: when it
// stops before the end it says where to go on (VerifyPartitionResponse.NextSeq).
// Verifying changes nothing.
type VerifyPartitionRequest struct {
	Name       string `json:"name"`
	Partition  int32  `json:"partition"`
	FromSeq    uint64 `json:"from_seq,omitempty"`
	NextOffset int64  `json:"next_offset"`
	// Node, when set, is the replica whose copy to read: the node first makes it
	// lead the partition (moving the leadership), as only the leader's copy can be
	// read sequence by sequence. "": the current leader's.
	Node string `json:"node,omitempty"`
}

// VerifyPartitionResponse answers a VerifyPartitionRequest with what one stretch
// of the partition's log showed.
type VerifyPartitionResponse struct {
	Error *APIError `json:"error,omitempty"`
	// Leader is the node whose stored copy was read.
	Leader string `json:"leader"`
	// FirstSeq and LastSeq are the stream sequences checked; Batches, Records and
	// Bytes what was read intact between them.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Batches  uint64 `json:"batches"`
	Records  int64  `json:"records"`
	Bytes    uint64 `json:"bytes"`
	// Damage lists what was found wrong, in log order.
	Damage []BatchDamage `json:"damage,omitempty"`
	// NextSeq is where to go on (with NextOffset) when the node stopped before the
	// last sequence stored when it began; 0 when the partition is done.
	NextSeq    uint64 `json:"next_seq,omitempty"`
	NextOffset int64  `json:"next_offset"`
}

// Failure returns the response's error, nil on success.
func (r *VerifyPartitionResponse) Failure() error { return r.Error.Err() }

// Kinds of BatchDamage.
const (
	// DamageUnreadable: stream sequences between the first and the last stored
	// hold nothing the leader's store returns (a truncated block file, a message
	// whose stored checksum failed).
	DamageUnreadable = "unreadable"
	// DamageCorrupt: a stored batch fails its CRC-32C or format checks.
	DamageCorrupt = "corrupt"
	// DamageOffsets: a batch's offsets do not follow the previous batch's.
	DamageOffsets = "offsets"
)

// BatchDamage is one stretch of a partition's log that a verify found damaged.
type BatchDamage struct {
	Kind string `json:"kind"`
	// FromSeq and ToSeq are the stream sequences concerned.
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
	// FromOffset and ToOffset are the offsets concerned, -1 when not known.
	FromOffset int64  `json:"from_offset"`
	ToOffset   int64  `json:"to_offset"`
	Node       string `json:"node"`
	// Detail says what is wrong in a sentence.
	Detail string `json:"detail"`
}

// ReportDamageRequest tells a node that a reader found a batch of partition
// Partition of topic Name damaged on node Damage.Node (Kind DamageCorrupt or
// DamageUnreadable): the node records it with the partition (DamageKey), logs it
// and shows it in describe and cluster info until a verify on that node finds
// the partition intact. Reported tells whether the reader got an intact copy
// from another replica. The answer is an empty response or its error.
type ReportDamageRequest struct {
	Name      string      `json:"name"`
	Partition int32       `json:"partition"`
	Damage    BatchDamage `json:"damage"`
	// Recovered: the reader read the batch from another replica's intact copy.
	Recovered bool `json:"recovered,omitempty"`
}

// ReportDamageResponse answers a ReportDamageRequest.
type ReportDamageResponse struct {
	Error *APIError `json:"error,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *ReportDamageResponse) Failure() error { return r.Error.Err() }

// DamageRecord is what the partitions bucket holds, under DamageKey, about a
// partition's stored copies that reads or verifies found damaged: one entry per
// node and stretch of the log, oldest first.
type DamageRecord struct {
	Damage []BatchDamage `json:"damage"`
}

// DamageKey is the partitions-bucket key of the damage record of partition p of
// the topic with id: the checkpoint's key (CheckpointKey) with ".damage" after it.
func DamageKey(topicID string, p int32) string { return CheckpointKey(topicID, p) + ".damage" }

// DamageKeys is the partitions-bucket key filter that matches every DamageKey.
const DamageKeys = "*.*.damage"
