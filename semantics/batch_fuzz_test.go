package semantics_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

// fuzzSeeds are valid batches of every codec, plus the golden vector.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	golden, err := hex.DecodeString(goldenHex)
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{golden}
	recs := manyRecords(4)
	recs[1].Key, recs[2].Value = nil, nil
	recs[3].Headers = []semantics.Header{{Key: "a", Value: nil}, {Key: "a", Value: []byte{}}}
	for _, c := range allCompressions {
		seeds = append(seeds, build(f, c, semantics.NoProducer, recs[:1]), build(f, c, semantics.ProducerInfo{ID: 7, Epoch: 1, BaseSequence: 3}, recs))
	}
	return seeds
}

func FuzzParseBatchHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := semantics.ParseBatchHeader(b)
		if err != nil {
			return
		}
		if int(h.Length)+12 != len(b) || h.NumRecords < 1 || int64(h.NumRecords) != int64(h.LastOffsetDelta)+1 {
			t.Fatalf("accepted inconsistent header %+v for %d bytes", h, len(b))
		}
		if h.Compression() > semantics.CompressionZstd || h.Compression() < semantics.CompressionNone {
			t.Fatalf("accepted codec %d", h.Compression())
		}
		c := bytes.Clone(b)
		semantics.SetBaseOffset(c, h.BaseOffset+1000)
		if h2, err := semantics.ParseBatchHeader(c); err != nil || h2.BaseOffset != h.BaseOffset+1000 {
			t.Fatalf("after SetBaseOffset: %+v, %v", h2, err)
		}
	})
}

// FuzzDecodeRecords fixes the length and CRC of each input before decoding, so that
// mutations reach the decompressors and the record decoder instead of stopping at
// the CRC check.
func FuzzDecodeRecords(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b := bytes.Clone(in)
		if len(b) >= semantics.BatchHeaderSize {
			fixCRC(fixLength(b))
		}
		recs, err := semantics.DecodeRecords(nil, b, "fuzz", 2)
		if err != nil {
			if len(recs) != 0 {
				t.Fatalf("error %v with %d records", err, len(recs))
			}
			return
		}
		h, err := semantics.ParseBatchHeader(b)
		if err != nil {
			t.Fatalf("decoded a batch whose header fails: %v", err)
		}
		if len(recs) != int(h.NumRecords) {
			t.Fatalf("decoded %d records, header says %d", len(recs), h.NumRecords)
		}
		// Whatever decoded must encode and decode back to the same records.
		var bb semantics.BatchBuilder
		for i := range recs {
			r := &recs[i]
			if r.Topic != "fuzz" || r.Partition != 2 || r.Offset != h.BaseOffset+int64(i) {
				t.Fatalf("record %d at %s/%d@%d, want fuzz/2@%d", i, r.Topic, r.Partition, r.Offset, h.BaseOffset+int64(i))
			}
			if r.Timestamp.IsZero() {
				continue // a zero time would be re-stamped; ms -62135596800000 is legal input
			}
			bb.Append(r)
		}
		if bb.NumRecords() != len(recs) {
			return
		}
		again, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
		if err != nil {
			t.Fatal(err)
		}
		semantics.SetBaseOffset(again, h.BaseOffset)
		got, err := semantics.DecodeRecords(nil, again, "fuzz", 2)
		if err != nil {
			t.Fatalf("re-encoded batch: %v", err)
		}
		checkRecords(t, got, recs, "fuzz", 2, h.BaseOffset)
	})
}
