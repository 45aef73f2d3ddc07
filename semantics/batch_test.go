package semantics_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

var allCompressions = []semantics.Compression{
	semantics.CompressionNone,
	semantics.CompressionGzip,
	semantics.CompressionSnappy,
	semantics.CompressionLZ4,
	semantics.CompressionZstd,
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// t0 is a fixed create time with millisecond precision.
var t0 = time.UnixMilli(1_700_000_000_000)

// build appends recs to a fresh builder and builds one batch.
func build(t testing.TB, c semantics.Compression, p semantics.ProducerInfo, recs []semantics.Record) []byte {
	t.Helper()
	var bb semantics.BatchBuilder
	for i := range recs {
		bb.Append(&recs[i])
	}
	out, err := bb.Build(nil, p, c)
	if err != nil {
		t.Fatalf("Build(%s): %v", c, err)
	}
	return out
}

// fixCRC recomputes the CRC of a batch edited by a test.
func fixCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// fixLength rewrites the length field to match len(b).
func fixLength(b []byte) []byte {
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	return b
}

// replaceRecords swaps the records section of batch b, fixing length and CRC.
func replaceRecords(b, records []byte) []byte {
	out := append(bytes.Clone(b[:semantics.BatchHeaderSize]), records...)
	return fixCRC(fixLength(out))
}

func manyRecords(n int) []semantics.Record {
	recs := make([]semantics.Record, n)
	for i := range recs {
		recs[i] = semantics.Record{
			Key:       fmt.Appendf(nil, "key-%d", i%97),
			Value:     fmt.Appendf(nil, "value %d %s", i, strings.Repeat("x", i%50)),
			Timestamp: t0.Add(time.Duration(i) * time.Millisecond),
		}
		if i%3 == 0 {
			recs[i].Headers = []semantics.Header{{Key: "trace", Value: fmt.Appendf(nil, "%d", i)}}
		}
	}
	return recs
}

// equalBytes tells nil from empty.
func equalBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func checkRecords(t *testing.T, got, want []semantics.Record, topic string, partition int32, base int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := &got[i], &want[i]
		if g.Topic != topic || g.Partition != partition || g.Offset != base+int64(i) {
			t.Fatalf("record %d: at %s/%d@%d, want %s/%d@%d", i, g.Topic, g.Partition, g.Offset, topic, partition, base+int64(i))
		}
		if !equalBytes(g.Key, w.Key) {
			t.Fatalf("record %d: key %q (nil %v), want %q (nil %v)", i, g.Key, g.Key == nil, w.Key, w.Key == nil)
		}
		if !equalBytes(g.Value, w.Value) {
			t.Fatalf("record %d: value %q (nil %v), want %q (nil %v)", i, g.Value, g.Value == nil, w.Value, w.Value == nil)
		}
		if !w.Timestamp.IsZero() && !g.Timestamp.Equal(w.Timestamp) {
			t.Fatalf("record %d: timestamp %v, want %v", i, g.Timestamp, w.Timestamp)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !equalBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d: %q=%q, want %q=%q", i, j, g.Headers[j].Key, g.Headers[j].Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		recs []semantics.Record
	}{
		{"nil key", []semantics.Record{{Key: nil, Value: []byte("v"), Timestamp: t0}}},
		{"empty key", []semantics.Record{{Key: []byte{}, Value: []byte("v"), Timestamp: t0}}},
		{"tombstone", []semantics.Record{{Key: []byte("k"), Value: nil, Timestamp: t0}}},
		{"empty value", []semantics.Record{{Key: []byte("k"), Value: []byte{}, Timestamp: t0}}},
		{"duplicate binary headers", []semantics.Record{{
			Key: []byte("k"), Value: []byte("v"), Timestamp: t0,
			Headers: []semantics.Header{
				{Key: "h", Value: []byte{0, 1, 2, 0xff}},
				{Key: "h", Value: []byte{0xfe, 0}},
				{Key: "", Value: nil},
				{Key: "e", Value: []byte{}},
				{Key: "h", Value: bytes.Repeat([]byte{0x80}, 300)},
			},
		}}},
		{"timestamps around the first", []semantics.Record{
			{Value: []byte("a"), Timestamp: t0},
			{Value: []byte("b"), Timestamp: t0.Add(-time.Hour)},
			{Value: []byte("c"), Timestamp: t0.Add(72 * time.Hour)},
			{Value: []byte("d"), Timestamp: t0.Add(-1 * time.Millisecond)},
			{Value: []byte("e"), Timestamp: time.UnixMilli(0)},
		}},
		{"timestamp before 1970", []semantics.Record{{Value: []byte("a"), Timestamp: time.UnixMilli(-5000)}}},
		{"zero timestamp is stamped", []semantics.Record{{Value: []byte("now")}}},
		{"large value", []semantics.Record{{Value: bytes.Repeat([]byte("0123456789"), 100_000), Timestamp: t0}}},
		{"one record", manyRecords(1)},
		{"10000 records", manyRecords(10000)},
	}
	for _, tc := range tests {
		for _, c := range allCompressions {
			t.Run(tc.name+"/"+c.String(), func(t *testing.T) {
				t.Parallel()
				before := time.Now().Truncate(time.Millisecond)
				b := build(t, c, semantics.NoProducer, tc.recs)
				after := time.Now()
				h, err := semantics.ParseBatchHeader(b)
				if err != nil {
					t.Fatal(err)
				}
				if h.Compression() != c || h.NumRecords != int32(len(tc.recs)) || h.LastOffset() != int64(len(tc.recs)-1) {
					t.Fatalf("header %+v: want codec %s, %d records", h, c, len(tc.recs))
				}
				first, maxTS := tc.recs[0].Timestamp.UnixMilli(), int64(0)
				for i, r := range tc.recs {
					if i == 0 || r.Timestamp.UnixMilli() > maxTS {
						maxTS = r.Timestamp.UnixMilli()
					}
				}
				if tc.recs[0].Timestamp.IsZero() {
					first, maxTS = h.FirstTimestamp, h.FirstTimestamp
					if h.FirstTimestamp < before.UnixMilli() || h.FirstTimestamp > after.UnixMilli() {
						t.Fatalf("stamped %d, want between %d and %d", h.FirstTimestamp, before.UnixMilli(), after.UnixMilli())
					}
				}
				if h.FirstTimestamp != first || h.MaxTimestamp != maxTS {
					t.Fatalf("timestamps first %d max %d, want %d %d", h.FirstTimestamp, h.MaxTimestamp, first, maxTS)
				}
				if h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 {
					t.Fatalf("producer %d/%d/%d, want -1/-1/-1", h.ProducerID, h.ProducerEpoch, h.BaseSequence)
				}
				got, err := semantics.DecodeRecords(nil, b, "orders", 3)
				if err != nil {
					t.Fatal(err)
				}
				checkRecords(t, got, tc.recs, "orders", 3, 0)
			})
		}
	}
}

func TestKmsgReadsOutput(t *testing.T) {
	t.Parallel()
	recs := manyRecords(50)
	recs[7].Key, recs[8].Value = nil, nil
	p := semantics.ProducerInfo{ID: 123456789, Epoch: 4, BaseSequence: 1000}
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			b := build(t, c, p, recs)
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatal(err)
			}
			if got := rb.AppendTo(nil); !bytes.Equal(got, b) {
				t.Fatal("kmsg re-encoding differs from the batch")
			}
			want := kmsg.RecordBatch{
				FirstOffset: 0, Length: int32(len(b) - 12), PartitionLeaderEpoch: -1, Magic: 2,
				CRC:        int32(crc32.Checksum(b[21:], castagnoli)),
				Attributes: int16(c), LastOffsetDelta: 49,
				FirstTimestamp: t0.UnixMilli(), MaxTimestamp: t0.UnixMilli() + 49,
				ProducerID: p.ID, ProducerEpoch: p.Epoch, FirstSequence: p.BaseSequence,
				NumRecords: 50, Records: rb.Records,
			}
			if fmt.Sprint(rb) != fmt.Sprint(want) {
				t.Fatalf("kmsg read\n%+v\nwant\n%+v", rb, want)
			}
			raw := independentDecompress(t, c, rb.Records)
			for i := range recs {
				var kr kmsg.Record
				if err := kr.ReadFrom(raw); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				l, n := binary.Varint(raw)
				raw = raw[n+int(l):]
				if kr.OffsetDelta != int32(i) || kr.TimestampDelta64 != int64(i) ||
					!equalBytes(kr.Key, recs[i].Key) || !equalBytes(kr.Value, recs[i].Value) ||
					len(kr.Headers) != len(recs[i].Headers) {
					t.Fatalf("record %d: kmsg read %+v, want %+v", i, kr, recs[i])
				}
				for j, h := range recs[i].Headers {
					if kr.Headers[j].Key != h.Key || !bytes.Equal(kr.Headers[j].Value, h.Value) {
						t.Fatalf("record %d header %d: %+v, want %+v", i, j, kr.Headers[j], h)
					}
				}
			}
			if len(raw) != 0 {
				t.Fatalf("%d bytes left after the records", len(raw))
			}
		})
	}
}

// independentDecompress decodes a records section with the codecs' own libraries (the
// standard library for gzip), not the package's code.
func independentDecompress(t *testing.T, c semantics.Compression, src []byte) []byte {
	t.Helper()
	var (
		out []byte
		err error
	)
	switch c {
	case semantics.CompressionNone:
		out = src
	case semantics.CompressionGzip:
		var r *stdgzip.Reader
		if r, err = stdgzip.NewReader(bytes.NewReader(src)); err == nil {
			out, err = io.ReadAll(r)
		}
	case semantics.CompressionSnappy:
		out, err = s2.Decode(nil, src)
	case semantics.CompressionLZ4:
		out, err = io.ReadAll(lz4.NewReader(bytes.NewReader(src)))
	case semantics.CompressionZstd:
		var d *zstd.Decoder
		if d, err = zstd.NewReader(nil); err == nil {
			out, err = d.DecodeAll(src, nil)
			d.Close()
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	return out
}

// goldenHex is a RecordBatch v2 laid out by hand from Kafka's spec, with its CRC-32C
// computed by a separate bitwise implementation. Two records at 1700000000000 ms:
// key "k", value "v", header h=x; then null key, null value, 1 ms earlier.
var goldenHex = strings.Join([]string{
	"0000000000000000", // FirstOffset 0
	"00000045",         // Length 69
	"ffffffff",         // PartitionLeaderEpoch -1
	"02",               // Magic 2
	"61eaf0ed",         // CRC-32C
	"0000",             // Attributes: no compression, CreateTime
	"00000001",         // LastOffsetDelta 1
	"0000018bcfe56800", // FirstTimestamp
	"0000018bcfe56800", // MaxTimestamp
	"000000000000002a", // ProducerID 42
	"0003",             // ProducerEpoch 3
	"00000007",         // BaseSequence 7
	"00000002",         // NumRecords 2
	// record 0: length 12, attributes, ts delta 0, offset delta 0, key "k", value "v", 1 header h=x
	"18" + "00" + "00" + "00" + "026b" + "0276" + "02" + "0268" + "0278",
	// record 1: length 6, attributes, ts delta -1, offset delta 1, null key, null value, 0 headers
	"0c" + "00" + "01" + "02" + "01" + "01" + "00",
}, "")

func TestGoldenBatch(t *testing.T) {
	t.Parallel()
	want, err := hex.DecodeString(goldenHex)
	if err != nil {
		t.Fatal(err)
	}
	recs := []semantics.Record{
		{Key: []byte("k"), Value: []byte("v"), Headers: []semantics.Header{{Key: "h", Value: []byte("x")}}, Timestamp: t0},
		{Timestamp: t0.Add(-time.Millisecond)},
	}
	got := build(t, semantics.CompressionNone, semantics.ProducerInfo{ID: 42, Epoch: 3, BaseSequence: 7}, recs)
	if !bytes.Equal(got, want) {
		t.Fatalf("batch\n got %x\nwant %x", got, want)
	}
	dec, err := semantics.DecodeRecords(nil, want, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, dec, recs, "t", 0, 0)
}

// TestBuilderSeal checks that Seal gives the bytes Build gives, empties the builder,
// and that a sealed buffer handed back with ResetWith builds the next batch right.
func TestBuilderSeal(t *testing.T) {
	t.Parallel()
	p := semantics.ProducerInfo{ID: 7, Epoch: 1, BaseSequence: 40}
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			var bb semantics.BatchBuilder
			var prev []byte
			for round, n := range []int{300, 1, 50} {
				bb.ResetWith(prev)
				recs := manyRecords(n)
				for i := range recs {
					bb.Append(&recs[i])
				}
				want, err := bb.Build(nil, p, c)
				if err != nil {
					t.Fatal(err)
				}
				got, err := bb.Seal(nil, p, c)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("round %d: Seal and Build differ", round)
				}
				if bb.NumRecords() != 0 || bb.Size() != semantics.BatchHeaderSize {
					t.Fatalf("round %d: after Seal: %d records, size %d", round, bb.NumRecords(), bb.Size())
				}
				if _, err := bb.Seal(nil, p, c); err == nil {
					t.Fatalf("round %d: Seal of an empty builder succeeded", round)
				}
				dec, err := semantics.DecodeRecords(nil, got, "t", 0)
				if err != nil {
					t.Fatal(err)
				}
				checkRecords(t, dec, recs, "t", 0, 0)
				prev = got
			}
		})
	}
}

func TestBuilder(t *testing.T) {
	t.Parallel()
	t.Run("sizes", func(t *testing.T) {
		t.Parallel()
		var bb semantics.BatchBuilder
		if bb.Size() != semantics.BatchHeaderSize || bb.NumRecords() != 0 {
			t.Fatalf("empty builder: size %d, %d records", bb.Size(), bb.NumRecords())
		}
		recs := manyRecords(300)
		recs = append(recs, semantics.Record{Value: bytes.Repeat([]byte("a"), 70000), Timestamp: t0.Add(-90 * 24 * time.Hour)})
		total := semantics.BatchHeaderSize
		for i := range recs {
			est := bb.EncodedRecordSize(&recs[i])
			n := bb.Append(&recs[i])
			if est != n {
				t.Fatalf("record %d: EncodedRecordSize %d, Append %d", i, est, n)
			}
			total += n
			if bb.Size() != total || bb.NumRecords() != i+1 {
				t.Fatalf("record %d: size %d, %d records; want %d, %d", i, bb.Size(), bb.NumRecords(), total, i+1)
			}
		}
		b, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != bb.Size() {
			t.Fatalf("uncompressed batch is %d bytes, Size %d", len(b), bb.Size())
		}
	})
	t.Run("zero timestamp bound", func(t *testing.T) {
		t.Parallel()
		var bb semantics.BatchBuilder
		r := semantics.Record{Value: []byte("v")}
		if est, n := bb.EncodedRecordSize(&r), bb.Append(&r); est != n {
			t.Fatalf("first record: estimate %d, appended %d", est, n)
		}
		for range 100 {
			if est, n := bb.EncodedRecordSize(&r), bb.Append(&r); n > est || est > n+10 {
				t.Fatalf("estimate %d for %d appended bytes", est, n)
			}
		}
	})
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		var bb semantics.BatchBuilder
		bb.Append(&semantics.Record{Value: []byte("old"), Timestamp: t0})
		bb.Reset()
		if bb.Size() != semantics.BatchHeaderSize || bb.NumRecords() != 0 {
			t.Fatalf("after Reset: size %d, %d records", bb.Size(), bb.NumRecords())
		}
		want := []semantics.Record{{Value: []byte("new"), Timestamp: t0.Add(time.Hour)}}
		bb.Append(&want[0])
		b, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
		if err != nil {
			t.Fatal(err)
		}
		got, err := semantics.DecodeRecords(nil, b, "t", 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, got, want, "t", 0, 0)
	})
	t.Run("build appends to dst", func(t *testing.T) {
		t.Parallel()
		var bb semantics.BatchBuilder
		bb.Append(&semantics.Record{Value: []byte("v"), Timestamp: t0})
		for _, c := range allCompressions {
			prefix := []byte("prefix")
			out, err := bb.Build(bytes.Clone(prefix), semantics.NoProducer, c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("%s: prefix lost", c)
			}
			if _, err := semantics.ParseBatchHeader(out[len(prefix):]); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
		}
	})
	t.Run("build errors", func(t *testing.T) {
		t.Parallel()
		var bb semantics.BatchBuilder
		if _, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone); err == nil {
			t.Fatal("empty builder built a batch")
		}
		bb.Append(&semantics.Record{Value: []byte("v")})
		if _, err := bb.Build(nil, semantics.NoProducer, semantics.Compression(5)); !errors.Is(err, semantics.ErrInvalidConfig) {
			t.Fatalf("codec 5: %v, want ErrInvalidConfig", err)
		}
	})
}

// TestNoAllocations pins the hot paths' allocations. Not parallel: AllocsPerRun
// forbids it. Pooled codecs are left out, as the race detector drops pooled values.
func TestNoAllocations(t *testing.T) {
	var bb semantics.BatchBuilder
	r := semantics.Record{Key: []byte("key"), Value: make([]byte, 100), Timestamp: t0,
		Headers: []semantics.Header{{Key: "h", Value: []byte("v")}}}
	dst := make([]byte, 0, 1<<20)
	for _, c := range []semantics.Compression{semantics.CompressionNone, semantics.CompressionSnappy} {
		allocs := testing.AllocsPerRun(20, func() {
			bb.Reset()
			for range 1000 {
				bb.Append(&r)
			}
			if _, err := bb.Build(dst[:0], semantics.NoProducer, c); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: %v allocations per batch, want 0", c, allocs)
		}
	}
	b, _ := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
	recs := make([]semantics.Record, 0, 1000)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := semantics.DecodeRecords(recs[:0], b, "t", 0); err != nil {
			t.Fatal(err)
		}
	})
	// Header slices are carved from one shared chunk; repeated keys share a string.
	if allocs > 1 {
		t.Fatalf("decode: %v allocations, want at most 1", allocs)
	}
}

func TestSetBaseOffset(t *testing.T) {
	t.Parallel()
	recs := manyRecords(5)
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			b := build(t, c, semantics.NoProducer, recs)
			for _, base := range []int64{0, 1, 1_000_000, 1 << 40} {
				semantics.SetBaseOffset(b, base)
				h, err := semantics.ParseBatchHeader(b)
				if err != nil {
					t.Fatalf("base %d: %v", base, err)
				}
				if h.BaseOffset != base || h.LastOffset() != base+4 {
					t.Fatalf("base %d: header base %d last %d", base, h.BaseOffset, h.LastOffset())
				}
				got, err := semantics.DecodeRecords(nil, b, "t", 1)
				if err != nil {
					t.Fatal(err)
				}
				checkRecords(t, got, recs, "t", 1, base)
			}
		})
	}
}

func TestLogAppendTime(t *testing.T) {
	t.Parallel()
	recs := manyRecords(3)
	b := build(t, semantics.CompressionNone, semantics.NoProducer, recs)
	binary.BigEndian.PutUint16(b[21:], 0x08)                        // timestamp type LogAppendTime
	binary.BigEndian.PutUint64(b[35:], uint64(t0.UnixMilli()+5000)) // MaxTimestamp: the append time
	got, err := semantics.DecodeRecords(nil, fixCRC(b), "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !got[i].Timestamp.Equal(t0.Add(5 * time.Second)) {
			t.Fatalf("record %d: timestamp %v, want the append time", i, got[i].Timestamp)
		}
	}
}

func TestCorruptBatches(t *testing.T) {
	t.Parallel()
	recs := manyRecords(2)
	valid := build(t, semantics.CompressionNone, semantics.NoProducer, recs)
	records := valid[semantics.BatchHeaderSize:]
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	// encode builds a records section from raw record fields.
	encode := func(fields ...int64) []byte {
		var out []byte
		for _, f := range fields {
			out = binary.AppendVarint(out, f)
		}
		return out
	}
	withCodec := func(c semantics.Compression, recs []byte) []byte {
		b := bytes.Clone(valid)
		binary.BigEndian.PutUint16(b[21:], uint16(c))
		return replaceRecords(b, recs)
	}
	// Decompression bombs: a few KiB that expand past MaxDecompressedSize.
	zeros := make([]byte, semantics.MaxDecompressedSize+1)
	hugeZstd := func() []byte { // declares its content size in the frame header
		e, _ := zstd.NewWriter(nil)
		defer e.Close()
		return e.EncodeAll(zeros, nil)
	}
	hugeZstdStream := func() []byte { // no content size: the limit must hold while decoding
		var buf bytes.Buffer
		e, _ := zstd.NewWriter(&buf)
		e.Write(zeros)
		e.Close()
		return buf.Bytes()
	}
	hugeGzip := func() []byte {
		var buf bytes.Buffer
		w, _ := stdgzip.NewWriterLevel(&buf, stdgzip.BestSpeed)
		w.Write(zeros)
		w.Close()
		return buf.Bytes()
	}
	hugeLZ4 := func() []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		w.Write(zeros)
		w.Close()
		return buf.Bytes()
	}
	hugeSnappy := func() []byte {
		// A block header claiming 65 MiB, with no data behind it.
		return binary.AppendUvarint(nil, semantics.MaxDecompressedSize+1)
	}
	xerial := func(chunks ...[]byte) []byte {
		out := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}
		for _, c := range chunks {
			out = binary.BigEndian.AppendUint32(out, uint32(len(c)))
			out = append(out, c...)
		}
		return out
	}

	tests := []struct {
		name   string
		batch  []byte
		header bool   // ParseBatchHeader fails too, not only DecodeRecords
		want   string // in the error text
	}{
		{"empty", nil, true, "truncated"},
		{"truncated header", valid[:10], true, "truncated"},
		{"header only", valid[:semantics.BatchHeaderSize-1], true, "truncated"},
		{"truncated records", valid[:len(valid)-1], true, "length mismatch"},
		{"trailing byte", append(bytes.Clone(valid), 0), true, "length mismatch"},
		{"length field too big", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], uint32(len(b))); return b }), true, "length mismatch"},
		{"negative length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0xffffffff); return b }), true, "length mismatch"},
		{"flipped crc byte", edit(func(b []byte) []byte { b[18] ^= 0x01; return b }), true, "crc mismatch"},
		{"flipped record byte", edit(func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b }), true, "crc mismatch"},
		{"wrong magic", edit(func(b []byte) []byte { b[16] = 1; return b }), true, "magic 1"},
		{"num records mismatch", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 3); return fixCRC(b) }), true, "num records 3"},
		{"zero records", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[57:], 0)
			binary.BigEndian.PutUint32(b[23:], 0xffffffff)
			return fixCRC(b)
		}), true, "num records 0"},
		{"unknown codec", edit(func(b []byte) []byte { binary.BigEndian.PutUint16(b[21:], 5); return fixCRC(b) }), true, "unknown compression codec 5"},
		{"more records declared than fit", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[57:], 1000)
			binary.BigEndian.PutUint32(b[23:], 999)
			return fixCRC(b)
		}), false, "cannot fit"},
		{"record cut short", replaceRecords(valid, records[:len(records)-3]), false, "record 1 of 2"},
		{"bytes after the records", replaceRecords(valid, append(bytes.Clone(records), make([]byte, 7)...)), false, "left over"},
		{"record length too long", replaceRecords(valid, append(encode(100), records[1:]...)), false, "length 100"},
		{"record length too short", replaceRecords(valid, append(encode(2), records[1:]...)), false, "length 2"},
		{"bad varint", replaceRecords(valid, append(bytes.Repeat([]byte{0xff}, 11), records...)), false, "bad length varint"},
		{"key longer than record", withOneRecord(valid, encode(8, 0, 0, 0, 50), []byte("0123")), false, "key length 50"},
		{"negative value length", withOneRecord(valid, encode(6, 0, 0, 0, -1, -2, 0), nil), false, "value length -2"},
		{"negative header count", withOneRecord(valid, encode(6, 0, 0, 0, -1, -1, -3), nil), false, "header count -3"},
		{"huge header count", withOneRecord(valid, encode(10, 0, 0, 0, -1, -1, 1<<30), nil), false, "header count"},
		{"null header key", withOneRecord(valid, encode(8, 0, 0, 0, -1, -1, 1, -1, -1), nil), false, "null key"},
		{"offset delta skips", replaceRecords(valid, append(encode(6, 0, 0, 3, -1, -1, 0), encode(6, 0, 0, 4, -1, -1, 0)...)), false, "offset delta 3, want 0"},
		{"gzip garbage", withCodec(semantics.CompressionGzip, []byte("this is not gzip at all")), false, "gzip records"},
		{"gzip truncated", withCodec(semantics.CompressionGzip, compressWith(t, semantics.CompressionGzip, records)[:20]), false, "gzip records"},
		{"snappy garbage", withCodec(semantics.CompressionSnappy, []byte{0x40, 0xff, 0xff, 0xff, 0x01, 0x02}), false, "snappy records"},
		{"snappy bomb", withCodec(semantics.CompressionSnappy, hugeSnappy()), false, "exceeds"},
		{"xerial truncated header", withCodec(semantics.CompressionSnappy, xerial()[:12]), false, "xerial header truncated"},
		{"xerial chunk overruns", withCodec(semantics.CompressionSnappy, xerial([]byte{1, 2, 3})[:21]), false, "claims 3 bytes"},
		{"xerial chunk garbage", withCodec(semantics.CompressionSnappy, xerial([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})), false, "xerial chunk"},
		{"xerial bomb", withCodec(semantics.CompressionSnappy, xerial(hugeSnappy())), false, "exceeds"},
		{"lz4 garbage", withCodec(semantics.CompressionLZ4, []byte("not an lz4 frame")), false, "lz4 records"},
		{"lz4 truncated", withCodec(semantics.CompressionLZ4, compressWith(t, semantics.CompressionLZ4, records)[:15]), false, "lz4 records"},
		{"zstd garbage", withCodec(semantics.CompressionZstd, []byte("not a zstd frame")), false, "zstd records"},
		{"zstd bomb", withCodec(semantics.CompressionZstd, hugeZstd()), false, "exceeds"},
		{"zstd stream bomb", withCodec(semantics.CompressionZstd, hugeZstdStream()), false, "zstd records"},
		{"gzip bomb", withCodec(semantics.CompressionGzip, hugeGzip()), false, "exceeds"},
		{"lz4 bomb", withCodec(semantics.CompressionLZ4, hugeLZ4()), false, "exceeds"},
		{"compressed garbage records", withCodec(semantics.CompressionZstd, compressWith(t, semantics.CompressionZstd, bytes.Repeat([]byte{0xff}, 40))), false, "record 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, herr := semantics.ParseBatchHeader(tc.batch)
			if tc.header && herr == nil {
				t.Fatal("ParseBatchHeader accepted it")
			}
			if !tc.header && herr != nil {
				t.Fatalf("ParseBatchHeader: %v", herr)
			}
			dst := []semantics.Record{{Topic: "keep"}}
			got, err := semantics.DecodeRecords(dst, tc.batch, "t", 0)
			if err == nil {
				t.Fatal("DecodeRecords accepted it")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, semantics.ErrCorruptMessage) {
				t.Fatalf("error %v does not wrap ErrCorruptMessage", err)
			}
			if !strings.HasPrefix(err.Error(), "record batch: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
			if len(got) != 1 || got[0].Topic != "keep" {
				t.Fatalf("dst changed on error: %+v", got)
			}
		})
	}
}

// withOneRecord replaces the records of a valid 2-record batch with one hand-made
// record (fields, then raw bytes), making NumRecords 1.
func withOneRecord(valid, fields, raw []byte) []byte {
	b := bytes.Clone(valid)
	binary.BigEndian.PutUint32(b[57:], 1)
	binary.BigEndian.PutUint32(b[23:], 0)
	return replaceRecords(b, append(bytes.Clone(fields), raw...))
}

// compressWith compresses src as a batch with codec c would, by building one from
// the records section of an uncompressed batch.
func compressWith(t *testing.T, c semantics.Compression, src []byte) []byte {
	t.Helper()
	var out []byte
	switch c {
	case semantics.CompressionGzip:
		var buf bytes.Buffer
		w := stdgzip.NewWriter(&buf)
		w.Write(src)
		w.Close()
		out = buf.Bytes()
	case semantics.CompressionLZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		w.Write(src)
		w.Close()
		out = buf.Bytes()
	case semantics.CompressionZstd:
		e, _ := zstd.NewWriter(nil)
		out = e.EncodeAll(src, nil)
		e.Close()
	default:
		t.Fatalf("compressWith %s", c)
	}
	return out
}

func TestXerialSnappy(t *testing.T) {
	t.Parallel()
	recs := manyRecords(500)
	plain := build(t, semantics.CompressionNone, semantics.NoProducer, recs)
	records := plain[semantics.BatchHeaderSize:]
	tests := []struct {
		name  string
		chunk int
	}{
		{"one chunk", len(records)},
		{"32 KiB chunks", 32 << 10},
		{"tiny chunks", 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The Java client's xerial SnappyOutputStream framing: magic, version 1,
			// compatible version 1, then [int32 length][snappy block] chunks.
			framed := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}
			framed = binary.BigEndian.AppendUint32(framed, 1)
			framed = binary.BigEndian.AppendUint32(framed, 1)
			for rest := records; len(rest) > 0; {
				n := min(tc.chunk, len(rest))
				block := s2.EncodeSnappy(nil, rest[:n])
				framed = binary.BigEndian.AppendUint32(framed, uint32(len(block)))
				framed = append(framed, block...)
				rest = rest[n:]
			}
			b := bytes.Clone(plain)
			binary.BigEndian.PutUint16(b[21:], uint16(semantics.CompressionSnappy))
			b = replaceRecords(b, framed)
			got, err := semantics.DecodeRecords(nil, b, "t", 0)
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, got, recs, "t", 0, 0)
		})
	}
}

func TestCompressionNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    semantics.Compression
		wantErr bool
	}{
		{"none", semantics.CompressionNone, false},
		{"gzip", semantics.CompressionGzip, false},
		{"Snappy", semantics.CompressionSnappy, false},
		{"LZ4", semantics.CompressionLZ4, false},
		{"zStd", semantics.CompressionZstd, false},
		{"", 0, true},
		{"brotli", 0, true},
		{"zstd ", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := semantics.ParseCompression(tc.in)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) || !strings.Contains(err.Error(), "none, gzip, snappy, lz4, zstd") {
					t.Fatalf("ParseCompression(%q) error %v: want one naming the input and the valid names", tc.in, err)
				}
				if !errors.Is(err, semantics.ErrInvalidConfig) {
					t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseCompression(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if !strings.EqualFold(got.String(), tc.in) {
				t.Fatalf("String() = %q, want %q", got.String(), strings.ToLower(tc.in))
			}
		})
	}
	if got := semantics.Compression(9).String(); got != "Compression(9)" {
		t.Fatalf("unknown codec String() = %q", got)
	}
}

// TestConcurrentCodecs exercises the pooled codecs from many goroutines (run with -race).
func TestConcurrentCodecs(t *testing.T) {
	t.Parallel()
	recs := manyRecords(200)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			var bb semantics.BatchBuilder
			var out []byte
			var dec []semantics.Record
			for i := range 20 {
				c := allCompressions[(g+i)%len(allCompressions)]
				bb.Reset()
				for j := range recs {
					bb.Append(&recs[j])
				}
				var err error
				if out, err = bb.Build(out[:0], semantics.NoProducer, c); err != nil {
					t.Error(err)
					return
				}
				if dec, err = semantics.DecodeRecords(dec[:0], out, "t", 0); err != nil {
					t.Error(err)
					return
				}
				if len(dec) != len(recs) || !bytes.Equal(dec[len(dec)-1].Value, recs[len(recs)-1].Value) {
					t.Errorf("%s: decoded %d records", c, len(dec))
					return
				}
			}
		})
	}
	wg.Wait()
}

// benchValues are 100-byte values with the mild redundancy of typical JSON events.
func benchValues(n int) [][]byte {
	vals := make([][]byte, n)
	for i := range vals {
		v := fmt.Appendf(nil, `{"id":%d,"user":"user-%04d","amount":%d.%02d,"status":"ok","pad":"`, 1_000_000+i, i*7919%10000, i*31%1000, i%100)
		for j := 0; len(v) < 98; j++ {
			v = append(v, "abcdefghijklmnopqrstuvwxyz0123456789"[(i*13+j*7)%36])
		}
		vals[i] = append(v, `"}`...)
	}
	return vals
}

func BenchmarkBatchBuilder(b *testing.B) {
	const n = 1000
	vals := benchValues(n)
	recs := make([]semantics.Record, n)
	for i := range recs {
		recs[i] = semantics.Record{Value: vals[i], Timestamp: t0.Add(time.Duration(i) * time.Microsecond)}
	}
	for _, c := range allCompressions {
		b.Run(c.String(), func(b *testing.B) {
			var bb semantics.BatchBuilder
			var out []byte
			b.SetBytes(n * 100)
			b.ReportAllocs()
			for b.Loop() {
				bb.Reset()
				for i := range recs {
					bb.Append(&recs[i])
				}
				var err error
				if out, err = bb.Build(out[:0], semantics.NoProducer, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out))/float64(bb.Size()), "ratio")
		})
	}
}

func BenchmarkDecodeRecords(b *testing.B) {
	const n = 1000
	vals := benchValues(n)
	var bb semantics.BatchBuilder
	for i := range vals {
		bb.Append(&semantics.Record{Value: vals[i], Timestamp: t0})
	}
	for _, c := range allCompressions {
		b.Run(c.String(), func(b *testing.B) {
			batch, err := bb.Build(nil, semantics.NoProducer, c)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]semantics.Record, 0, n)
			b.SetBytes(n * 100)
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = semantics.DecodeRecords(dst[:0], batch, "t", 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
