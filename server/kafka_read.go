package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// Kafka fetches read a partition's stored batches from its stream's store when
// this node leads it (kafka_store.go), else with JetStream's batched direct get:
// one request returns, as raw bytes, every batch from a sequence up to a byte
// limit, where the node's fetch service asks for them one by one. Either way
// each batch read is a buffer of its own, which the answer's writev sends as it
// is. A buffer loaded from the store is the backend's (batchBufs): given back
// once the answer is written (kafka.ReadResult.Release), it holds the batches
// of a later read; the others the garbage collector frees. A Kafka consumer
// fetches where its last fetch ended, so the listener remembers, per partition, the
// sequence that follows every batch it answered, and skips the binary search then.
// The log start and high watermark are the stream leader's, as the fetch service
// reads them; the leader's first and last batches are read again only when the
// stream's first or last sequence moved (a sequence's message never changes).

// kafkaReadBatchMax bounds the batches of one batched get; kafkaReadChunk its
// bytes; kafkaReadTimeout the wait for its answer; kafkaReadsInFlight the batched
// gets in flight at once on the backend's connection, so that the bytes the node
// buffers for it stay under Config.MaxPending (default 256 MiB).
const (
	kafkaReadBatchMax  = 1000
	kafkaReadChunk     = 8 << 20
	kafkaReadTimeout   = 10 * time.Second
	kafkaReadsInFlight = 16
)

// kafkaReadPositions bounds the remembered batch ends of one partition.
const kafkaReadPositions = 4096

// A fetch that stops before the end of what is stored starts reading the batches
// that follow, for the consumer's next fetch, while this one travels to it and is
// decoded there (a Kafka client sends its next fetch to a broker only then): the
// read-ahead the SDK's consumers get from JetStream's push delivery. kafkaAheadBytes
// bounds the bytes reserved by reads ahead on a node (each its limit, and the
// batch it loaded past it once done), kafkaAheadTTL how long a
// read ahead waits for its fetch.
const (
	kafkaAheadBytes = 128 << 20
	kafkaAheadTTL   = 5 * time.Second
)

// partReads is what the Kafka reads of one partition stream remember: the
// sequence after each batch answered, by the offset after it, and the offsets
// of the stream's first and last messages.
type partReads struct {
	topicID string
	next    map[int64]uint64
	// firstSeq is the stream's first sequence when firstBatch (the sequence of
	// the batch at or after it) and firstBase (its base offset) were read.
	firstSeq, firstBatch uint64
	firstBase            int64
	// lastSeq is the stream's last sequence; lastBase and lastNext the base
	// offset of the batch stored there and the offset after it.
	lastSeq            uint64
	lastBase, lastNext int64
}

// kafkaReads remembers partReads per partition stream, and bounds the batched
// gets in flight.
type kafkaReads struct {
	mu       sync.Mutex
	parts    map[string]*partReads
	ahead    map[string]*readAhead // by partition stream
	reserved int                   // bytes reserved by ahead
	once     sync.Once
	slots    chan struct{}
	ctx      context.Context // ends the reads ahead
	cancel   context.CancelFunc
	wg       sync.WaitGroup  // the reads ahead and the checks
	checks   map[string]bool // the background checks running, by key
	closed   bool
}

// readAhead is a read started for a partition's next fetch.
type readAhead struct {
	topicID   string
	offset    int64
	maxBytes  int
	committed bool
	end       int64 // the offset the batches end before, at most
	done      chan struct{}
	batches   [][]byte
	bufs      [][]byte // the pooled buffers holding batches
	next      batchEnd
	over      directMsg // the batch read past maxBytes, the next read's first
	held      int       // the bytes of over, reserved once the read is done
	err       error
	expire    *time.Timer
}

func (k *kafkaReads) init() {
	k.once.Do(func() {
		k.slots = make(chan struct{}, kafkaReadsInFlight)
		k.ctx, k.cancel = context.WithCancel(context.Background())
	})
}

// close stops the reads ahead and waits for them.
func (k *kafkaReads) close() {
	k.init()
	k.mu.Lock()
	k.closed = true
	for stream, a := range k.ahead {
		a.expire.Stop()
		delete(k.ahead, stream)
	}
	k.reserved = 0
	k.mu.Unlock()
	k.cancel()
	k.wg.Wait()
}

// startAhead reads partition stream's batches from offset for its next fetch,
// unless the bytes reserved for reads ahead would pass kafkaAheadBytes.
func (k *kafkaReads) startAhead(stream string, a *readAhead, read func(ctx context.Context) (batches, bufs [][]byte, next batchEnd, over directMsg, err error)) {
	k.init()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	if old := k.ahead[stream]; old != nil {
		k.dropLocked(stream, old)
	}
	if k.reserved+a.maxBytes > kafkaAheadBytes {
		return
	}
	if k.ahead == nil {
		k.ahead = map[string]*readAhead{}
	}
	k.reserved += a.maxBytes
	a.done = make(chan struct{})
	k.ahead[stream] = a
	a.expire = time.AfterFunc(kafkaAheadTTL, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.ahead[stream] == a {
			k.dropLocked(stream, a)
		}
	})
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		defer close(a.done)
		batches, bufs, next, over, err := read(k.ctx)
		k.mu.Lock()
		defer k.mu.Unlock()
		a.batches, a.bufs, a.next, a.over, a.err = batches, bufs, next, over, err
		if k.ahead[stream] == a {
			// The batch read past maxBytes is held too, for the read after.
			a.held = len(over.data)
			k.reserved += a.held
		}
	}()
}

// dropLocked forgets stream's read ahead a. The caller holds k.mu.
func (k *kafkaReads) dropLocked(stream string, a *readAhead) {
	a.expire.Stop()
	delete(k.ahead, stream)
	k.reserved -= a.maxBytes + a.held
}

// takeAhead returns the read ahead of stream for a fetch of offset with maxBytes
// and isolation committed, if there is one, and forgets it.
func (k *kafkaReads) takeAhead(stream, topicID string, offset int64, maxBytes int, committed bool) *readAhead {
	k.mu.Lock()
	defer k.mu.Unlock()
	a := k.ahead[stream]
	if a == nil {
		return nil
	}
	k.dropLocked(stream, a)
	if a.topicID != topicID || a.offset != offset || a.maxBytes != maxBytes || a.committed != committed {
		return nil
	}
	return a
}

// part returns the stream's partReads for topic id, new when the topic is new.
// The caller holds k.mu.
func (k *kafkaReads) part(stream, topicID string) *partReads {
	if k.parts == nil {
		k.parts = map[string]*partReads{}
	}
	p := k.parts[stream]
	if p == nil || p.topicID != topicID {
		p = &partReads{topicID: topicID, next: map[int64]uint64{}}
		k.parts[stream] = p
	}
	return p
}

// seqOf returns the sequence of the batch a read at offset starts with, if known.
func (k *kafkaReads) seqOf(stream, topicID string, offset int64) (uint64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	seq, ok := k.part(stream, topicID).next[offset]
	return seq, ok
}

// forget drops what a read at offset expected.
func (k *kafkaReads) forget(stream, topicID string, offset int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.part(stream, topicID).next, offset)
}

// remember records where the batches of a read end.
func (k *kafkaReads) remember(stream, topicID string, ends []batchEnd) {
	if len(ends) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.part(stream, topicID)
	if len(p.next)+len(ends) > kafkaReadPositions {
		clear(p.next)
	}
	for _, e := range ends {
		p.next[e.offset] = e.seq
	}
}

// ends returns a copy of the stream's remembered ends.
func (k *kafkaReads) ends(stream, topicID string) partReads {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := *k.part(stream, topicID)
	p.next = nil
	return p
}

// setFirst and setLast record the stream's first and last batches.
func (k *kafkaReads) setFirst(stream, topicID string, firstSeq, batchSeq uint64, base int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.part(stream, topicID)
	p.firstSeq, p.firstBatch, p.firstBase = firstSeq, batchSeq, base
}

func (k *kafkaReads) setLast(stream, topicID string, seq uint64, base, next int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.part(stream, topicID)
	if seq >= p.lastSeq {
		p.lastSeq, p.lastBase, p.lastNext = seq, base, next
	}
}

// acquire takes one of the batched-get slots; release gives it back.
func (k *kafkaReads) acquire(ctx context.Context) error {
	k.init()
	select {
	case k.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *kafkaReads) release() { <-k.slots }

// batchEnd is where a batch ends: the offset after it, and the sequence after it.
type batchEnd struct {
	offset int64
	seq    uint64
}

// directBatchRequest is JetStream's batched direct get. It names no subject: a
// partition stream stores only its partition's subjects, and with one the server
// counts the messages pending by scanning the stream's blocks, where without one
// it counts them from the stream's state.
type directBatchRequest struct {
	Seq      uint64 `json:"seq"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes"`
	UpToSeq  uint64 `json:"up_to_seq,omitempty"`
}

// Read implements kafka.Backend: ReadIsolated with read_uncommitted.
func (b *kafkaBackend) Read(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (kafka.ReadResult, error) {
	r, err := b.read(ctx, topic, p, offset, maxBytes, false)
	return r.ReadResult, err
}

// ReadIsolated implements kafka.TxnBackend: stored batches from the one holding
// offset, as stored, each checked against its CRC (a batch that fails ends the
// read; read from it alone, it is an error), until they pass maxBytes (the first
// batch comes whatever its size). With committed, the batches end at the last
// stable offset and the aborted transactions among them are listed; only the node
// leading the partition knows those (NOT_LEADER_OR_FOLLOWER elsewhere).
func (b *kafkaBackend) ReadIsolated(ctx context.Context, topic string, p int32, offset int64, maxBytes int, committed bool) (kafka.IsolatedRead, error) {
	return b.read(ctx, topic, p, offset, maxBytes, committed)
}

func (b *kafkaBackend) read(ctx context.Context, topic string, p int32, offset int64, maxBytes int, committed bool) (kafka.IsolatedRead, error) {
	none := kafka.IsolatedRead{ReadResult: kafka.ReadResult{LogStart: -1, HighWatermark: -1}, LastStableOffset: -1}
	t, err := b.partition(ctx, topic, p)
	if err != nil {
		return none, err
	}
	part := semantics.PartitionString(topic, p)
	// The leader's offsets, as the fetch service reads them: a replica's high
	// watermark may be below what a consumer already read, which would be answered
	// OFFSET_OUT_OF_RANGE. The batches may come from any replica (direct gets): one
	// a little behind answers fewer of them.
	r := partition.NewReader(b.nc, topic, p, false)
	offs, firstBase, err := b.readEnds(ctx, r, t, p)
	if err != nil {
		return none, fmt.Errorf("fetch %s: read its offsets: %w", part, err)
	}
	res := kafka.IsolatedRead{ReadResult: kafka.ReadResult{LogStart: offs.LogStart, HighWatermark: offs.HighWatermark},
		LastStableOffset: offs.HighWatermark}
	end := offs.HighWatermark // batches end before it
	if w := b.n.Writers(); w != nil {
		lso, aborted, serr := w.Stable(topic, p, offset, offs.LogStart)
		switch {
		case serr == nil:
			res.LastStableOffset = min(lso, offs.HighWatermark)
			if committed {
				res.Aborted, end = aborted, res.LastStableOffset
			}
		case committed:
			return res, fmt.Errorf("fetch %s read-committed: %w", part, serr)
		}
	}
	if offset > offs.HighWatermark && offs.Behind {
		// Not known to be out of range: Kafka's leaders answer that only past
		// their log's end, and a consumer told so goes back to its reset policy
		// (earliest: the partition read again from its start). The partition
		// is between leaders: the client reads the metadata and fetches again.
		return none, semantics.Errorf(semantics.ErrNotLeader,
			"fetch %s: offset %d is past the high watermark %d read from a replica that may be behind the partition's leader: fetch again",
			part, offset, offs.HighWatermark)
	}
	if offset < offs.LogStart || offset > offs.HighWatermark {
		return res, semantics.Errorf(semantics.ErrOffsetOutOfRange,
			"fetch %s: offset %d is out of range: the partition holds offsets %d (the log start) to %d (the high watermark)",
			part, offset, offs.LogStart, offs.HighWatermark)
	}
	if offset >= end || offs.Msgs == 0 {
		return res, nil
	}
	if maxBytes <= 0 {
		maxBytes = DefaultFetchMaxBytes
	}
	var (
		next batchEnd
		over directMsg
		bufs [][]byte
	)
	if a := b.reads.takeAhead(r.Stream, t.ID, offset, maxBytes, committed); a != nil {
		select {
		case <-a.done:
			// Batches read past what may be answered now are not taken (the
			// high watermark and last stable offset only grow, so this is
			// a partition made again).
			if a.err == nil && a.end <= end {
				res.Batches, bufs, next, over = a.batches, a.bufs, a.next, a.over
			}
			if errors.Is(a.err, errIrregularRead) {
				// It met a damaged or missing batch first: read it as below.
				return b.readByBatch(ctx, res, topic, p, offset, maxBytes, committed)
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if len(res.Batches) == 0 {
		if res.Batches, bufs, next, over, err = b.readBatches(ctx, r, t, offs, firstBase, offset, end, maxBytes, directMsg{}); err != nil {
			if errors.Is(err, errIrregularRead) {
				return b.readByBatch(ctx, res, topic, p, offset, maxBytes, committed)
			}
			return res, err
		}
	}
	if len(res.Batches) == 0 {
		return res, nil
	}
	if len(bufs) > 0 {
		res.Release = func() {
			for _, buf := range bufs {
				b.bufs.put(buf)
			}
			bufs = nil
		}
	}
	records := int64(0)
	size := 0
	for _, batch := range res.Batches {
		if h, err := semantics.PeekBatchHeader(batch); err == nil {
			records += int64(h.NumRecords)
		}
		size += len(batch)
	}
	b.n.obs.fetched(topic, p, records, size)
	if next.offset < end && next.seq <= offs.LastSeq {
		// More is stored: read it for the next fetch.
		from, seqs := next.offset, offs
		b.reads.startAhead(r.Stream, &readAhead{topicID: t.ID, offset: from, maxBytes: maxBytes, committed: committed, end: end},
			func(ctx context.Context) ([][]byte, [][]byte, batchEnd, directMsg, error) {
				return b.readBatches(ctx, r, t, seqs, firstBase, from, end, maxBytes, over)
			})
	}
	return res, nil
}

// readEnds is partition.Reader.ReadOffsets from the stream leader's state, with
// the first and last batches read again only when the stream's first or last
// sequence moved; it also returns the first batch's base offset (-1 when none).
func (b *kafkaBackend) readEnds(ctx context.Context, r *partition.Reader, t semantics.TopicMeta, p int32) (partition.Offsets, int64, error) {
	st, err := b.streamState(ctx, r)
	if err != nil {
		return partition.Offsets{}, -1, err
	}
	// A replicated stream's state without a leader was answered by a replica
	// (JetStream lets one answer while the group elects), which may be behind
	// the leader it had: its high watermark may be below records already
	// acknowledged and read (partition.Offsets.Behind).
	o := partition.Offsets{StreamState: st, Behind: len(st.Replicas) > 0 && st.Leader == ""}
	var next int64
	// A checkpoint a replica answered, the bucket's leader not answering in
	// time, may be an older one: a high watermark from it is Behind.
	// A stream that never held a batch has no later checkpoint: an offset past
	// its high watermark is out of range, whoever answered.
	checkpoint := func() error {
		ck, fromLeader, err := b.n.admin.meta.readCheckpoint(ctx, t.ID, p)
		next = ck.Next
		o.Behind = o.Behind || !fromLeader && st.LastSeq > 0
		return err
	}
	if st.Msgs == 0 {
		if err := checkpoint(); err != nil {
			return partition.Offsets{}, -1, err
		}
		next = max(next, st.LogStart)
		o.LogStart, o.HighWatermark = next, next
		return o, -1, nil
	}
	known := b.reads.ends(r.Stream, t.ID)
	if known.firstSeq != st.FirstSeq || known.firstBatch == 0 {
		m, exact := b.edgeBatch(ctx, r, t, st.FirstSeq)
		var seq uint64
		var h semantics.BatchHeader
		if exact {
			seq = m.Seq
			h, err = semantics.PeekBatchHeader(m.Data)
			exact = err == nil
		}
		if !exact {
			if seq, h, err = r.BatchAtOrAfter(ctx, st.FirstSeq); err != nil {
				return partition.Offsets{}, -1, err
			}
		}
		known.firstBatch, known.firstBase = seq, h.BaseOffset
		b.reads.setFirst(r.Stream, t.ID, st.FirstSeq, seq, h.BaseOffset)
	}
	if known.lastSeq != st.LastSeq {
		m, exact := b.edgeBatch(ctx, r, t, st.LastSeq)
		if !exact {
			if m, err = r.GetLast(ctx); err != nil {
				return partition.Offsets{}, -1, err
			}
		}
		h, err := semantics.PeekBatchHeader(m.Data)
		if err != nil {
			return partition.Offsets{}, -1, err
		}
		known.lastSeq, known.lastBase, known.lastNext = m.Seq, h.BaseOffset, h.LastOffset()+1
		if m.Seq < st.LastSeq {
			// The stream's last messages are not batches of the partition (a
			// compacted topic's expired tombstones): the writer's checkpoint says
			// where offsets stand.
			if err := checkpoint(); err != nil {
				return partition.Offsets{}, -1, err
			}
		} else {
			b.reads.setLast(r.Stream, t.ID, m.Seq, h.BaseOffset, h.LastOffset()+1)
		}
	}
	o.HighWatermark = max(known.lastNext, next, st.LogStart)
	o.LogStart = min(max(known.firstBase, st.LogStart), o.HighWatermark)
	o.FirstBatchSeq, o.LastBatchSeq, o.LastBatchBase = known.firstBatch, known.lastSeq, known.lastBase
	return o, known.firstBase, nil
}

// edgeBatch reads the batch stored at exactly seq, one of the stream's ends the
// leader's state names: from the store when this node leads the stream, else
// (or when the store does not hold it) with partition.Reader.GetAt: a direct get first (raw
// bytes, where the leader's message get answers JSON with the whole batch in
// base64, a read of a few hundred KiB encoded, sent and decoded again for the
// dozen header bytes wanted), the leader when the copy that answered does not
// hold seq, and other copies again while JetStream's meta group has no leader
// and the leader's message get is refused. A message at a sequence never
// changes, so whichever copy answers gives the leader's bytes. It answers false
// when none is read (nothing stored at seq: a compacted topic's end that is not
// a batch, a damaged store), and the caller asks the leader for the nearest.
// Compacted topics always ask the leader: their copies may keep messages the
// leader has already removed.
func (b *kafkaBackend) edgeBatch(ctx context.Context, r *partition.Reader, t semantics.TopicMeta, seq uint64) (partition.Msg, bool) {
	if t.Config.Compact {
		return partition.Msg{}, false
	}
	if s := b.leaderStore(r.Stream); s != nil {
		// The leader's own copy, read in process.
		if msgs, err := s.read(directBatchRequest{Seq: seq, Batch: 1, MaxBytes: 1, UpToSeq: seq}, nil); err == nil && msgs[0].seq == seq && msgs[0].data != nil {
			b.stores.store.Add(1)
			return partition.Msg{Seq: seq, Data: msgs[0].data}, true
		}
	}
	m, err := r.GetAt(ctx, seq)
	if err != nil {
		return partition.Msg{}, false
	}
	return m, true
}

// readBatches reads the stored batches from the one holding offset, up to end (an
// offset) and maxBytes, with batched direct gets of at most kafkaReadChunk bytes,
// and returns where they end, and the pooled buffers that hold them (bufs, for
// the answer to give back once written). A read stops once it passes maxBytes, so it has read
// one batch more than it answers: that batch is returned as over, and a read
// given it as first (the read ahead after this one) starts with it rather than
// reading it again, when it is the batch at the sequence the read starts from.
func (b *kafkaBackend) readBatches(ctx context.Context, r *partition.Reader, t semantics.TopicMeta, offs partition.Offsets, firstBase, offset, end int64, maxBytes int, first directMsg) (batches, bufs [][]byte, next batchEnd, over directMsg, err error) {
	part := semantics.PartitionString(r.Topic, r.P)
	seq, hit := b.reads.seqOf(r.Stream, t.ID, offset)
	switch {
	case hit && seq >= offs.FirstSeq && seq <= offs.LastSeq:
	case offset == firstBase && offs.FirstBatchSeq != 0:
		// From the start: the first batch, no search.
		seq, hit = offs.FirstBatchSeq, false
	case offset >= offs.LastBatchBase && offs.LastBatchSeq != 0:
		// In the last batch.
		seq, hit = offs.LastBatchSeq, false
	default:
		hit = false
		found := false
		var src semantics.BatchSource = r
		if !t.Config.Compact {
			src = r.Gapless(offs.StreamState)
		}
		seq, found, err = semantics.FindOffset(ctx, src, offs.FirstSeq, offs.LastSeq, offset)
		if err != nil {
			return nil, nil, next, directMsg{}, fmt.Errorf("fetch %s: find the batch of offset %d: %w", part, offset, err)
		}
		if !found {
			seq = offs.FirstSeq
		}
	}
	var (
		ends []batchEnd
		size int
	)
	defer func() {
		b.reads.remember(r.Stream, t.ID, ends)
		if len(ends) > 0 {
			next = ends[len(ends)-1]
		}
	}()
	local := b.leaderStore(r.Stream)
	for seq <= offs.LastSeq && size < maxBytes {
		var msgs []directMsg
		if first.data != nil && first.seq == seq {
			// Read already, past the last read's maxBytes: checked below as
			// any batch read.
			msgs, first = []directMsg{first}, directMsg{}
		} else {
			msgs, err = b.readChunk(ctx, r, &local, directBatchRequest{Seq: seq,
				Batch: kafkaReadBatchMax, MaxBytes: min(maxBytes-size, kafkaReadChunk), UpToSeq: offs.LastSeq})
		}
		if err != nil {
			if len(batches) > 0 {
				return batches, bufs, next, directMsg{}, nil // the next fetch reads from here again
			}
			return nil, nil, next, directMsg{}, fmt.Errorf("fetch %s: read from sequence %d: %w", part, seq, err)
		}
		if len(msgs) == 0 {
			if len(batches) == 0 && !t.Config.Compact && seq <= offs.LastSeq {
				return nil, nil, next, directMsg{}, errIrregularRead // the batch at seq is missing
			}
			return batches, bufs, next, directMsg{}, nil
		}
		for _, m := range msgs {
			if m.seq != seq && !t.Config.Compact {
				// A hole: only a compacted topic's log has them, or a damaged copy.
				if len(batches) > 0 {
					b.damageMet(ctx, r, t, seq, ends[len(ends)-1].offset)
					return batches, bufs, next, directMsg{}, nil // the next fetch starts at it
				}
				return nil, nil, next, directMsg{}, errIrregularRead
			}
			if len(batches) > 0 && size+len(m.data) > maxBytes {
				return batches, bufs, next, m, nil
			}
			if h, err := semantics.PeekBatchHeader(m.data); err == nil && h.BaseOffset >= end {
				return batches, bufs, next, directMsg{}, nil // at the last stable offset
			}
			h, perr := semantics.ParseBatchHeader(m.data)
			if perr != nil {
				if len(batches) > 0 {
					b.damageMet(ctx, r, t, m.seq, ends[len(ends)-1].offset)
					return batches, bufs, next, directMsg{}, nil // the next fetch starts at it
				}
				return nil, nil, next, directMsg{}, fmt.Errorf("fetch %s: sequence %d: %w: %w", part, m.seq, errIrregularRead, perr)
			}
			if len(batches) == 0 && hit && h.BaseOffset != offset {
				// The remembered sequence no longer holds offset (the partition
				// was trimmed or compacted): search.
				b.reads.forget(r.Stream, t.ID, offset)
				return b.readBatches(ctx, r, t, offs, firstBase, offset, end, maxBytes, directMsg{})
			}
			batches = append(batches, m.data)
			if m.buf != nil {
				bufs = append(bufs, m.buf)
			}
			ends = append(ends, batchEnd{offset: h.LastOffset() + 1, seq: m.seq + 1})
			size += len(m.data)
			if m.seq == offs.LastSeq {
				b.reads.setLast(r.Stream, t.ID, m.seq, h.BaseOffset, h.LastOffset()+1)
			}
			seq = m.seq + 1
		}
	}
	return batches, bufs, next, directMsg{}, nil
}

// errIrregularRead is a batched read that met a batch failing its checks, or a
// stream sequence missing from the copy that answered, where the batch it should
// have returned first was. The fetch service reads such a range batch by batch:
// from another replica's intact copy when one has it, recording the damage, or
// failing with an error that names the partition, the offsets and the node.
var errIrregularRead = errors.New("batched read met a damaged or missing batch")

// damageMet handles a damaged or missing batch that a batched read of partition
// r of t met at stream sequence seq (offset, at the latest) after the batches it
// answered. The next fetch starts there, but its direct get may well be
// answered by another, healthy, copy, and what this one found would be lost: so
// the leader's copy of seq is read now, and when it fails its checks too, the
// fetch service reads it (from another replica) and records the damage naming
// the leader. A direct get does not say which replica answered it: when the
// leader's copy is intact, the damaged copy is a follower's, and the followers'
// copies of seq are read in the background (checkCopies), which records the
// damage naming the follower.
func (b *kafkaBackend) damageMet(ctx context.Context, r *partition.Reader, t semantics.TopicMeta, seq uint64, offset int64) {
	if m, err := r.Get(ctx, seq); err == nil && m.Seq == seq {
		if h, err := semantics.ParseBatchHeader(m.Data); err == nil {
			st, err := r.StreamInfo(ctx)
			if err != nil {
				return
			}
			var followers []string
			for _, n := range st.Replicas {
				if n != st.Leader {
					followers = append(followers, n)
				}
			}
			b.reads.background(r.Stream+" "+strconv.FormatUint(seq, 10), func(ctx context.Context) {
				if checked := checkCopies(ctx, b.n.log, b.n.js, b.n.admin.meta, t, r.P, seq, h.BaseOffset, h.LastOffset(), followers); len(checked) < len(followers) {
					b.n.log.Warn("a follower's copy of a partition is damaged or missing a batch, not all followers' copies could be read: verify the replicas ('qxd topic describe --verify-replicas')",
						"topic", r.Topic, "partition", r.P, "offset", offset)
				}
			})
			return
		}
	}
	if _, err := b.n.Fetcher().Fetch(ctx, FetchRequest{Topic: r.Topic, Partition: r.P, Offset: offset, MaxBytes: 1}); err != nil {
		b.n.log.Debug("damaged batch read again from the leader's copy", "topic", r.Topic, "partition", r.P, "offset", offset, "err", err)
	}
}

// background runs check, named key, on its own under the reads' context, unless
// one of that key runs already or the reads are closed.
func (k *kafkaReads) background(key string, check func(ctx context.Context)) {
	k.init()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.checks[key] {
		return
	}
	if k.checks == nil {
		k.checks = map[string]bool{}
	}
	k.checks[key] = true
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		check(k.ctx)
		k.mu.Lock()
		delete(k.checks, key)
		k.mu.Unlock()
	}()
}

// readByBatch answers a fetch the batched read could not (errIrregularRead) with
// the fetch service's batch-by-batch read, keeping res's offsets.
func (b *kafkaBackend) readByBatch(ctx context.Context, res kafka.IsolatedRead, topic string, p int32, offset int64, maxBytes int, committed bool) (kafka.IsolatedRead, error) {
	fr, err := b.n.Fetcher().Fetch(ctx, FetchRequest{Topic: topic, Partition: p, Offset: offset, MaxBytes: maxBytes, ReadCommitted: committed})
	if err != nil {
		return res, err
	}
	res.Batches = fr.Batches
	return res, nil
}

// readChunk reads the stored messages req asks for: from *local, the store of
// the partition stream this node leads, when there is one, or with a batched
// direct get. A store that cannot be read (the node stopped leading the stream,
// the stream is gone, its store does not hold req.Seq) is not read again in
// this read.
func (b *kafkaBackend) readChunk(ctx context.Context, r *partition.Reader, local **leaderStore, req directBatchRequest) ([]directMsg, error) {
	if *local != nil {
		msgs, err := (*local).read(req, &b.bufs)
		if err == nil {
			b.stores.store.Add(int64(len(msgs)))
			return msgs, nil
		}
		*local = nil
	}
	msgs, err := b.directBatch(ctx, r, req)
	b.stores.nats.Add(int64(len(msgs)))
	return msgs, err
}

type directMsg struct {
	seq  uint64
	data []byte
	// buf, when set, holds data and is the backend's (batchBufs): given back
	// once the answer holding data is written.
	buf []byte
}

// directBatch sends a batched direct get and collects its messages until the
// end-of-batch marker. Any replica may answer it, one of a paused or cut-off
// node too, which never does: partition.DirectRead sends it again while no
// message has come.
func (b *kafkaBackend) directBatch(ctx context.Context, r *partition.Reader, req directBatchRequest) ([]directMsg, error) {
	if err := b.reads.acquire(ctx); err != nil {
		return nil, err
	}
	defer b.reads.release()
	ctx, cancel := context.WithTimeout(ctx, kafkaReadTimeout)
	defer cancel()
	return partition.DirectRead(ctx, func(ctx context.Context, begun func()) ([]directMsg, error) {
		return b.directBatchOnce(ctx, r, req, begun)
	})
}

// directBatchOnce sends the batched direct get req once, and calls begun when
// its first message comes.
func (b *kafkaBackend) directBatchOnce(ctx context.Context, r *partition.Reader, req directBatchRequest, begun func()) ([]directMsg, error) {
	// An inbox of its own: one under the connection's request inbox prefix would
	// also reach the subscription all its requests' answers share, twice the work,
	// and past that subscription's pending limit the answers of other requests are
	// dropped.
	inbox := b.nc.NewInbox()
	// Room for every message and the end marker: a full channel drops messages.
	ch := make(chan *nats.Msg, req.Batch+1)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	body, _ := json.Marshal(req)
	if err := b.nc.PublishRequest(semantics.Subject(semantics.JSDirectGetPrefix, r.Stream), inbox, body); err != nil {
		return nil, err
	}
	var out []directMsg
	for {
		select {
		case m := <-ch:
			begun()
			if len(m.Data) == 0 {
				switch st := m.Header.Get("Status"); st {
				case "204": // end of batch
					return out, nil
				case "404": // nothing at or after seq
					return out, nil
				case "":
				default:
					return out, fmt.Errorf("%s %s", st, m.Header.Get("Description"))
				}
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return out, errors.New("batched read: bad sequence header")
			}
			out = append(out, directMsg{seq: seq, data: m.Data})
			if len(out) >= req.Batch {
				return out, nil
			}
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
