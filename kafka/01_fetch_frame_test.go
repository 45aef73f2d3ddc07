package kafka

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A fetch answer framed in pieces, its stored batches written as they are, is
// byte for byte the answer kmsg frames with the batches copied in, at every
// version the listener serves: records fields of every size (so their length
// prefixes take one to four bytes), empty ones, errors, aborted transactions and
// several topics.
func TestFetchAnswerFramedInPieces(t *testing.T) {
	t.Parallel()
	a := apis[kmsg.Fetch.Int16()]
	sizes := []int{61, 127, 200, 16383, 16384, 70000, 2100000}
	for v := a.min; v <= a.max; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(v), 2))
			build := func() (*kmsg.FetchResponse, [][][]byte) {
				resp := kmsg.NewPtrFetchResponse()
				var stored [][][]byte
				for ti := range 3 {
					rt := kmsg.NewFetchResponseTopic()
					rt.Topic = fmt.Sprintf("topic-%d", ti)
					rt.TopicID[0] = byte(ti + 1)
					for pi := range 4 {
						rp := kmsg.NewFetchResponseTopicPartition()
						rp.Partition, rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = int32(pi), 1000, 900, 3
						rp.PreferredReadReplica = -1
						var batches [][]byte
						switch (ti*4 + pi) % 4 {
						case 0:
							rp.ErrorCode = 1
						case 1:
							at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
							at.ProducerID, at.FirstOffset = 7, 5
							rp.AbortedTransactions = append(rp.AbortedTransactions, at)
							fallthrough
						default:
							for range 1 + rng.IntN(3) {
								b := make([]byte, sizes[rng.IntN(len(sizes))])
								for i := range b {
									b[i] = byte(i*7 + int(v))
								}
								batches = append(batches, b)
							}
						}
						stored = append(stored, batches)
						rt.Partitions = append(rt.Partitions, rp)
					}
					resp.Topics = append(resp.Topics, rt)
				}
				return resp, stored
			}
			resp, stored := build()
			h := header{key: kmsg.Fetch.Int16(), version: v, correlationID: 42}
			ans := newFetchAnswer(resp)
			k := 0
			for ti := range resp.Topics {
				for pi := range resp.Topics[ti].Partitions {
					resp.Topics[ti].Partitions[pi].RecordBatches = ans.field(stored[k])
					k++
				}
			}
			parts := frameParts(h, ans)
			if len(parts) < 2 {
				t.Fatalf("framed in %d piece(s): the batches were copied", len(parts))
			}
			// Every stored batch is itself a piece, in order: written from the
			// bytes read from the store, not from a copy of them.
			at := 0
			for k, batches := range stored {
				for j, b := range batches {
					for at < len(parts) && !sameBytes(parts[at], b) {
						at++
					}
					if at == len(parts) {
						t.Fatalf("partition %d's batch %d (%d bytes) is not a piece of the answer: it was copied", k, j, len(b))
					}
					at++
				}
			}
			k = 0
			for ti := range resp.Topics {
				for pi := range resp.Topics[ti].Partitions {
					resp.Topics[ti].Partitions[pi].RecordBatches = append([]byte{}, bytes.Join(stored[k], nil)...)
					k++
				}
			}
			want := frame(h, resp)
			if got := bytes.Join(parts, nil); !bytes.Equal(got, want) {
				t.Fatalf("framed in pieces: %d bytes, differing from kmsg's %d bytes", len(got), len(want))
			}
		})
	}
}

// An answer holding its marker's token ahead of the records field (a topic name
// cannot, but the fallback must be right whatever happens) is framed with the
// batches copied in.
func TestFetchAnswerFallback(t *testing.T) {
	t.Parallel()
	resp := kmsg.NewPtrFetchResponse()
	ans := newFetchAnswer(resp)
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = string(ans.token[:]) + "\x00\x00\x00\x00"
	rp := kmsg.NewFetchResponseTopicPartition()
	batch := []byte("a stored batch")
	rp.RecordBatches = ans.field([][]byte{batch})
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	h := header{key: kmsg.Fetch.Int16(), version: 11, correlationID: 1}
	parts := frameParts(h, ans)
	resp.Topics[0].Partitions[0].RecordBatches = batch
	if want := frame(h, resp); len(parts) != 1 || !bytes.Equal(parts[0], want) {
		t.Fatalf("fallback framed %d piece(s), not kmsg's answer with the batch copied in", len(parts))
	}
}

// sameBytes reports whether a and b are the same bytes in memory, not only
// equal ones.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}
