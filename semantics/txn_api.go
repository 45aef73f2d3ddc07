package semantics

// TxnRequest is a request to the transaction coordinator's NATS door (JSON, on
// the Txn* subjects, scoped by the transactional id with TxnSubject). Each
// request reads the fields its operation needs:
//
//   - TxnInit: TransactionalID, TimeoutMs, ProducerID and Epoch (-1 when the
//     producer has none);
//   - TxnAddPartitions: the producer's identity and Partitions;
//   - TxnAddGroup: the producer's identity and Group;
//   - TxnCommitOffsets: the producer's identity, Group, Generation, Member and
//     Offsets (stored in the group only when the transaction commits);
//   - TxnEnd: the producer's identity and Commit;
//   - TxnDescribe: TransactionalID; TxnList: nothing.
type TxnRequest struct {
	TransactionalID string           `json:"transactional_id,omitempty"`
	ProducerID      int64            `json:"producer_id"`
	Epoch           int16            `json:"epoch"`
	TimeoutMs       int32            `json:"timeout_ms,omitempty"`
	Partitions      []TopicPartition `json:"partitions,omitempty"`
	Group           string           `json:"group,omitempty"`
	Generation      int32            `json:"generation,omitempty"`
	Member          string           `json:"member,omitempty"`
	Offsets         []TxnOffsetEntry `json:"offsets,omitempty"`
	Commit          bool             `json:"commit,omitempty"`
}

// TxnOffsetEntry is one group offset in a TxnRequest.
type TxnOffsetEntry struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata,omitempty"`
}

// TxnResponse answers a TxnRequest.
type TxnResponse struct {
	Error *APIError `json:"error,omitempty"`
	// ProducerID and Epoch answer TxnInit.
	ProducerID int64 `json:"producer_id,omitempty"`
	Epoch      int16 `json:"epoch,omitempty"`
	// Txn answers TxnDescribe, Txns TxnList.
	Txn  *TxnDescription  `json:"txn,omitempty"`
	Txns []TxnDescription `json:"txns,omitempty"`
}

// Failure returns the response's error, nil on success.
func (r *TxnResponse) Failure() error { return r.Error.Err() }

// StableRequest asks the node leading a partition for its last stable offset
// and its aborted transactions that end at or after From (JSON, on LSOSubject).
type StableRequest struct {
	From int64 `json:"from"`
}

// StableReply answers a StableRequest: LastStableOffset is the first offset of
// the partition's earliest open transaction, else the offset its next record
// gets; Aborted are the aborted transactions that end at or after the offset
// asked and begin before LastStableOffset, oldest first.
type StableReply struct {
	Error            *APIError    `json:"error,omitempty"`
	LastStableOffset int64        `json:"last_stable_offset"`
	Aborted          []AbortedTxn `json:"aborted,omitempty"`
}
