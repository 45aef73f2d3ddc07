package semantics

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions, as Kafka has them: a transactional producer's batches carry the
// transactional bit of their attributes, and the transaction coordinator ends a
// transaction in each of its partitions with a control batch, one record whose key
// says commit or abort (kmsg.ControlRecordKey) and whose value is Kafka's
// EndTxnMarker. A control batch takes an offset like any batch, so offsets stay
// dense; readers never hand it to applications.

const (
	// AttrTransactional is bit 4 of a batch's attributes: the batch belongs to a
	// transaction.
	AttrTransactional = 0x10
	// AttrControl is bit 5 of a batch's attributes: the batch is a control batch
	// (a transaction marker).
	AttrControl = 0x20
)

// TxnsBucket is the KV bucket the transaction coordinator keeps its transactions in,
// one key per transactional id (EncodeGroupID).
const TxnsBucket = "qxd_txns"

// TxnFirstHeader is the NATS header of a stored abort marker: the first offset of
// the aborted transaction in the partition, so a writer taking over rebuilds the
// aborted-transactions index from the markers alone.
const TxnFirstHeader = "Qxd-Txn-First"

// Transactional reports whether the batch belongs to a transaction.
func (h BatchHeader) Transactional() bool { return h.Attributes&AttrTransactional != 0 }

// Control reports whether the batch is a control batch (a transaction marker).
func (h BatchHeader) Control() bool { return h.Attributes&AttrControl != 0 }

// IsControlBatch reports whether b, a stored batch, is a control batch, from its
// attributes alone.
func IsControlBatch(b []byte) bool {
	return len(b) >= BatchHeaderSize && int16(binary.BigEndian.Uint16(b[crcStart:]))&AttrControl != 0
}

// BuildControlBatch returns a transaction marker for producer id and epoch: a
// control batch (transactional and control bits set) of one record whose key is
// the commit or abort ControlRecordKey and whose value is an EndTxnMarker with
// coordinatorEpoch, at base offset 0 (the writer gives it its offset).
func BuildControlBatch(id int64, epoch int16, commit bool, coordinatorEpoch int32, at time.Time) []byte {
	key := kmsg.ControlRecordKey{Version: 0, Type: kmsg.ControlRecordKeyTypeAbort}
	if commit {
		key.Type = kmsg.ControlRecordKeyTypeCommit
	}
	val := kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: coordinatorEpoch}
	rec := kmsg.Record{Key: key.AppendTo(nil), Value: val.AppendTo(nil)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the body after a one-byte length
	records := rec.AppendTo(nil)
	ms := at.UnixMilli()
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           AttrTransactional | AttrControl,
		LastOffsetDelta:      0,
		FirstTimestamp:       ms,
		MaxTimestamp:         ms,
		ProducerID:           id,
		ProducerEpoch:        epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              records,
	}
	rb.Length = int32(BatchHeaderSize - lengthFieldEnd + len(records))
	out := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(out[crcOffset:], crc32.Checksum(out[crcStart:], crc32c))
	return out
}

// ControlMarker is what a control batch says.
type ControlMarker struct {
	Commit           bool
	CoordinatorEpoch int32
}

// ParseControlBatch checks that b is a valid control batch of one marker record and
// returns the marker. Errors wrap ErrCorruptMessage or ErrInvalidRecord.
func ParseControlBatch(b []byte) (BatchHeader, ControlMarker, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, ControlMarker{}, err
	}
	if !h.Control() || !h.Transactional() || h.NumRecords != 1 || h.Compression() != CompressionNone {
		return h, ControlMarker{}, Errorf(ErrInvalidRecord, "not a transaction marker: a control batch holds one uncompressed record and has the transactional and control bits set")
	}
	var rec kmsg.Record
	if err := rec.ReadFrom(b[BatchHeaderSize:]); err != nil {
		return h, ControlMarker{}, corrupt("control record: %v", err)
	}
	var key kmsg.ControlRecordKey
	if err := key.ReadFrom(rec.Key); err != nil {
		return h, ControlMarker{}, corrupt("control record key: %v", err)
	}
	var m ControlMarker
	switch key.Type {
	case kmsg.ControlRecordKeyTypeCommit:
		m.Commit = true
	case kmsg.ControlRecordKeyTypeAbort:
	default:
		return h, ControlMarker{}, Errorf(ErrInvalidRecord, "control record of type %d is not a transaction marker", key.Type)
	}
	var val kmsg.EndTxnMarker
	if err := val.ReadFrom(rec.Value); err == nil {
		m.CoordinatorEpoch = val.CoordinatorEpoch
	}
	return h, m, nil
}

// AbortedTxn is one entry of a partition's aborted-transactions index, as Kafka's
// Fetch returns it: producer ProducerID's records from FirstOffset up to the abort
// marker at LastOffset are aborted.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// MarkerRequest asks a partition's writer to end producer ProducerID's
// transaction (JSON, on MarkerSubject; the answer is a ProduceReply).
type MarkerRequest struct {
	ProducerID       int64 `json:"producer_id"`
	Epoch            int16 `json:"epoch"`
	Commit           bool  `json:"commit"`
	CoordinatorEpoch int32 `json:"coordinator_epoch"`
}

// TxnKey is the transactions-bucket key of a transactional id.
func TxnKey(id string) string { return EncodeGroupID(id) }

// TxnState is a transaction's state, by Kafka's names.
type TxnState string

// The transaction states.
const (
	TxnEmpty          TxnState = "Empty"
	TxnOngoing        TxnState = "Ongoing"
	TxnPrepareCommit  TxnState = "PrepareCommit"
	TxnPrepareAbort   TxnState = "PrepareAbort"
	TxnCompleteCommit TxnState = "CompleteCommit"
	TxnCompleteAbort  TxnState = "CompleteAbort"
)

// MaxTxnTimeout is the longest transaction timeout a producer may ask for (Kafka's
// transaction.max.timeout.ms default).
const MaxTxnTimeout = 15 * time.Minute

// TxnDescription is one transactional id as the coordinator knows it.
type TxnDescription struct {
	TransactionalID string   `json:"transactional_id"`
	ProducerID      int64    `json:"producer_id"`
	Epoch           int16    `json:"epoch"`
	State           TxnState `json:"state"`
	TimeoutMs       int32    `json:"timeout_ms"`
	// StartMs is when the ongoing transaction began (Unix ms), -1 when none is.
	StartMs    int64            `json:"start_ms"`
	Partitions []TopicPartition `json:"partitions,omitempty"`
	Groups     []string         `json:"groups,omitempty"`
}
