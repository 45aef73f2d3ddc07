package kafka

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// maxFetchWait bounds a fetch's long poll, whatever the client asks.
const maxFetchWait = 30 * time.Second

// codeFetchSessionIDNotFound is Kafka's FETCH_SESSION_ID_NOT_FOUND.
const codeFetchSessionIDNotFound int16 = 70

// Fetch returns stored batches as stored. Fetch sessions (KIP-227) are declined:
// every answer has session id 0, so clients send full fetch requests, which Kafka
// allows. A fetch with less than min bytes waits up to max wait for an append to
// any of its partitions (a long poll woken by the appends, not a sleep loop).
func handleFetch(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.FetchRequest)
	if req.Version < 13 {
		return func() kmsg.Response { return fetch(ctx, c, req) }
	}
	// From v13 topics are named by id: look the names up, answer the fetch by
	// name, and name the topics by id again in the answer. An unknown id is
	// UNKNOWN_TOPIC_ID for each of its partitions.
	return func() kmsg.Response {
		var unknown []kmsg.FetchResponseTopic
		known := req.Topics[:0:0]
		for _, t := range req.Topics {
			name, err := c.b.TopicByID(ctx, t.TopicID)
			if err != nil {
				rt := kmsg.NewFetchResponseTopic()
				rt.TopicID = t.TopicID
				for _, p := range t.Partitions {
					rp := kmsg.NewFetchResponseTopicPartition()
					rp.Partition, rp.ErrorCode, rp.PreferredReadReplica, rp.RecordBatches = p.Partition, codeUnknownTopicID, -1, []byte{}
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
					rt.Partitions = append(rt.Partitions, rp)
				}
				unknown = append(unknown, rt)
				continue
			}
			t.Topic = name
			known = append(known, t)
		}
		byName := *req
		byName.Topics = known
		resp := fetch(ctx, c, &byName)
		for i := range resp.Topics {
			for _, t := range known {
				if t.Topic == resp.Topics[i].Topic {
					resp.Topics[i].TopicID = t.TopicID
				}
			}
		}
		resp.Topics = append(resp.Topics, unknown...)
		return resp
	}
}

// fetch answers a fetch whose topics are named.
func fetch(ctx context.Context, c *conn, req *kmsg.FetchRequest) *fetchAnswer {
	resp := newFetchAnswer(req.ResponseKind().(*kmsg.FetchResponse))
	if req.SessionID != 0 {
		// qxd never gives a session id, so none can be asked for.
		resp.ErrorCode = codeFetchSessionIDNotFound
		return resp
	}
	// A client's current leader epoch is checked once, before reading.
	var fenced map[semantics.TopicPartition]int16
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if ec := checkLeaderEpoch(ctx, c.b, t.Topic, p.Partition, p.CurrentLeaderEpoch); ec != 0 {
				if fenced == nil {
					fenced = map[semantics.TopicPartition]int16{}
				}
				fenced[semantics.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = ec
			}
		}
	}
	if fenced != nil {
		for _, t := range req.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.PreferredReadReplica, rp.RecordBatches = p.Partition, -1, []byte{}
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				rp.ErrorCode = fenced[semantics.TopicPartition{Topic: t.Topic, Partition: p.Partition}]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait)
	deadline := time.Now().Add(wait)
	var watch Watch
	defer func() {
		if watch != nil {
			watch.Close()
		}
	}()
	for {
		resp.reset()
		total, failed := fetchOnce(ctx, c, req, resp)
		if total >= int(req.MinBytes) || failed || wait <= 0 || ctx.Err() != nil {
			return resp
		}
		left := time.Until(deadline)
		if left <= 0 {
			return resp
		}
		if watch == nil {
			// Watch first, then read again: an append between the read above
			// and the watch is seen by the second read.
			var parts []semantics.TopicPartition
			for _, t := range req.Topics {
				for _, p := range t.Partitions {
					parts = append(parts, semantics.TopicPartition{Topic: t.Topic, Partition: p.Partition})
				}
			}
			w, err := c.b.Watch(ctx, parts)
			if err != nil {
				c.log.Debug("kafka fetch could not watch for appends", "err", err)
				return resp
			}
			watch = w
			continue
		}
		t := time.NewTimer(left)
		select {
		case <-watch.C():
			t.Stop()
			// The append is seen when it is published, a moment before it is
			// stored: read until it is there, briefly.
			for _, d := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond} {
				time.Sleep(d)
				resp.reset()
				total, failed = fetchOnce(ctx, c, req, resp)
				if total > 0 || failed {
					break
				}
			}
			if total >= int(req.MinBytes) || failed {
				return resp
			}
		case <-t.C:
			resp.reset()
			fetchOnce(ctx, c, req, resp)
			return resp
		case <-ctx.Done():
			t.Stop()
			return resp
		}
	}
}

// fetchParallel bounds the partitions of one fetch read at once.
const fetchParallel = 8

// partRead is one partition's read within a fetch.
type partRead struct {
	r   IsolatedRead
	err error
}

// fetchOnce reads every partition of req into resp and returns the bytes of
// batches it holds and whether a partition failed (an error is answered at once).
// The partitions are read at once (at most fetchParallel together), each up to
// its own limit; the fetch's limit is applied to them afterwards, in request
// order: the first batch goes out whatever its size, so a batch larger than the
// limits can be read, and past it the batches that would pass the limit are left
// for the next fetch.
func fetchOnce(ctx context.Context, c *conn, req *kmsg.FetchRequest, resp *fetchAnswer) (int, bool) {
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 52428800 // Kafka's fetch.max.bytes default
	}
	n := 0
	for _, t := range req.Topics {
		n += len(t.Partitions)
	}
	reads := make([]partRead, n)
	read := func(i int, topic string, p kmsg.FetchRequestTopicPartition) {
		budget := min(int(p.PartitionMaxBytes), maxBytes)
		reads[i].r, reads[i].err = c.readIsolated(ctx, req.IsolationLevel, topic, p.Partition, p.FetchOffset, max(budget, 1))
	}
	if n == 1 {
		read(0, req.Topics[0].Topic, req.Topics[0].Partitions[0])
	} else if n > 1 {
		var wg sync.WaitGroup
		slots := make(chan struct{}, fetchParallel)
		i := 0
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				slots <- struct{}{}
				wg.Add(1)
				go func(i int, topic string, p kmsg.FetchRequestTopicPartition) {
					defer func() { <-slots; wg.Done() }()
					read(i, topic, p)
				}(i, t.Topic, p)
				i++
			}
		}
		wg.Wait()
	}
	total := 0
	failed := false
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			r, err := reads[i].r, reads[i].err
			i++
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.PreferredReadReplica = -1
			// Records are never null: Kafka sends an empty set, and librdkafka
			// refuses a null one ("invalid MessageSetSize -1") and stalls.
			rp.RecordBatches = []byte{}
			if err != nil {
				rp.ErrorCode = code(err)
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				if errors.Is(err, semantics.ErrOffsetOutOfRange) {
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = r.HighWatermark, r.HighWatermark, r.LogStart
				}
				failed = true
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = r.HighWatermark, r.LastStableOffset, r.LogStart
			for _, a := range r.Aborted {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
			var batches [][]byte
			batches, total = takeBatches(r.Batches, total, int(p.PartitionMaxBytes), maxBytes)
			rp.RecordBatches = resp.field(batches)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return total, failed
}

// takeBatches returns the batches of one partition that a fetch holding total
// bytes of batches takes under the partition's limit partMax and the fetch's
// maxBytes, and the fetch's new total: the batches while they fit, and the first
// one whatever its size when the fetch holds none yet (as Kafka's brokers
// answer, KIP-74).
func takeBatches(batches [][]byte, total, partMax, maxBytes int) ([][]byte, int) {
	n := 0
	for i, b := range batches {
		if (n+len(b) > partMax || total+n+len(b) > maxBytes) && total+n > 0 {
			return batches[:i], total + n
		}
		n += len(b)
	}
	return batches, total + n
}
