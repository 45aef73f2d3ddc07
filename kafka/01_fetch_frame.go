package kafka

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A fetch answer carries the stored batches as they were read, without copying
// them into the response: each partition's records field holds a marker while
// kmsg encodes the rest of the answer, and framing then splits the encoded
// answer at the markers, writes the field's real length in place of the
// marker's, and lists the stored batches themselves between the pieces, for the
// connection to write as they are (one writev).

// markerLen is a records marker's size: a token drawn for each answer, then the
// index of the partition's batches in fetchAnswer.records.
const (
	tokenLen  = 12
	markerLen = tokenLen + 4
)

// fetchAnswer is a Fetch response whose records fields are markers for
// records[i], the stored batches of one partition.
type fetchAnswer struct {
	*kmsg.FetchResponse
	token   [tokenLen]byte
	records [][][]byte
	// releases give back the memory of the reads the answer was made of
	// (ReadResult.Release): once it is written, or when it is reset.
	releases []func()
}

func newFetchAnswer(resp *kmsg.FetchResponse) *fetchAnswer {
	a := &fetchAnswer{FetchResponse: resp}
	binary.LittleEndian.PutUint64(a.token[:], rand.Uint64())
	binary.LittleEndian.PutUint32(a.token[8:], rand.Uint32())
	return a
}

// reset forgets the batches of an earlier read.
func (a *fetchAnswer) reset() {
	a.Topics = a.Topics[:0]
	a.records = a.records[:0]
	a.release()
}

// release gives back the memory of the reads the answer holds; the answer no
// longer uses their batches (written, or reset).
func (a *fetchAnswer) release() {
	for _, r := range a.releases {
		r()
	}
	a.releases = a.releases[:0]
}

// field returns the records field of a partition answering batches: a marker
// when there are any, or an empty set (never null: librdkafka refuses a null
// one).
func (a *fetchAnswer) field(batches [][]byte) []byte {
	if len(batches) == 0 {
		return []byte{}
	}
	m := make([]byte, markerLen)
	copy(m, a.token[:])
	binary.BigEndian.PutUint32(m[tokenLen:], uint32(len(a.records)))
	a.records = append(a.records, batches)
	return m
}

// answered is resp as observers see it.
func answered(resp kmsg.Response) kmsg.Response {
	if a, ok := resp.(*fetchAnswer); ok {
		return a.FetchResponse
	}
	return resp
}

// frameParts frames resp as frame does, in pieces to write in order: a fetch
// answer's stored batches are pieces of their own.
func frameParts(h header, resp kmsg.Response) [][]byte {
	a, ok := resp.(*fetchAnswer)
	if !ok {
		return [][]byte{frame(h, resp)}
	}
	if len(a.records) == 0 {
		return [][]byte{frame(h, a.FetchResponse)}
	}
	b := frame(h, a.FetchResponse)
	if parts, ok := a.splice(b, a.FetchResponse.IsFlexible()); ok {
		return parts
	}
	// A marker was not where kmsg writes a records field (it cannot be, but the
	// answer must be right whatever happens): copy the batches in.
	a.fill()
	return [][]byte{frame(h, a.FetchResponse)}
}

// splice splits the framed answer b at its markers. The records field is
// nullable bytes, a compact one (uvarint length+1) in flexible versions.
func (a *fetchAnswer) splice(b []byte, flexible bool) ([][]byte, bool) {
	parts := make([][]byte, 0, 2*len(a.records)+1)
	size := len(b) - 4
	at := 0
	for k, batches := range a.records {
		i := bytes.Index(b[at:], a.token[:])
		if i < 0 {
			return nil, false
		}
		i += at
		if i+markerLen > len(b) || binary.BigEndian.Uint32(b[i+tokenLen:]) != uint32(k) {
			return nil, false
		}
		n := 0
		for _, batch := range batches {
			n += len(batch)
		}
		var head int
		var length []byte
		if flexible {
			head = 1
			if i < head || b[i-1] != markerLen+1 {
				return nil, false
			}
			length = binary.AppendUvarint(nil, uint64(n)+1)
		} else {
			head = 4
			if i < head || binary.BigEndian.Uint32(b[i-4:]) != markerLen {
				return nil, false
			}
			length = binary.BigEndian.AppendUint32(nil, uint32(n))
		}
		parts = append(parts, b[at:i-head], length)
		parts = append(parts, batches...)
		size += len(length) - head + n - markerLen
		at = i + markerLen
	}
	parts = append(parts, b[at:])
	binary.BigEndian.PutUint32(b, uint32(size))
	return parts, true
}

// fill puts the batches in place of the markers.
func (a *fetchAnswer) fill() {
	for ti := range a.Topics {
		for pi := range a.Topics[ti].Partitions {
			rp := &a.Topics[ti].Partitions[pi]
			if len(rp.RecordBatches) != markerLen || !bytes.Equal(rp.RecordBatches[:tokenLen], a.token[:]) {
				continue
			}
			k := binary.BigEndian.Uint32(rp.RecordBatches[tokenLen:])
			rp.RecordBatches = bytes.Join(a.records[k], nil)
		}
	}
	a.records = nil
}
