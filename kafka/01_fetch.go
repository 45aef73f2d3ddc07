package kafka

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// maxFetchWait bounds a fetch's long poll, whatever the client asks.
const maxFetchWait = 30 * time.Second

// Fetch returns stored batches as stored, within fetch sessions (KIP-227, see
// fetch_session.go) when the client asks for one. A fetch with less than min
// bytes waits up to max wait for an append to any of its partitions (a long poll
// woken by the appends, not a sleep loop), incremental fetches included.
func handleFetch(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.FetchRequest)
	return func() kmsg.Response { return fetchInSession(ctx, c, req) }
}

// fetchInSession answers req as a sessionless, full or incremental fetch. A
// session belongs to the principal that made it (the SASL user; everyone on a
// listener without Auth): another's id is not found. Rights are checked on
// every read, so a session never reads what its principal may not.
func fetchInSession(ctx context.Context, c *conn, req *kmsg.FetchRequest) *fetchAnswer {
	usesIDs := req.Version >= 13
	principal := c.user
	parts := requestParts(req)
	if req.Version < 7 || req.SessionEpoch == sessionEpochInitial || req.SessionEpoch == sessionEpochFinal {
		if req.Version >= 7 && req.SessionID != 0 {
			// A full fetch ends the session it names; epoch 0 starts another.
			c.l.sessions.remove(req.SessionID, principal)
		}
		resp := fetchParts(ctx, c, req, parts)
		if req.Version >= 7 && req.SessionEpoch == sessionEpochInitial && resp.ErrorCode == 0 {
			byKey := make(map[sessionKey]*sessionPart, len(parts))
			for _, p := range parts {
				byKey[p.key] = p
			}
			for ti := range resp.Topics {
				t := &resp.Topics[ti]
				for pi := range t.Partitions {
					if p, ok := byKey[answerKey(usesIDs, t, t.Partitions[pi].Partition)]; ok {
						p.tell(&t.Partitions[pi])
					}
				}
			}
			resp.SessionID = c.l.sessions.create(principal, usesIDs, parts)
		}
		return resp
	}
	var forget []sessionKey
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			if usesIDs {
				forget = append(forget, sessionKey{id: ft.TopicID, partition: p})
			} else {
				forget = append(forget, sessionKey{topic: ft.Topic, partition: p})
			}
		}
	}
	s, read, code := c.l.sessions.update(req.SessionID, req.SessionEpoch, principal, usesIDs, parts, forget)
	if code != 0 {
		resp := newFetchAnswer(req.ResponseKind().(*kmsg.FetchResponse))
		resp.ErrorCode = code
		return resp
	}
	if s == nil {
		// The fetch forgot every partition: the session is closed, and the
		// fetch answered as a sessionless one, as Kafka does.
		return fetchParts(ctx, c, req, parts)
	}
	ptrs := make([]*sessionPart, len(read))
	for i := range read {
		ptrs[i] = &read[i]
	}
	resp := fetchParts(ctx, c, req, ptrs)
	resp.SessionID = s.id
	if resp.ErrorCode != 0 {
		return resp
	}
	if code := s.answered(req.SessionEpoch, resp.FetchResponse, func(t *kmsg.FetchResponseTopic, p int32) sessionKey {
		return answerKey(usesIDs, t, p)
	}); code != 0 {
		resp.reset()
		resp.ErrorCode = code
	}
	return resp
}

// requestParts are the partitions req names, as a session keys them.
func requestParts(req *kmsg.FetchRequest) []*sessionPart {
	var parts []*sessionPart
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			k := sessionKey{topic: t.Topic, partition: p.Partition}
			if req.Version >= 13 {
				k = sessionKey{id: t.TopicID, partition: p.Partition}
			}
			parts = append(parts, &sessionPart{key: k, req: p, highWatermark: -1, lastStable: -1, logStart: -1})
		}
	}
	return parts
}

// answerKey names an answered partition as a session does.
func answerKey(usesIDs bool, t *kmsg.FetchResponseTopic, p int32) sessionKey {
	if usesIDs {
		return sessionKey{id: t.TopicID, partition: p}
	}
	return sessionKey{topic: t.Topic, partition: p}
}

// fetchParts answers a fetch of parts with req's other parameters. From v13
// topics are named by id: the names are looked up (on every fetch, so that a
// topic deleted and created again is never read under the old one's id), the
// fetch answered by name, and the topics named by id again in the answer. An
// unknown id is UNKNOWN_TOPIC_ID for each of its partitions.
func fetchParts(ctx context.Context, c *conn, req *kmsg.FetchRequest, parts []*sessionPart) *fetchAnswer {
	byName := *req
	byName.Topics = nil
	var unknown []kmsg.FetchResponseTopic
	var names map[[16]byte]string
	var ids map[string][16]byte
	if req.Version >= 13 {
		names, ids = map[[16]byte]string{}, map[string][16]byte{}
	}
	for _, p := range parts {
		topic := p.key.topic
		if names != nil {
			name, ok := names[p.key.id]
			if !ok {
				var err error
				if name, err = c.b.TopicByID(ctx, p.key.id); err != nil {
					name = ""
				}
				names[p.key.id] = name
				if name != "" {
					ids[name] = p.key.id
				}
			}
			if name == "" {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.PreferredReadReplica, rp.RecordBatches = p.key.partition, codeUnknownTopicID, -1, []byte{}
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				if n := len(unknown); n > 0 && unknown[n-1].TopicID == p.key.id {
					unknown[n-1].Partitions = append(unknown[n-1].Partitions, rp)
				} else {
					rt := kmsg.NewFetchResponseTopic()
					rt.TopicID = p.key.id
					rt.Partitions = append(rt.Partitions, rp)
					unknown = append(unknown, rt)
				}
				continue
			}
			topic = name
		}
		// Consecutive partitions of a topic go together, as Kafka answers.
		if n := len(byName.Topics); n == 0 || byName.Topics[n-1].Topic != topic {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = topic
			byName.Topics = append(byName.Topics, ft)
		}
		ft := &byName.Topics[len(byName.Topics)-1]
		ft.Partitions = append(ft.Partitions, p.req)
	}
	if len(unknown) > 0 {
		byName.MaxWaitMillis = 0 // an error is answered at once
	}
	resp := fetch(ctx, c, &byName)
	if ids != nil {
		for i := range resp.Topics {
			resp.Topics[i].TopicID = ids[resp.Topics[i].Topic]
		}
		resp.Topics = append(resp.Topics, unknown...)
	}
	return resp
}

// fetch answers a fetch whose topics are named.
func fetch(ctx context.Context, c *conn, req *kmsg.FetchRequest) *fetchAnswer {
	resp := newFetchAnswer(req.ResponseKind().(*kmsg.FetchResponse))
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

// fetchInlineRead is the longest a partition's read of a fetch may take for the
// next one to be read in the fetch's own goroutine rather than on one of its own
// (fetchOnce): a read the read ahead answers takes some 10 µs.
const fetchInlineRead = 100 * time.Microsecond

// partRead is one partition's read within a fetch.
type partRead struct {
	r   IsolatedRead
	err error
	// more is what the partition read past its share of the node's bound, of
	// what other partitions left of it (readOn).
	more int
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
	// The node's own bound (Config.FetchMaxBytes), shared among the partitions.
	share := max(c.l.cfg.FetchMaxBytes/max(n, 1), 1)
	reads := make([]partRead, n)
	read := func(i int, topic string, p kmsg.FetchRequestTopicPartition) {
		budget := min(int(p.PartitionMaxBytes), maxBytes, share)
		reads[i].r, reads[i].err = c.readIsolated(ctx, req.IsolationLevel, topic, p.Partition, p.FetchOffset, max(budget, 1))
	}
	if n == 1 {
		read(0, req.Topics[0].Topic, req.Topics[0].Partitions[0])
	} else if n > 1 {
		// A partition whose batches were read ahead for this fetch is answered
		// in microseconds: such reads are made here, one after another, as long
		// as each stays that quick; from the first slower one on (batches to
		// load, a read through NATS) the rest are read at once.
		var wg sync.WaitGroup
		slots := make(chan struct{}, fetchParallel)
		inline := true
		i := 0
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if inline {
					start := time.Now()
					read(i, t.Topic, p)
					inline = time.Since(start) < fetchInlineRead
					i++
					continue
				}
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
		readOn(ctx, c, req, reads, share, maxBytes)
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
			if r.Release != nil {
				resp.releases = append(resp.releases, r.Release)
			}
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.PreferredReadReplica = -1
			// Records are never null: Kafka sends an empty set, and librdkafka
			// refuses a null one ("invalid MessageSetSize -1") and stalls.
			rp.RecordBatches = []byte{}
			if err != nil {
				rp.ErrorCode = fetchCode(err)
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
			batches, total = takeBatches(r.Batches, total, int(p.PartitionMaxBytes), maxBytes, share+reads[i-1].more)
			rp.RecordBatches = resp.field(batches)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return total, failed
}

// readOn gives what the partitions of a fetch left of the node's bound to those
// with more to read: each reads on from where it stopped, a share at a time
// (the read its read ahead holds), while the bound and the client's limits allow, so a fetch whose records are in a few of its
// partitions still carries up to the bound.
func readOn(ctx context.Context, c *conn, req *kmsg.FetchRequest, reads []partRead, share, maxBytes int) {
	bound := min(c.l.cfg.FetchMaxBytes, maxBytes)
	used := 0
	for _, r := range reads {
		used += batchesSize(r.r.Batches)
	}
	for more := true; more && used+share <= bound; {
		more = false
		i := 0
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				r := &reads[i]
				i++
				got := batchesSize(r.r.Batches)
				// A share at a time, the last less if the partition's limit leaves
				// less.
				budget := min(share, int(p.PartitionMaxBytes)-got)
				if r.err != nil || len(r.r.Batches) == 0 || budget <= 0 || used+share > bound {
					continue
				}
				last, err := semantics.PeekBatchHeader(r.r.Batches[len(r.r.Batches)-1])
				if err != nil {
					continue
				}
				end := r.r.HighWatermark
				if req.IsolationLevel == 1 {
					end = r.r.LastStableOffset
				}
				next := last.LastOffset() + 1
				if next >= end {
					continue
				}
				nr, err := c.readIsolated(ctx, req.IsolationLevel, t.Topic, p.Partition, next, budget)
				if err != nil || len(nr.Batches) == 0 {
					if nr.Release != nil {
						nr.Release()
					}
					continue
				}
				n := batchesSize(nr.Batches)
				r.more = max(got+n-share, 0)
				used += n
				more = true
				r.r.Batches = append(r.r.Batches, nr.Batches...)
				r.r.HighWatermark, r.r.LastStableOffset, r.r.LogStart = nr.HighWatermark, nr.LastStableOffset, nr.LogStart
				for _, a := range nr.Aborted {
					if !slices.Contains(r.r.Aborted, a) {
						r.r.Aborted = append(r.r.Aborted, a)
					}
				}
				if first, then := r.r.Release, nr.Release; first == nil {
					r.r.Release = then
				} else if then != nil {
					r.r.Release = func() { first(); then() }
				}
			}
		}
	}
}

// batchesSize is the bytes of batches.
func batchesSize(batches [][]byte) int {
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	return n
}

// fetchCode is the error code a fetch answers for a partition whose read failed.
// A Kafka leader answers a fetch's partition only with the codes kept here, and
// clients take any other for a broker defect: the Java consumer throws
// IllegalStateException on REQUEST_TIMED_OUT, librdkafka and franz-go hand it to
// the application. A read that timed out or found no node to answer it (a
// leader moving, a node lost) is NOT_LEADER_OR_FOLLOWER, on which every client
// reads metadata again and fetches anew; any other code is UNKNOWN_SERVER_ERROR,
// which clients retry.
func fetchCode(err error) int16 {
	c := code(err)
	switch c {
	case semantics.ErrOffsetOutOfRange.Code, semantics.ErrCorruptMessage.Code, semantics.ErrUnknownTopic.Code,
		semantics.ErrNotLeader.Code, codeReplicaNotAvailable, semantics.ErrTopicAuthorizationFailed.Code,
		codeKafkaStorageError, codeFencedLeaderEpoch, codeUnknownLeaderEpoch, codeOffsetNotAvailable,
		codeUnknownTopicID, codeInconsistentTopicID, semantics.ErrUnknown.Code:
		return c
	case semantics.ErrTimeout.Code, semantics.ErrUnavailable.Code, semantics.ErrTopicNotReady.Code:
		return semantics.ErrNotLeader.Code
	}
	return semantics.ErrUnknown.Code
}

// takeBatches returns the batches of one partition that a fetch holding total
// bytes of batches takes under the client's limits, the partition's partMax and
// the fetch's maxBytes, and the node's share for the partition, and the fetch's
// new total: the batches while they fit; the first one whatever its size when the
// fetch holds none yet (as Kafka's brokers answer, KIP-74); and the partition's
// first one past its share when the client's limits hold it.
func takeBatches(batches [][]byte, total, partMax, maxBytes, share int) ([][]byte, int) {
	n := 0
	for i, b := range batches {
		if (n+len(b) > partMax || total+n+len(b) > maxBytes) && total+n > 0 ||
			n+len(b) > share && n > 0 {
			return batches[:i], total + n
		}
		n += len(b)
	}
	return batches, total + n
}

// refuseOldFetch answers a Fetch v0-v3 (tooOld), whose answer can carry only
// message formats v0 and v1: qxd stores RecordBatch v2 and does not convert it
// down, so every partition is UNSUPPORTED_VERSION with no records, as a Kafka
// 2.x broker answers a consumer's fetch it may not down-convert
// (message.downconversion.enable false, KIP-283). That code is older than
// UNSUPPORTED_FOR_MESSAGE_FORMAT (Kafka 0.10.0 against 0.10.1): a 0.10.0
// consumer, which sends Fetch v2, knows it.
func refuseOldFetch(kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codeUnsupportedVersion
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			rp.RecordBatches = []byte{}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
