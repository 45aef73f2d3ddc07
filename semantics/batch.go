package semantics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A record batch is Kafka's RecordBatch v2 (magic 2), the unit qxd stores: one
// JetStream message holds one batch. Its 61-byte header, all big-endian:
//
//	 0 FirstOffset int64        (set by the partition writer; outside the CRC)
//	 8 Length int32             (bytes after this field)
//	12 PartitionLeaderEpoch int32
//	16 Magic int8               (2)
//	17 CRC uint32               (CRC-32C of bytes 21..end)
//	21 Attributes int16         (codec in bits 0-2, timestamp type in bit 3)
//	23 LastOffsetDelta int32
//	27 FirstTimestamp int64     (ms)
//	35 MaxTimestamp int64       (ms)
//	43 ProducerID int64
//	51 ProducerEpoch int16
//	53 BaseSequence int32
//	57 NumRecords int32
//	61 records, compressed as a whole by the codec
//
// Each record is: length varint, attributes int8, timestampDelta varlong,
// offsetDelta varint, key (varint length, -1 for null, then bytes), value (same),
// header count varint, then per header a key (varint length, bytes) and a value
// (varint length, -1 for null, then bytes). Varints are zigzag, as protobuf's.

// BatchHeaderSize is the size of a record batch's fixed header.
const BatchHeaderSize = 61

const (
	crcOffset        = 17 // the CRC field
	crcStart         = 21 // the CRC covers from Attributes to the end
	lengthFieldEnd   = 12 // the Length field counts the bytes after it
	attrCodecMask    = 0x07
	attrLogAppend    = 0x08 // timestamp type LogAppendTime
	minRecordSize    = 7    // length, attributes, ts delta, offset delta, key, value, header count
	minRecordBody    = minRecordSize - 1
	minHeaderSize    = 2 // key length and value length
	headerChunkFirst = 64
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// ProducerInfo identifies an idempotent producer's batch: producer id, epoch and the
// sequence number of the batch's first record.
type ProducerInfo struct {
	ID           int64
	Epoch        int16
	BaseSequence int32
	// Transactional marks the batch as part of the producer's transaction
	// (AttrTransactional).
	Transactional bool
}

func (p ProducerInfo) attributes() int16 {
	if p.Transactional {
		return AttrTransactional
	}
	return 0
}

// NoProducer is ProducerInfo{-1, -1, -1}: a batch from a producer that is not
// idempotent.
var NoProducer = ProducerInfo{ID: -1, Epoch: -1, BaseSequence: -1}

// BatchBuilder accumulates records for one partition into an uncompressed records
// section and builds record batches from it. Not safe for concurrent use. Reusable via
// Reset, which keeps its buffer.
//
// The buffer keeps BatchHeaderSize bytes free in front of the records, so Seal can
// write the header there and hand out an uncompressed batch without copying it.
type BatchBuilder struct {
	buf     []byte // room for the header, then the encoded records; empty before the first
	n       int
	firstTS int64 // ms
	maxTS   int64 // ms
}

// records returns the encoded records.
func (b *BatchBuilder) records() []byte {
	if len(b.buf) < BatchHeaderSize {
		return nil
	}
	return b.buf[BatchHeaderSize:]
}

// Reset empties b, keeping its buffer for the next batch.
func (b *BatchBuilder) Reset() {
	b.buf = b.buf[:0]
	b.n = 0
	b.firstTS, b.maxTS = 0, 0
}

// ResetWith empties b and makes it fill buf's storage (its contents are dropped), e.g.
// the buffer of a batch that Seal returned earlier and that is no longer needed.
func (b *BatchBuilder) ResetWith(buf []byte) {
	b.Reset()
	if cap(buf) > cap(b.buf) {
		b.buf = buf[:0]
	}
}

// TakeBuffer empties b and returns its buffer (length 0) for use elsewhere; b is left
// without one.
func (b *BatchBuilder) TakeBuffer() []byte {
	buf := b.buf[:0]
	b.buf = nil
	b.Reset()
	return buf
}

// Grow makes room for n more bytes of records, so appending them does not allocate.
func (b *BatchBuilder) Grow(n int) {
	if len(b.buf) == 0 {
		n += BatchHeaderSize
	}
	b.buf = slices.Grow(b.buf, n)
}

// NumRecords returns how many records have been appended since the last Reset.
func (b *BatchBuilder) NumRecords() int { return b.n }

// Size returns the uncompressed bytes of the records so far plus BatchHeaderSize: the
// size of an uncompressed batch built now.
func (b *BatchBuilder) Size() int { return len(b.records()) + BatchHeaderSize }

// Append encodes r with offsetDelta = NumRecords() and timestampDelta relative to the
// first record's timestamp. A zero r.Timestamp means time.Now(); r is not modified.
// Timestamps are kept to the millisecond. Append returns the encoded size in bytes.
// Topic, Partition and Offset of r are ignored.
func (b *BatchBuilder) Append(r *Record) int {
	ms := stampMillis(r.Timestamp)
	if b.n == 0 {
		b.firstTS, b.maxTS = ms, ms
	} else if ms > b.maxTS {
		b.maxTS = ms
	}
	delta := ms - b.firstTS
	body := recordBodySize(delta, int64(b.n), r)
	size := varintLen(int64(body)) + body

	if len(b.buf) == 0 {
		b.buf = append(slices.Grow(b.buf, BatchHeaderSize+size), make([]byte, BatchHeaderSize)...)
	}
	start := len(b.buf)
	buf := slices.Grow(b.buf, size)
	buf = binary.AppendVarint(buf, int64(body))
	buf = append(buf, 0) // attributes: unused
	buf = binary.AppendVarint(buf, delta)
	buf = binary.AppendVarint(buf, int64(b.n))
	buf = appendVarintBytes(buf, r.Key)
	buf = appendVarintBytes(buf, r.Value)
	buf = binary.AppendVarint(buf, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		buf = binary.AppendVarint(buf, int64(len(h.Key)))
		buf = append(buf, h.Key...)
		buf = appendVarintBytes(buf, h.Value)
	}
	b.buf = buf
	b.n++
	return len(buf) - start
}

// EncodedRecordSize returns how many bytes Append would add for r now, so a producer
// can enforce a batch size before appending. It is exact when r.Timestamp is set or
// the builder is empty. For a zero r.Timestamp on a non-empty builder the timestamp
// Append will take is not known yet, and the result is an upper bound at most 10
// bytes above the exact size; stamp r.Timestamp first for an exact answer.
func (b *BatchBuilder) EncodedRecordSize(r *Record) int {
	var delta int64
	switch {
	case b.n == 0:
	case r.Timestamp.IsZero():
		delta = math.MinInt64 // the longest varlong: 10 bytes
	default:
		delta = r.Timestamp.UnixMilli() - b.firstTS
	}
	body := recordBodySize(delta, int64(b.n), r)
	return varintLen(int64(body)) + body
}

// Build appends a complete RecordBatch v2 holding the appended records to dst and
// returns the extended slice: FirstOffset 0 (the partition writer sets it),
// PartitionLeaderEpoch -1, magic 2, attributes with codec c and CreateTime,
// LastOffsetDelta, first and max timestamps, the producer's id, epoch and base
// sequence, NumRecords, the records compressed with c, Length and CRC. When dst lacks
// the capacity, Build allocates the output once (rarely twice, for input that does not
// compress). The builder is unchanged; Build may be called again, e.g. with another
// codec. On error dst is returned as it was.
func (b *BatchBuilder) Build(dst []byte, p ProducerInfo, c Compression) ([]byte, error) {
	if b.n == 0 {
		return dst, errors.New("record batch: build: no records appended")
	}
	if !c.valid() {
		return dst, Errorf(ErrInvalidConfig, "record batch: build: unknown compression codec %d", int8(c))
	}
	recs := b.records()
	start := len(dst)
	out := slices.Grow(dst, BatchHeaderSize+compressBound(c, len(recs)))
	out = out[:start+BatchHeaderSize] // the header is written below, once Length is known
	out, err := compress(out, recs, c)
	if err != nil {
		return dst, fmt.Errorf("record batch: build: %s: %w", c, err)
	}
	if err := b.writeHeader(out[start:], p, c); err != nil {
		return dst, err
	}
	return out, nil
}

// Seal returns the batch Build would, and empties b. An uncompressed batch is b's own
// buffer, with the header written in the room kept for it: no copy. b gives that
// buffer up (dst is not used; hand it to ResetWith later, or drop it). A compressed
// batch is appended to dst as Build does, and b keeps its buffer. On error b is
// unchanged.
func (b *BatchBuilder) Seal(dst []byte, p ProducerInfo, c Compression) ([]byte, error) {
	if c != CompressionNone || b.n == 0 {
		out, err := b.Build(dst, p, c)
		if err == nil {
			b.Reset()
		}
		return out, err
	}
	if err := b.writeHeader(b.buf, p, c); err != nil {
		return dst, err
	}
	out := b.buf
	b.buf = nil
	b.Reset()
	return out, nil
}

// writeHeader writes the header of batch out (header room followed by the records
// compressed with c), Length and CRC included.
func (b *BatchBuilder) writeHeader(out []byte, p ProducerInfo, c Compression) error {
	length := len(out) - lengthFieldEnd
	if length > math.MaxInt32 {
		return Errorf(ErrMessageTooLarge, "record batch: build: %d bytes do not fit a batch", len(out))
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(length),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(c)&attrCodecMask | p.attributes(), // CreateTime: bit 3 clear
		LastOffsetDelta:      int32(b.n - 1),
		FirstTimestamp:       b.firstTS,
		MaxTimestamp:         b.maxTS,
		ProducerID:           p.ID,
		ProducerEpoch:        p.Epoch,
		FirstSequence:        p.BaseSequence,
		NumRecords:           int32(b.n),
	}
	// Records is nil, so AppendTo writes exactly the header, in place.
	rb.AppendTo(out[:0])
	binary.BigEndian.PutUint32(out[crcOffset:], crc32.Checksum(out[crcStart:], crc32c))
	return nil
}

// BatchHeader is the fixed part of a RecordBatch, read without touching the records.
type BatchHeader struct {
	BaseOffset int64
	Length     int32
	// LeaderEpoch is the partition leader epoch the writer stamped on the batch
	// (-1: none, as producers send it).
	LeaderEpoch     int32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64 // ms
	MaxTimestamp    int64 // ms
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Compression returns the batch's codec.
func (h BatchHeader) Compression() Compression { return Compression(h.Attributes & attrCodecMask) }

// LastOffset returns the offset of the batch's last record: BaseOffset +
// LastOffsetDelta.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// ParseBatchHeader validates b as exactly one RecordBatch v2 and returns its header:
// the Length field matches len(b), magic is 2, the CRC matches, NumRecords is at least
// 1 and equals LastOffsetDelta+1, and the codec is known. It does not decompress or
// decode the records. Errors wrap ErrCorruptMessage and say what is wrong. It does not
// panic on any input.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, corrupt("truncated: %d bytes, the header alone takes %d", len(b), BatchHeaderSize)
	}
	if length := int64(int32(binary.BigEndian.Uint32(b[8:]))); length != int64(len(b)-lengthFieldEnd) {
		return BatchHeader{}, corrupt("length mismatch: the length field says %d bytes follow it, %d do", length, len(b)-lengthFieldEnd)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil { // cannot fail once the length matches
		return BatchHeader{}, corrupt("%v", err)
	}
	if rb.Magic != 2 {
		return BatchHeader{}, corrupt("unsupported magic %d, want 2", rb.Magic)
	}
	if got, want := crc32.Checksum(b[crcStart:], crc32c), uint32(rb.CRC); got != want {
		return BatchHeader{}, corrupt("crc mismatch: got 0x%08x (computed), want 0x%08x (stored)", got, want)
	}
	if rb.NumRecords < 1 {
		return BatchHeader{}, corrupt("num records %d, want at least 1", rb.NumRecords)
	}
	if int64(rb.NumRecords) != int64(rb.LastOffsetDelta)+1 {
		return BatchHeader{}, corrupt("num records %d does not match last offset delta %d (want %d records)",
			rb.NumRecords, rb.LastOffsetDelta, int64(rb.LastOffsetDelta)+1)
	}
	if codec := Compression(rb.Attributes & attrCodecMask); !codec.valid() {
		return BatchHeader{}, corrupt("unknown compression codec %d in attributes 0x%04x", int8(codec), uint16(rb.Attributes))
	}
	return BatchHeader{
		BaseOffset:      rb.FirstOffset,
		Length:          rb.Length,
		LeaderEpoch:     rb.PartitionLeaderEpoch,
		Attributes:      rb.Attributes,
		LastOffsetDelta: rb.LastOffsetDelta,
		FirstTimestamp:  rb.FirstTimestamp,
		MaxTimestamp:    rb.MaxTimestamp,
		ProducerID:      rb.ProducerID,
		ProducerEpoch:   rb.ProducerEpoch,
		BaseSequence:    rb.FirstSequence,
		NumRecords:      rb.NumRecords,
	}, nil
}

// SetBaseOffset overwrites the batch's FirstOffset in place, as Kafka's broker does.
// The field is outside the CRC, so the batch stays valid. b must be a parsed batch.
func SetBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[:8], uint64(base))
}

// SetLeaderEpoch overwrites the batch's PartitionLeaderEpoch in place, as Kafka's
// partition leader stamps its epoch on what it appends. The field is outside the
// CRC. b must be a parsed batch.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[12:16], uint32(epoch))
}

// DecodeRecords validates batch b as ParseBatchHeader does (the CRC pass is cheap
// next to decoding), decompresses it and appends each of its records to dst, with
// Topic and Partition as given, Offset = BaseOffset + offsetDelta, and Timestamp =
// FirstTimestamp + timestampDelta in ms (MaxTimestamp for every record when the batch
// has timestamp type LogAppendTime, as Kafka does). Key, Value and header values are
// nil where the batch holds null (length -1).
//
// To avoid copies, Key, Value and header values alias b for an uncompressed batch,
// and a fresh decompression buffer, owned by the returned records, otherwise: do not
// modify b while the records are in use. Header keys never alias b; a key repeated
// from the previous record shares its string.
//
// A control batch (a transaction marker, IsControlBatch) holds no application
// records: DecodeRecords checks it and appends nothing, so readers never hand a
// marker to an application. Its offset is LastOffset of its header.
//
// Record offset deltas must run 0, 1, 2, …, as producers write them and as qxd's
// dense offsets need. DecodeRecords does not panic on malformed input; errors wrap
// ErrCorruptMessage, name the problem, and leave dst's length as it was.
func DecodeRecords(dst []Record, b []byte, topic string, partition int32) ([]Record, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return dst, err
	}
	if h.Control() {
		return dst, nil
	}
	codec := h.Compression()
	raw, err := decompress(b[BatchHeaderSize:], codec)
	if err != nil {
		return dst, corrupt("%s records: %v", codec, err)
	}
	n := int(h.NumRecords)
	if n > len(raw)/minRecordSize {
		return dst, corrupt("%d records cannot fit in %d bytes of records", n, len(raw))
	}
	orig := len(dst)
	dst = slices.Grow(dst, n)
	d := recordDecoder{raw: raw}
	for i := range n {
		dst = dst[:len(dst)+1]
		rec := &dst[len(dst)-1]
		if err := d.next(rec, i, n); err != nil {
			clear(dst[orig:])
			return dst[:orig], corrupt("record %d of %d (at byte %d): %v", i, n, d.recStart, err)
		}
		ms := h.FirstTimestamp + d.tsDelta
		if h.Attributes&attrLogAppend != 0 {
			ms = h.MaxTimestamp
		}
		rec.Topic = topic
		rec.Partition = partition
		rec.Offset = h.BaseOffset + int64(i)
		rec.Timestamp = time.UnixMilli(ms)
	}
	if d.off != len(raw) {
		clear(dst[orig:])
		return dst[:orig], corrupt("%d bytes left over after %d records", len(raw)-d.off, n)
	}
	return dst, nil
}

// recordDecoder reads the records section of one batch.
type recordDecoder struct {
	raw      []byte
	off      int
	recStart int
	tsDelta  int64
	prevHdrs []Header // the previous record's headers, to share repeated key strings
	hdrs     []Header // spare capacity that record headers are carved from
}

// next decodes record i of n into rec (Key, Value, Headers; the caller sets the rest).
func (d *recordDecoder) next(rec *Record, i, n int) error {
	d.recStart = d.off
	length, ok := d.varint(d.raw)
	if !ok {
		return errors.New("bad length varint")
	}
	if length < minRecordBody || length > int64(len(d.raw)-d.off) {
		return fmt.Errorf("length %d, want %d to %d", length, minRecordBody, len(d.raw)-d.off)
	}
	end := d.off + int(length)
	src := d.raw[:end] // no field may run past the record
	d.off++            // attributes: unused
	if d.tsDelta, ok = d.varint(src); !ok {
		return errors.New("bad timestamp delta varint")
	}
	offDelta, ok := d.varint(src)
	if !ok {
		return errors.New("bad offset delta varint")
	}
	if offDelta != int64(i) {
		return fmt.Errorf("offset delta %d, want %d", offDelta, i)
	}
	var err error
	if rec.Key, err = d.bytes(src, "key"); err != nil {
		return err
	}
	if rec.Value, err = d.bytes(src, "value"); err != nil {
		return err
	}
	count, ok := d.varint(src)
	if !ok {
		return errors.New("bad header count varint")
	}
	if count < 0 || count > int64(end-d.off)/minHeaderSize {
		return fmt.Errorf("header count %d with %d bytes left", count, end-d.off)
	}
	rec.Headers = nil
	if count > 0 {
		hs := d.headers(int(count), n-i)
		for j := range hs {
			kb, err := d.bytes(src, "header key")
			if err != nil {
				return err
			}
			if kb == nil {
				return fmt.Errorf("header %d: null key", j)
			}
			if j < len(d.prevHdrs) && d.prevHdrs[j].Key == string(kb) {
				hs[j].Key = d.prevHdrs[j].Key
			} else {
				hs[j].Key = string(kb)
			}
			if hs[j].Value, err = d.bytes(src, "header value"); err != nil {
				return err
			}
		}
		rec.Headers = hs
		d.prevHdrs = hs
	}
	if d.off != end {
		return fmt.Errorf("%d bytes left over inside the record", end-d.off)
	}
	return nil
}

// headers returns count headers for one record, carving them from chunks that grow
// with the batch so a batch allocates O(log) times, not once per record.
func (d *recordDecoder) headers(count, recordsLeft int) []Header {
	if cap(d.hdrs)-len(d.hdrs) < count {
		// Guess every remaining record has as many headers, but no more than one per
		// 16 bytes left (a few times the batch's size at worst) unless growing
		// geometrically, so a hostile batch cannot make us allocate far beyond what it
		// holds.
		size := min(count*recordsLeft, max(headerChunkFirst, 2*cap(d.hdrs), (len(d.raw)-d.off)/16))
		d.hdrs = make([]Header, 0, max(size, count))
	}
	l := len(d.hdrs)
	d.hdrs = d.hdrs[:l+count]
	return d.hdrs[l : l+count : l+count]
}

// varint reads a zigzag varint, inlined for the one-byte case most fields take.
func (d *recordDecoder) varint(src []byte) (int64, bool) {
	if off := d.off; off < len(src) && src[off] < 0x80 {
		c := int64(src[off])
		d.off = off + 1
		return c>>1 ^ -(c & 1), true
	}
	return d.varintSlow(src)
}

func (d *recordDecoder) varintSlow(src []byte) (int64, bool) {
	if d.off >= len(src) {
		return 0, false
	}
	v, n := binary.Varint(src[d.off:])
	if n <= 0 {
		return 0, false
	}
	d.off += n
	return v, true
}

// bytes reads a varint length then that many bytes; -1 gives nil. The result aliases
// src with its capacity clipped, so appending to it cannot overwrite the batch.
func (d *recordDecoder) bytes(src []byte, what string) ([]byte, error) {
	l, ok := d.varint(src)
	if !ok {
		return nil, fmt.Errorf("bad %s length varint", what)
	}
	if l == -1 {
		return nil, nil
	}
	if l < -1 || l > int64(len(src)-d.off) {
		return nil, fmt.Errorf("%s length %d with %d bytes left", what, l, len(src)-d.off)
	}
	start := d.off
	d.off += int(l)
	return src[start:d.off:d.off], nil
}

func corrupt(format string, args ...any) error {
	return Errorf(ErrCorruptMessage, "record batch: "+format, args...)
}

func stampMillis(t time.Time) int64 {
	if t.IsZero() {
		return time.Now().UnixMilli()
	}
	return t.UnixMilli()
}

// recordBodySize is the size of a record after its length varint.
func recordBodySize(tsDelta, offDelta int64, r *Record) int {
	n := 1 + varintLen(tsDelta) + varintLen(offDelta) +
		varintBytesLen(r.Key) + varintBytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintLen(int64(len(h.Key))) + len(h.Key) + varintBytesLen(h.Value)
	}
	return n
}

// varintLen is the size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

func varintBytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendVarintBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // -1
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
