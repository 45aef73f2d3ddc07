package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// The partition writer is Kafka's leader append path: it runs on the node that leads
// the partition's stream, takes record batches from producers, gives them dense
// offsets, checks idempotent producer sequences and appends them to the stream,
// several in flight, fenced so that a writer whose view of the log is stale (it lost
// leadership, or another writer appended) cannot fork offsets.
//
// Unreplicated streams (replicas 1):
//
//   - the first append after the writer loads its state carries
//     Nats-Expected-Last-Sequence, the last sequence it loaded;
//   - every append carries a Nats-Msg-Id unique to this writer, and every later one
//     Nats-Expected-Last-Msg-Id, the id of the append before it.
//
// Expected-Last-Sequence alone fences only the first append of a pipeline: if it
// fails, the next one (expecting one more) can match the real log and land at
// offsets computed from a stale state. With the id chain, an append lands only right
// behind its predecessor, so once one fails every later one of the pipeline fails too,
// and the writer reloads from the log.
//
// Replicated streams: JetStream checks Nats-Expected-Last-Msg-Id of a replicated
// stream only when the replicas apply the entry, and a mismatch there is a write
// error that stops the stream on every replica (observer mode, no leader) until
// the nodes restart. So there every append carries Nats-Expected-Last-Sequence,
// which the leader checks before it proposes, against the appends in flight. A
// writer also refuses requests as soon as its node no longer leads the stream, and
// planned leadership moves stop the writer before the stream steps down (see
// Node.handOff), so two writers do not append side by side; see
// docs/architecture.md for the window that is left.

const (
	// ackTimeout is how long an append may wait for JetStream's ack before the writer
	// gives up on the pipeline, fails what is in flight and reloads from the log.
	ackTimeout = 5 * time.Second
	// checkpointEvery is how often a busy writer records its position and producer
	// state; the first change after a quiet spell is recorded within checkpointSoon.
	checkpointEvery = time.Second
	checkpointSoon  = 100 * time.Millisecond
	// defaultProducerIdle is how long an idempotent producer is remembered after its
	// last write, unless Config.ProducerIDExpiration says otherwise.
	defaultProducerIdle = DefaultProducerIDExpiration
	// recentBatches is how many batches per producer are remembered with their offsets,
	// enough for Kafka's five in-flight requests per partition.
	recentBatches = 5
	// recheckTimeout bounds the look at the log a writer takes before refusing a
	// producer's sequence as out of order.
	recheckTimeout = 2 * time.Second
	// bucketFallbackTimeout bounds the read of the checkpoint bucket when the
	// partition's stream holds no checkpoint of its own (a partition last written by
	// an older writer, or a compacted topic) but holds batches: the writer then
	// loads from the log's tail rather than wait for a bucket whose quorum may be
	// on a sick node.
	bucketFallbackTimeout = 500 * time.Millisecond
	// tailReplay is how many batches at the log's tail a writer replays when it
	// has neither checkpoint.
	tailReplay = 10000
	// catchUpWait bounds how long a loading writer waits for the stream and the
	// checkpoint to agree: a stream whose new leader has not yet applied what the
	// old one acknowledged, or a checkpoint bucket still writing the last
	// checkpoint of a writer that just stopped.
	catchUpWait = 5 * time.Second
	// stopCheckpointTimeout bounds the last bucket checkpoint of a stopping
	// writer: the stream holds the writer's state, and a stop must not hold up the
	// node's other partitions while the bucket has no quorum.
	stopCheckpointTimeout = time.Second
	// checkpointRoom is what a batch message must leave free, beyond the
	// checkpoint header, for the append's other headers.
	checkpointRoom = 512
	// lateTick is how late a tick of the writer's background loop must come for
	// the writer to take it that its node did not run (paused, or starved of
	// CPU) rather than that its appends waited on the cluster.
	lateTick = time.Second
)

type writer struct {
	nc          *nats.Conn // the connection requests, appends and acks travel on
	leads       streamLeadership
	epochOf     func(ctx context.Context, stream string) int32
	checkpoints checkpointStore
	lost        func() // called when the writer finds its node no longer leads the stream
	obs         *observers
	log         *slog.Logger
	topic       string
	topicID     string
	p           int32
	reader      *partition.Reader
	storeOf     func(stream string) *leaderStore // see writerEnv.store
	replays     *storeReads
	lookups     *storeReads // see writerEnv.lookups
	cfg         atomic.Pointer[semantics.TopicConfig]
	// producerIdle is how long an idempotent producer is remembered after its
	// last write.
	producerIdle time.Duration
	// stores, syncAlways: see writerEnv. store is the partition's store on this
	// node once found, durApplied the durability last applied to it ("": none
	// yet), durOff whether the writer said it cannot apply one (store_durability.go).
	// While the writer has no store it can set, durFixed is the durability the
	// stream's store writes with regardless ("": no store found; storeSyncOf).
	stores     func(stream string, cached *storeSync) (*storeSync, string, string)
	syncAlways bool
	stream     string
	store      *storeSync
	durApplied string
	durOff     bool
	durFixed   string
	// durChanged wakes the background loop to apply a durability the topic's
	// config changed to (setConfig); noDurabilityTick: see writerEnv.
	durChanged       chan struct{}
	noDurabilityTick *atomic.Bool

	node      string // this node's name (writerEnv.node)
	sub       *nats.Subscription
	directSub *nats.Subscription // requests addressed to this node's writer alone
	ackSub    *nats.Subscription
	markerSub *nats.Subscription // transaction markers (writer_txn.go)
	lsoSub    *nats.Subscription // read-committed readers' last stable offset (writer_txn.go)
	ackPrefix string
	electSub  *nats.Subscription // the stream's leader-elected advisories

	// in takes requests one at a time, in the order their callers come, as the
	// NATS subscription delivers them: produce releases mu while it reloads.
	in sync.Mutex

	mu        sync.Mutex
	idle      *sync.Cond // signalled when pending empties
	next      int64      // offset for the next record
	lastSeq   uint64     // stream sequence of the last append sent
	chain     string     // prefix of this load's message ids, unique per load
	lastMsgID string     // message id of the last append sent; "" right after a load
	nextID    uint64
	pending   map[uint64]*pendingAppend
	broken    bool // an append failed: reload from the log before the next one
	closed    bool
	producers map[int64]*producerState
	// epoch is the leader epoch stamped on every batch appended, from the load.
	epoch int32
	acked semantics.Checkpoint // position after the last acked append
	// maxTS is the batch with the largest timestamp among the acknowledged ones
	// (ListOffsets' MAX_TIMESTAMP), when maxKnown; sentMax the same over every
	// batch sent, for the checkpoints appends carry. A load from a checkpoint that
	// does not carry it leaves maxKnown false until a reader scans the log
	// (max_timestamp.go).
	maxTS    semantics.TimestampMark
	sentMax  semantics.TimestampMark
	maxKnown bool
	dirty    bool
	ckAt     time.Time // when an append last carried a checkpoint into the stream
	// open are the transactions whose markers are not acknowledged yet, and
	// aborted the aborted-transactions index (writer_txn.go).
	open    []openTxn
	aborted []semantics.AbortedTxn

	done     chan struct{}
	stopping chan struct{} // closed when stop begins: ends a reload in progress
	wg       sync.WaitGroup
}

type pendingAppend struct {
	reply   answer
	base    int64
	count   int64
	parts   int // acks outstanding
	sent    time.Time
	lastSeq uint64
	pid     int64
	rb      *recentBatch
	bytes   int
	marker  *markerAppend // a transaction marker
	max     semantics.TimestampMark
}

type producerState struct {
	epoch   int16
	lastSeq int32
	recent  []*recentBatch
	seen    time.Time
	// inTxn: a transaction of the producer is open in the log (its marker is not
	// sent yet), begun at offset txnFirst.
	inTxn    bool
	txnFirst int64
}

type recentBatch struct {
	baseSeq, lastSeq int32
	baseOffset       int64
	pending          bool
}

// answer is where the answer to one produce request goes: a NATS reply subject
// (the NATS door) or done (an in-process caller, see Writers). Neither: the
// producer asked for no answer (acks=0).
type answer struct {
	subject string
	// done is called once, with the writer's lock held: it must not block nor call
	// the writer.
	done func(semantics.ProduceReply)
}

func (a answer) none() bool { return a.subject == "" && a.done == nil }

func newWriter(env writerEnv, t semantics.TopicMeta, p int32, lost func()) *writer {
	w := &writer{
		nc: env.conn(t.Name, p), node: env.node, leads: env.leads, epochOf: env.epoch, checkpoints: env.checkpoints, lost: lost, obs: env.obs,
		topic: t.Name, topicID: t.ID, p: p,
		log:     env.log.With("topic", t.Name, "partition", p),
		reader:  partition.NewReader(env.reads, t.Name, p, false),
		storeOf: env.store, replays: env.replays, lookups: env.lookups,
		done: make(chan struct{}), stopping: make(chan struct{}),
	}
	w.idle = sync.NewCond(&w.mu)
	w.producerIdle = cmp.Or(env.producerIdle, defaultProducerIdle)
	w.stores, w.syncAlways, w.stream = env.stores, env.syncAlways, semantics.StreamName(t.Name, p)
	w.durChanged, w.noDurabilityTick = make(chan struct{}, 1), env.noDurabilityTick
	cfg := t.Config
	w.cfg.Store(&cfg)
	return w
}

// setConfig gives the writer its topic's config as the topic's record now says
// it. A durability changed by it is applied as soon as the writer's background
// loop takes the lock, not at the loop's next tick (up to checkpointSoon
// later): an alter of the durability waits for every partition's writer to
// apply it (Admin.awaitDurability). Until it is applied, the next
// acknowledgement applies it first (keepDurabilityLocked), as before.
func (w *writer) setConfig(cfg semantics.TopicConfig) {
	old := w.cfg.Swap(&cfg)
	if old != nil && old.DurabilityOrDefault() == cfg.DurabilityOrDefault() {
		return
	}
	select {
	case w.durChanged <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// start loads the partition's state from the log and begins serving produce requests.
func (w *writer) start(ctx context.Context) error {
	began := time.Now()
	// Before the first append: a store that JetStream made async (a stream
	// created with persist mode async, reopened) syncs before it is written to.
	w.mu.Lock()
	w.keepDurabilityLocked(w.cfg.Load(), true)
	w.mu.Unlock()
	if err := w.load(ctx); err != nil {
		return err
	}
	w.ackPrefix = w.nc.NewRespInbox() + "."
	var err error
	w.ackSub, err = w.nc.Subscribe(w.ackPrefix+"*", w.onAck)
	if err != nil {
		return err
	}
	w.electSub, err = w.nc.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, semantics.StreamName(w.topic, w.p)), w.onLeaderElected)
	if err != nil {
		w.ackSub.Unsubscribe()
		return err
	}
	// A queue subscription: while leadership moves, the old and the new writer may
	// both listen for a moment, and each request must reach only one of them.
	w.sub, err = w.nc.QueueSubscribe(semantics.WriterSubject(w.topic, w.p), "writer", w.onProduce)
	if err != nil {
		w.ackSub.Unsubscribe()
		w.electSub.Unsubscribe()
		return err
	}
	// A plain subscription beside it, for the requests a producer addresses to
	// this node's writer alone: after an election it sends to the leader the
	// advisory named, where the old leader's lingering queue subscription cannot
	// take them. The same door: a request that comes once the node no longer
	// leads is answered NOT_LEADER (readyLocked). A producer sends to one of the
	// two subscriptions at a time (it changes only with nothing in flight), so
	// each one's order is its order.
	w.directSub, err = w.nc.Subscribe(semantics.WriterDirectSubject(w.topic, w.p, w.node), w.onProduce)
	if err != nil {
		w.sub.Unsubscribe()
		w.ackSub.Unsubscribe()
		w.electSub.Unsubscribe()
		return err
	}
	w.markerSub, err = w.nc.QueueSubscribe(semantics.MarkerSubject(w.topic, w.p), "writer", w.onMarker)
	if err != nil {
		w.sub.Unsubscribe()
		w.directSub.Unsubscribe()
		w.ackSub.Unsubscribe()
		w.electSub.Unsubscribe()
		return err
	}
	w.lsoSub, err = w.nc.QueueSubscribe(semantics.LSOSubject(w.topic, w.p), "writer", w.onLSO)
	if err != nil {
		w.sub.Unsubscribe()
		w.directSub.Unsubscribe()
		w.ackSub.Unsubscribe()
		w.electSub.Unsubscribe()
		w.markerSub.Unsubscribe()
		return err
	}
	for _, s := range []*nats.Subscription{w.sub, w.directSub, w.ackSub} {
		_ = s.SetPendingLimits(-1, 512<<20)
	}
	if err := w.nc.Flush(); err != nil {
		w.sub.Unsubscribe()
		w.directSub.Unsubscribe()
		w.ackSub.Unsubscribe()
		w.electSub.Unsubscribe()
		w.markerSub.Unsubscribe()
		w.lsoSub.Unsubscribe()
		return err
	}
	w.wg.Add(1)
	go w.background()
	w.mu.Lock()
	next := w.next
	w.mu.Unlock()
	w.log.Debug("writer started", "offset", next, "took", time.Since(began))
	return nil
}

// stop stops taking requests, waits (bounded by ctx) for appends in flight, and writes
// a last checkpoint.
func (w *writer) stop(ctx context.Context) {
	if w.halt(ctx) {
		w.lastCheckpoint(ctx)
	}
}

// halt stops taking requests and waits (bounded by ctx) for appends in flight: once
// it returns, the writer appends nothing more and no longer listens on its
// subjects, so another writer of its partition may start on this node. What is
// left is its last checkpoint (lastCheckpoint). It reports false if the writer
// was stopped already.
func (w *writer) halt(ctx context.Context) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.closed = true
	close(w.stopping)
	w.mu.Unlock()
	if w.markerSub != nil {
		w.markerSub.Unsubscribe()
		w.lsoSub.Unsubscribe()
	}
	if w.sub != nil {
		// Drain rather than unsubscribe: the requests already queued are answered
		// (NOT_LEADER, retry) instead of left to time out, so producers move to the
		// partition's new writer at once.
		subs := []*nats.Subscription{w.sub}
		if w.directSub != nil {
			subs = append(subs, w.directSub)
		}
		for _, s := range subs {
			if err := s.Drain(); err != nil {
				s.Unsubscribe()
			}
		}
		for _, s := range subs {
			for s.IsValid() && ctx.Err() == nil {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	waited := make(chan struct{})
	go func() {
		w.mu.Lock()
		for len(w.pending) > 0 && !w.broken {
			w.idle.Wait()
		}
		w.mu.Unlock()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		w.mu.Lock()
		w.failPending(semantics.Errorf(semantics.ErrNotLeader, "partition %s: writer stopped", semantics.PartitionString(w.topic, w.p)))
		w.mu.Unlock()
		<-waited
	}
	close(w.done)
	w.wg.Wait()
	if w.ackSub != nil {
		w.ackSub.Unsubscribe()
		w.electSub.Unsubscribe()
	}
	return true
}

// lastCheckpoint writes the stopped writer's last checkpoint, bounded by
// stopCheckpointTimeout and ctx.
func (w *writer) lastCheckpoint(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, stopCheckpointTimeout)
	w.checkpoint(cctx)
	cancel()
	w.log.Debug("writer stopped")
}

func (w *writer) name() string { return semantics.PartitionString(w.topic, w.p) }

// load rebuilds next offset, last sequence and producer state from the latest
// checkpoint and the batches stored after it.
//
// Offsets are never given twice (docs/architecture.md, invariant 2), so where the
// log and the checkpoint disagree the writer takes the higher offset: a gap, never
// a reuse. Two disagreements are waited out first (catchUpWait), since they are
// usually a moment's lag: a checkpoint ahead of the stream (a new leader that has
// not applied the old one's last appends), and a checkpoint bucket behind a stream
// whose batches all aged out (the last checkpoint still being written).
func (w *writer) load(ctx context.Context) error {
	began := time.Now()
	var st partition.StreamState
	var ck semantics.Checkpoint
	var tookInfo, tookCk time.Duration
	local := w.localStore()
	for {
		var err error
		at := time.Now()
		if st, err = w.streamState(ctx, local); err != nil {
			return err
		}
		tookInfo += time.Since(at)
		at = time.Now()
		var bucket bool
		if ck, bucket, err = w.loadCheckpoint(ctx, st, local); err != nil {
			return fmt.Errorf("partition %s: read checkpoint: %w", w.name(), err)
		}
		tookCk += time.Since(at)
		ahead := ck.Seq > st.LastSeq
		behind := bucket && st.Msgs == 0 && ck.Seq < st.LastSeq
		if !ahead && !behind || time.Since(began) >= catchUpWait {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("partition %s: wait for the log and its checkpoint to agree: %w", w.name(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if ck.Seq > st.LastSeq {
		// The log ends before batches the checkpoint says were stored: they were
		// lost. Their offsets are not given again.
		w.log.Error("partition log ends before its checkpoint; acknowledged batches are missing, and offsets continue after them",
			"checkpoint_seq", ck.Seq, "last_seq", st.LastSeq, "offset", ck.Next)
		ck = semantics.Checkpoint{Next: ck.Next}
	}
	producers := make(map[int64]*producerState, len(ck.Producers))
	for id, pc := range ck.Producers {
		ps := &producerState{epoch: pc.Epoch, lastSeq: pc.LastSeq, seen: time.UnixMilli(pc.Seen)}
		for _, b := range pc.Earlier {
			ps.remember(&recentBatch{baseSeq: b.BaseSeq, lastSeq: b.LastSeq, baseOffset: b.BaseOffset})
		}
		ps.remember(&recentBatch{baseSeq: pc.BaseSeq, lastSeq: pc.LastSeq, baseOffset: pc.BaseOffset})
		if pc.TxnFirst != nil {
			ps.inTxn, ps.txnFirst = true, *pc.TxnFirst
		}
		producers[id] = ps
	}
	replayAt := w.replayer(st, local)
	at := time.Now()
	epoch, err := w.leaderEpoch(ctx, st, replayAt)
	if err != nil {
		return err
	}
	tookEpoch := time.Since(at)
	at = time.Now()
	next := ck.Next
	// known is the last stream sequence whose offsets next accounts for.
	known := ck.Seq
	from := max(ck.Seq+1, st.FirstSeq)
	// The largest timestamp: the checkpoint's, or every stored batch's when the
	// replay reads them all.
	maxTS, maxKnown := semantics.NoTimestampMark, ck.MaxTimestamp != nil || from <= st.FirstSeq || st.Msgs == 0
	if ck.MaxTimestamp != nil {
		maxTS = *ck.MaxTimestamp
	}
	for seq := from; seq <= st.LastSeq && st.Msgs > 0; {
		m, err := replayAt(ctx, seq)
		if errors.Is(err, semantics.ErrNoBatch) {
			break
		}
		if err != nil {
			return fmt.Errorf("partition %s: replay sequence %d: %w", w.name(), seq, err)
		}
		h, err := semantics.PeekBatchHeader(m.Data)
		if err != nil {
			return fmt.Errorf("partition %s: replay sequence %d: %w", w.name(), m.Seq, err)
		}
		next = max(next, h.LastOffset()+1)
		known = m.Seq
		if !h.Control() {
			maxTS = maxTS.Fold(semantics.TimestampMark{Timestamp: h.MaxTimestamp, BaseOffset: h.BaseOffset, Seq: m.Seq})
		}
		if h.Control() {
			replayMarker(producers, h, storedAt(m, h))
		} else if h.ProducerID >= 0 {
			ps := producers[h.ProducerID]
			if ps == nil || h.ProducerEpoch > ps.epoch {
				ps = &producerState{epoch: h.ProducerEpoch}
				producers[h.ProducerID] = ps
			}
			last := addSeq(h.BaseSequence, h.NumRecords-1)
			ps.lastSeq = last
			ps.seen = storedAt(m, h)
			ps.remember(&recentBatch{baseSeq: h.BaseSequence, lastSeq: last, baseOffset: h.BaseOffset})
			if h.Transactional() && !ps.inTxn {
				ps.inTxn, ps.txnFirst = true, h.BaseOffset
			}
		}
		seq = m.Seq + 1
	}
	next = max(next, st.LogStart) // a trim's log start, kept in the stream's metadata
	if gone := st.LastSeq - min(known, st.LastSeq); gone > 0 {
		next = afterRemoved(next, gone, w.cfg.Load().Compact)
		if !w.cfg.Load().Compact {
			w.log.Error("partition's last batches were removed before a checkpoint recorded their offsets; offsets continue past any they could have held",
				"batches", gone, "last_seq", st.LastSeq, "offset", next)
		}
	}
	tookReplay := time.Since(at)
	at = time.Now()
	aborted, err := w.loadAborted(ctx, st, local)
	if err != nil {
		return fmt.Errorf("partition %s: read its abort markers: %w", w.name(), err)
	}
	w.log.Debug("writer loaded its partition's state", "took", time.Since(began),
		"stream_info", tookInfo, "checkpoint", tookCk, "epoch", tookEpoch, "replay", tookReplay, "aborted", time.Since(at))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aborted = aborted
	w.open = openTxns(producers)
	w.next = next
	w.epoch = epoch
	w.lastSeq = st.LastSeq
	w.chain = newChainID()
	w.lastMsgID = ""
	w.producers = producers
	w.pending = map[uint64]*pendingAppend{}
	w.broken = false
	w.acked = semantics.Checkpoint{Seq: st.LastSeq, Next: next}
	w.maxTS, w.sentMax, w.maxKnown = maxTS, maxTS, maxKnown
	w.ckAt = time.Time{} // the first append carries a checkpoint into the stream
	// Nothing new to record: the log holds this state. The first append after the
	// load is then checkpointed within checkpointSoon.
	w.dirty = false
	return nil
}

// localStore is the store of the writer's stream when this node leads it and
// it can be read in process (Node.replayStore), else nil: a load then reads the
// log with JetStream API requests only.
func (w *writer) localStore() *leaderStore {
	if w.storeOf == nil {
		return nil
	}
	return w.storeOf(semantics.StreamName(w.topic, w.p))
}

// countLookup counts one of a load's reads of the log other than its replay:
// from the store in process, or a request.
func (w *writer) countLookup(store bool) {
	switch {
	case w.lookups == nil:
	case store:
		w.lookups.store.Add(1)
	default:
		w.lookups.nats.Add(1)
	}
}

// streamState is the stream's state a load starts from: what the stream
// leader's info answers (partition.Reader.StreamInfo). The writer runs where the
// stream is led, so that leader is this node, and with local (the store of the
// stream this node leads) it reads the same figures in process
// (leaderStore.state: the store's first and last sequence, messages and bytes,
// and the log start in the stream's metadata); the leader, replicas and in-sync
// replicas the info adds, a load does not use. Where this node does not lead
// the stream, before or after the read, or the state cannot be read, it asks.
func (w *writer) streamState(ctx context.Context, local *leaderStore) (partition.StreamState, error) {
	if local != nil && streamIsLeader(local.mset) {
		st, err := local.state()
		if err == nil && streamIsLeader(local.mset) {
			w.countLookup(true)
			return st, nil
		}
	}
	w.countLookup(false)
	return w.reader.StreamInfo(ctx)
}

// lastOn is the last message stored on subject, for a load's checkpoint: read
// from local when it is set (leaderStore.last, with its headers), as the
// stream leader's last-by-subject get answers it, else, or once this node no
// longer leads the stream, asked (partition.Reader.GetRecentFor).
func (w *writer) lastOn(ctx context.Context, local *leaderStore, subject string) (partition.Msg, error) {
	if local != nil {
		m, err := local.last(subject)
		if !errors.Is(err, errStoreStopped) {
			w.countLookup(true)
			return m, err
		}
	}
	w.countLookup(false)
	return w.reader.GetRecentFor(ctx, subject)
}

// replayer returns the load's reader of the log after the checkpoint: it gives
// the first message stored at sequence seq or after it, up to st.LastSeq, as the
// stream leader stores it, or semantics.ErrNoBatch.
//
// The writer runs where the stream is led, so the leader is this node, and it
// reads the stream's store in process (local, leaderStore.next), as the leader's
// message get would, without a request per batch. Once the node no longer leads
// the stream, or when the store cannot be read in process, it asks the stream
// leader over NATS (natsReplayer), as it would from the start without a store.
func (w *writer) replayer(st partition.StreamState, local *leaderStore) func(context.Context, uint64) (partition.Msg, error) {
	viaNATS := w.natsReplayer(st)
	filter := semantics.StreamSubject(w.topic, w.p)
	return func(ctx context.Context, seq uint64) (partition.Msg, error) {
		if local != nil {
			m, err := local.next(filter, seq)
			if !errors.Is(err, errStoreStopped) {
				if err == nil && w.replays != nil {
					w.replays.store.Add(1)
				}
				return m, err
			}
			local = nil // the rest through NATS: what is read is committed, kept
		}
		m, err := viaNATS(ctx, seq)
		if err == nil && w.replays != nil {
			w.replays.nats.Add(1)
		}
		return m, err
	}
}

// natsReplayer is the replayer that asks the stream leader over NATS.
//
// It asks the stream leader (a leader message get), which is this node: the
// writer runs where the stream is led, so the answer comes from the node itself.
// A direct get would reach a replica the NATS server picks at random, and one cut
// off from the cluster still takes its share of them until the nodes give up on
// its routes (6–8 s after a cut): each read that went there costs a direct-get
// attempt (partition.DirectAttempt, 0.5 s; before attempts, the whole 5 s read
// timeout), after JetStream had elected the new leader in time.
//
// It works while JetStream's meta group has no leader, when the leader's message
// get is refused (see partition.ErrNoMetaLeader), by reading exact sequences,
// which any replica that holds one answers with the leader's bytes
// (partition.Reader.GetAt: a message at a sequence never changes).
//
// A topic that is not compacted holds a message at every sequence from its first
// to its last, so the one at exactly seq is read. A compacted topic's gaps are
// usual, and a replica behind the leader may still hold a message the leader has
// removed: while the leader's get is refused, the sequences read are those the
// leader's own state lists as held (partition.Reader.LeaderHeld, read once per
// load), so the replay reads exactly the messages the leader's gets would.
func (w *writer) natsReplayer(st partition.StreamState) func(context.Context, uint64) (partition.Msg, error) {
	if !w.cfg.Load().Compact {
		return func(ctx context.Context, seq uint64) (partition.Msg, error) {
			m, err := w.reader.Get(ctx, seq)
			if !errors.Is(err, partition.ErrNoMetaLeader) {
				return m, err
			}
			m, err = w.reader.GetAt(ctx, seq)
			if !errors.Is(err, semantics.ErrNoBatch) {
				return m, err
			}
			// Nothing at seq (a damaged store lost it): the next one.
			return w.reader.Get(ctx, seq)
		}
	}
	var held *partition.Held
	return func(ctx context.Context, seq uint64) (partition.Msg, error) {
		if held == nil {
			m, err := w.reader.Get(ctx, seq)
			if !errors.Is(err, partition.ErrNoMetaLeader) {
				return m, err
			}
			h, err := w.reader.LeaderHeld(ctx)
			if err != nil {
				return partition.Msg{}, err
			}
			if h.LastSeq < st.LastSeq {
				return partition.Msg{}, semantics.Errorf(semantics.ErrNotLeader,
					"partition %s: the stream's leader lists sequences up to %d, its state said %d: it changed during the load", w.name(), h.LastSeq, st.LastSeq)
			}
			held = &h
		}
		for at, ok := held.Next(seq, st.LastSeq); ok; at, ok = held.Next(at+1, st.LastSeq) {
			m, err := w.reader.GetAt(ctx, at)
			if errors.Is(err, semantics.ErrNoBatch) {
				continue // removed since the list was read: as a later leader get would find
			}
			return m, err
		}
		return partition.Msg{}, semantics.ErrNoBatch
	}
}

// afterRemoved is the offset the next record gets when the gone messages after the
// one that ends before next were removed (retention, expired tombstones) before any
// checkpoint recorded their offsets. On a compacted topic each message held one
// record. Otherwise a message held a batch of up to math.MaxInt32 records (Kafka's
// count field), so the writer skips that many offsets for each: a gap, never an
// offset given twice.
func afterRemoved(next int64, gone uint64, compact bool) int64 {
	if compact {
		return next + int64(gone)
	}
	return next + int64(gone)*math.MaxInt32
}

// leaderEpoch is the epoch this writer stamps on its batches: the partition's leader
// epoch, and never below the epoch of the last stored batch, so that epochs only
// grow along the log.
func (w *writer) leaderEpoch(ctx context.Context, st partition.StreamState, replayAt func(context.Context, uint64) (partition.Msg, error)) (int32, error) {
	epoch := int32(0)
	if w.epochOf != nil {
		epoch = max(epoch, w.epochOf(ctx, semantics.StreamName(w.topic, w.p)))
	}
	if st.Msgs == 0 {
		return epoch, nil
	}
	m, err := replayAt(ctx, st.LastSeq)
	if errors.Is(err, semantics.ErrNoBatch) {
		return epoch, nil
	}
	if err != nil {
		return 0, fmt.Errorf("partition %s: read the last batch: %w", w.name(), err)
	}
	if h, err := semantics.PeekBatchHeader(m.Data); err == nil {
		epoch = max(epoch, h.LeaderEpoch)
	}
	return epoch, nil
}

// loadCheckpoint finds the checkpoint a load starts from, asking only the
// partition's own stream whenever it can answer:
//
//   - nothing ever stored: no checkpoint is needed;
//   - the latest batch that carries a checkpoint (CheckpointSubject), when one is
//     still stored;
//   - else the checkpoint bucket: briefly when batches are stored (the stream was
//     last written by an older writer, or the topic is compacted), and if the
//     bucket does not answer in time, a replay of the log's last tailReplay
//     batches; without a bound when every batch aged out, since only the bucket
//     knows the offsets then.
func (w *writer) loadCheckpoint(ctx context.Context, st partition.StreamState, local *leaderStore) (ck semantics.Checkpoint, bucket bool, err error) {
	if st.LastSeq == 0 {
		return semantics.Checkpoint{}, false, nil
	}
	if st.Msgs > 0 && !w.cfg.Load().Compact {
		// While JetStream's meta group has no leader, a replica's latest: an
		// earlier checkpoint from one behind the leader serves as well, the
		// replay after it reading the leader's batches.
		m, err := w.lastOn(ctx, local, semantics.CheckpointSubject(w.topic, w.p))
		switch {
		case err == nil && m.Seq >= st.FirstSeq:
			var ck semantics.Checkpoint
			if jerr := json.Unmarshal([]byte(m.Header.Get(semantics.CheckpointHeader)), &ck); jerr == nil && ck.Seq == m.Seq {
				return ck, false, nil
			}
			w.log.Warn("stored checkpoint is unreadable; using the checkpoint bucket")
		case err == nil, errors.Is(err, semantics.ErrNoBatch):
		default:
			return semantics.Checkpoint{}, false, err
		}
	}
	if st.Msgs == 0 {
		ck, err = w.checkpoints.getCheckpoint(ctx, w.topicID, w.p)
		return ck, true, err
	}
	bctx, cancel := context.WithTimeout(ctx, bucketFallbackTimeout)
	ck, err = w.checkpoints.getCheckpoint(bctx, w.topicID, w.p)
	cancel()
	if err == nil || ctx.Err() != nil {
		return ck, true, err
	}
	w.log.Warn("checkpoint bucket did not answer; loading from the log's tail", "err", err)
	if st.LastSeq-st.FirstSeq >= tailReplay {
		return semantics.Checkpoint{Seq: st.LastSeq - tailReplay}, false, nil
	}
	return semantics.Checkpoint{}, false, nil
}

// streamCheckpointLocked encodes the writer's state after the append it is about
// to send at stream sequence seq, ending before offset next, for that append's
// CheckpointHeader. Every batch sent before it is counted, acknowledged or not: the
// append lands only right behind them (see the fence), so wherever it is stored,
// the state it carries is the log's. Called with mu held.
func (w *writer) streamCheckpointLocked(seq uint64, next int64, sentMax semantics.TimestampMark) []byte {
	ck := semantics.Checkpoint{Seq: seq, Next: next, Producers: make(map[int64]semantics.ProducerCheckpoint, len(w.producers))}
	if w.maxKnown {
		ck.MaxTimestamp = &sentMax
	}
	now := time.Now()
	for id, ps := range w.producers {
		if now.Sub(ps.seen) > w.producerIdle && !ps.inTxn || len(ps.recent) == 0 {
			continue
		}
		var earlier []semantics.BatchMeta
		for _, r := range ps.recent[:len(ps.recent)-1] {
			earlier = append(earlier, semantics.BatchMeta{BaseSeq: r.baseSeq, LastSeq: r.lastSeq, BaseOffset: r.baseOffset})
		}
		last := ps.recent[len(ps.recent)-1]
		pc := semantics.ProducerCheckpoint{Epoch: ps.epoch, BaseSeq: last.baseSeq, LastSeq: last.lastSeq,
			BaseOffset: last.baseOffset, Earlier: earlier, Seen: ps.seen.UnixMilli()}
		if ps.inTxn {
			first := ps.txnFirst
			pc.TxnFirst = &first
		}
		ck.Producers[id] = pc
	}
	b, err := json.Marshal(ck)
	if err != nil {
		return nil
	}
	return b
}

func (ps *producerState) remember(rb *recentBatch) {
	if len(ps.recent) == recentBatches {
		copy(ps.recent, ps.recent[1:])
		ps.recent = ps.recent[:recentBatches-1]
	}
	ps.recent = append(ps.recent, rb)
}

// addSeq adds n to a producer sequence, wrapping at MaxInt32 to 0 as Kafka does.
func addSeq(s int32, n int32) int32 {
	return int32((int64(s) + int64(n)) % (math.MaxInt32 + 1))
}

// seqBehind reports whether s comes before ref in wrapping sequence order.
func seqBehind(s, ref int32) bool {
	d := (int64(ref) - int64(s) + math.MaxInt32 + 1) % (math.MaxInt32 + 1)
	return d > 0 && d < math.MaxInt32/2
}

func (w *writer) reply(to answer, r semantics.ProduceReply) {
	w.obs.answered("produce", r.Code)
	switch {
	case to.done != nil:
		to.done(r)
	case to.subject != "":
		_ = w.nc.Publish(to.subject, semantics.AppendProduceReply(nil, r))
	}
}

func (w *writer) replyErr(to answer, err error) {
	if to.none() {
		if err != nil {
			w.log.Debug("produce without ack failed", "err", err)
		}
		return
	}
	w.reply(to, semantics.ProduceReply{Code: semantics.CodeOf(err), BaseOffset: -1, Detail: err.Error()})
}

// onProduce is the NATS door of the writer: one request on the partition's writer
// subject, answered on its reply subject. nats.go calls it from one goroutine, in
// the order requests arrived, which is what gives a producer's batches their order.
func (w *writer) onProduce(m *nats.Msg) {
	w.produce(m.Data, answer{subject: m.Reply})
}

// produce takes one record batch, appends it and answers to when it is stored (or
// refused). It returns once the batch is sent to the stream, not when it is stored,
// so a caller may pipeline; requests are taken in the order produce is called. It
// patches the batch's base offset in place.
func (w *writer) produce(data []byte, to answer) {
	h, err := semantics.ParseBatchHeader(data)
	if err != nil {
		w.replyErr(to, semantics.Errorf(semantics.ErrCorruptMessage, "partition %s: %v", w.name(), err))
		return
	}
	cfg := w.cfg.Load()
	if err := checkTxnBatch(w.name(), h, cfg); err != nil {
		w.replyErr(to, err)
		return
	}
	if len(data) > int(cfg.MaxMessageBytes) {
		w.replyErr(to, semantics.Errorf(semantics.ErrMessageTooLarge,
			"partition %s: batch of %d bytes is over the topic's max message bytes (%d): send smaller batches or raise max.message.bytes",
			w.name(), len(data), cfg.MaxMessageBytes))
		return
	}
	var parts []part
	if cfg.Compact {
		parts, err = splitCompacted(w.topic, w.p, data, h, cfg)
		if err != nil {
			w.replyErr(to, err)
			return
		}
	} else {
		parts = []part{{subject: semantics.BatchSubject(w.topic, w.p), data: data, records: int64(h.NumRecords)}}
	}

	w.in.Lock()
	defer w.in.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	rechecked := false
	for {
		if !w.readyLocked(to) {
			return
		}
		ps, rb, rest, verdict := w.admitLocked(to, h, cfg, parts)
		if verdict.ahead() && !rechecked {
			// The producer is ahead of what this writer knows. That happens when
			// another writer appended just before this one took over: look at the
			// log before refusing, and reload if it moved.
			rechecked = true
			if w.logMovedLocked() {
				w.broken = true
			}
			continue
		}
		switch verdict {
		case admitDuplicate:
			w.replyErr(to, semantics.Errorf(semantics.ErrDuplicateSequence,
				"partition %s: producer %d sequence %d is already stored", w.name(), h.ProducerID, h.BaseSequence))
			return
		case admitOutOfOrder:
			w.replyErr(to, semantics.Errorf(semantics.ErrOutOfOrderSequence,
				"partition %s: producer %d sent sequence %d, expected %d", w.name(), h.ProducerID, h.BaseSequence, addSeq(ps.lastSeq, 1)))
			return
		case admitUnknownProducer:
			w.replyErr(to, semantics.Errorf(semantics.ErrUnknownProducerID,
				"partition %s: producer %d is unknown here and its batch begins at sequence %d, not 0: its earlier batches are not stored (yet)",
				w.name(), h.ProducerID, h.BaseSequence))
			return
		case admitNewEpochGap:
			w.replyErr(to, semantics.Errorf(semantics.ErrOutOfOrderSequence,
				"partition %s: producer %d epoch %d begins at sequence %d, expected 0 (a new epoch starts its sequences over)",
				w.name(), h.ProducerID, h.ProducerEpoch, h.BaseSequence))
			return
		case admitAnswered:
			return
		}
		if h.Transactional() {
			w.txnBatchLocked(h.ProducerID, ps)
		}
		w.appendLocked(to, h, ps, rb, rest)
		return
	}
}

// readyLocked reloads the writer's state if an append failed, and reports whether the
// writer can take a request; if not, it has answered it. Called with mu held; it
// releases mu while it reloads.
func (w *writer) readyLocked(reply answer) bool {
	if w.broken && !w.closed && !w.leadsLocked(reply) {
		// No reload on a node that no longer leads: it would wait on a stream
		// between leaders and hold up the writer's stop, and with it the start
		// of the writers of streams this node leads again.
		return false
	}
	for w.broken && !w.closed {
		if len(w.pending) > 0 {
			w.idle.Wait()
			continue
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() { // a stop ends the reload: the writer is going away
			select {
			case <-w.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := w.load(ctx)
		cancel()
		w.mu.Lock()
		if err != nil {
			w.replyErr(reply, semantics.Errorf(semantics.ErrUnavailable, "partition %s: reload after a failed append: %v", w.name(), err))
			return false
		}
		w.log.Info("writer reloaded from the log", "offset", w.next)
	}
	if w.closed {
		w.replyErr(reply, semantics.Errorf(semantics.ErrNotLeader, "partition %s: writer is stopping; retry", w.name()))
		return false
	}
	return w.leadsLocked(reply)
}

// leadsLocked reports whether this node leads the writer's stream (always, for one
// replica); if not, it answers reply NOT_LEADER and has the manager catch up at once.
func (w *writer) leadsLocked(reply answer) bool {
	if w.cfg.Load().Replicas > 1 && !w.leads.isStreamLeader(semantics.StreamName(w.topic, w.p)) {
		// The stream's leadership moved and the manager has not stopped this writer
		// yet: append nothing more, and let the manager catch up at once.
		w.replyErr(reply, semantics.Errorf(semantics.ErrNotLeader, "partition %s: this node no longer leads it; retry", w.name()))
		if w.lost != nil {
			w.lost()
		}
		return false
	}
	return true
}

// logMovedLocked waits for the appends in flight and reports whether the stream's
// last sequence differs from the writer's: someone else appended. Called with mu
// held; it releases mu while it asks.
func (w *writer) logMovedLocked() bool {
	for len(w.pending) > 0 && !w.broken && !w.closed {
		w.idle.Wait()
	}
	if w.broken || w.closed {
		return false
	}
	last := w.lastSeq
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
	st, err := w.reader.StreamInfo(ctx)
	cancel()
	w.mu.Lock()
	return err == nil && w.lastSeq == last && st.LastSeq != last
}

type admitVerdict int

const (
	admitAppend          admitVerdict = iota // append the batch
	admitAnswered                            // a resend of a batch in the recent window: answered
	admitDuplicate                           // stored before, outside the recent window
	admitOutOfOrder                          // the producer's sequence is ahead of the expected one
	admitUnknownProducer                     // a producer the writer does not know, not at sequence 0
	admitNewEpochGap                         // a new epoch of the producer, not at sequence 0
)

// ahead reports whether the verdict refuses a batch that is ahead of what the
// writer knows of its producer: the log may hold what the writer missed.
func (v admitVerdict) ahead() bool {
	return v == admitOutOfOrder || v == admitUnknownProducer || v == admitNewEpochGap
}

// admitLocked checks an idempotent producer's epoch and sequence and, when the batch is
// to be appended, records it as the producer's latest. It returns the parts still to
// append: a compacted batch whose first records are stored appends only the rest.
// Called with mu held.
func (w *writer) admitLocked(reply answer, h semantics.BatchHeader, cfg *semantics.TopicConfig, parts []part) (*producerState, *recentBatch, []part, admitVerdict) {
	if h.ProducerID < 0 {
		return nil, nil, parts, admitAppend
	}
	last := addSeq(h.BaseSequence, h.NumRecords-1)
	ps := w.producers[h.ProducerID]
	if ps != nil && !ps.inTxn && time.Since(ps.seen) > w.producerIdle {
		// Forgotten: idle past the expiration, whether or not this writer has
		// dropped it from its state yet. Every writer judges a producer by when
		// it was last stored, so one whose state a load rebuilt from the log
		// agrees with the one that refused the producer as unknown: a producer
		// that then starts over at sequence 0 is stored, not answered as a
		// duplicate of what it sent a day before.
		delete(w.producers, h.ProducerID)
		ps = nil
	}
	switch {
	case ps == nil || h.ProducerEpoch > ps.epoch:
		// As Kafka's ProducerStateManager: a producer's first batch, and the first
		// of a new epoch, begin at sequence 0. A later batch that came first (its
		// predecessors were sent to a writer that was not listening yet, and are
		// resent) would otherwise start the producer's state, and the resends of
		// the earlier ones be taken for duplicates: acknowledged, never stored.
		if h.BaseSequence != 0 {
			if ps == nil {
				return nil, nil, nil, admitUnknownProducer
			}
			return ps, nil, nil, admitNewEpochGap
		}
		ps = &producerState{epoch: h.ProducerEpoch}
		w.producers[h.ProducerID] = ps
	case h.ProducerEpoch < ps.epoch:
		w.replyErr(reply, semantics.Errorf(semantics.ErrInvalidProducerEpoch,
			"partition %s: producer %d epoch %d is older than epoch %d", w.name(), h.ProducerID, h.ProducerEpoch, ps.epoch))
		return ps, nil, nil, admitAnswered
	default:
		for _, r := range ps.recent {
			if r.baseSeq == h.BaseSequence && r.lastSeq == last {
				if r.pending {
					w.replyErr(reply, semantics.Errorf(semantics.ErrUnavailable, "partition %s: batch is still being stored; retry", w.name()))
				} else {
					w.reply(reply, semantics.ProduceReply{BaseOffset: r.baseOffset})
				}
				return ps, nil, nil, admitAnswered
			}
		}
		want := addSeq(ps.lastSeq, 1)
		if h.BaseSequence != want {
			if !seqBehind(h.BaseSequence, want) {
				return ps, nil, nil, admitOutOfOrder
			}
			if !cfg.Compact || !seqBehind(last, want) {
				// A resend of a batch that is stored: Kafka's DUPLICATE_SEQUENCE_NUMBER.
				return ps, nil, nil, admitDuplicate
			}
			// A compacted batch whose first records are stored: append the rest.
			skip := int(int64(want) - int64(h.BaseSequence))
			if skip < 0 {
				skip += math.MaxInt32 + 1
			}
			if skip >= len(parts) {
				return ps, nil, nil, admitDuplicate
			}
			parts = parts[skip:]
		}
	}
	ps.lastSeq = last
	ps.seen = time.Now()
	rb := &recentBatch{baseSeq: h.BaseSequence, lastSeq: last, pending: true}
	ps.remember(rb)
	return ps, rb, parts, admitAppend
}

// appendLocked gives parts their offsets and sends them to the stream, chained behind
// the previous append. Called with mu held.
func (w *writer) appendLocked(reply answer, h semantics.BatchHeader, ps *producerState, rb *recentBatch, parts []part) {
	id := w.nextID
	w.nextID++
	pa := &pendingAppend{reply: reply, base: w.next, parts: len(parts), sent: time.Now(), pid: h.ProducerID, rb: rb, marker: parts[0].marker,
		max: semantics.NoTimestampMark}
	if rb != nil {
		rb.baseOffset = w.next
	}
	ackTo := w.ackPrefix + strconv.FormatUint(id, 10)
	cfg := w.cfg.Load()
	replicated := cfg.Replicas > 1
	var ck []byte
	if !cfg.Compact && len(parts) == 1 && parts[0].marker == nil && time.Since(w.ckAt) >= checkpointEvery {
		// This append carries the writer's state into the stream, on the
		// checkpoint subject, if it fits the message size limits.
		ck = w.streamCheckpointLocked(w.lastSeq+1, w.next+parts[0].records,
			w.sentMax.Fold(semantics.TimestampMark{Timestamp: h.MaxTimestamp, BaseOffset: w.next, Seq: w.lastSeq + 1}))
		limit := min(int64(cfg.MaxMessageBytes)+4096, w.nc.MaxPayload())
		if int64(len(parts[0].data)+len(ck)+checkpointRoom) > limit {
			ck = nil
		}
	}
	for _, pt := range parts {
		semantics.SetBaseOffset(pt.data, w.next)
		semantics.SetLeaderEpoch(pt.data, w.epoch)
		msgID := w.chain + strconv.FormatUint(w.lastSeq+1, 36)
		msg := &nats.Msg{Subject: pt.subject, Reply: ackTo, Data: pt.data, Header: nats.Header{}}
		if ck != nil {
			msg.Subject = semantics.CheckpointSubject(w.topic, w.p)
			msg.Header[semantics.CheckpointHeader] = []string{string(ck)}
			w.ckAt = time.Now()
		}
		msg.Header["Nats-Msg-Id"] = []string{msgID}
		if w.lastMsgID == "" || replicated {
			msg.Header["Nats-Expected-Last-Sequence"] = []string{strconv.FormatUint(w.lastSeq, 10)}
		} else {
			msg.Header["Nats-Expected-Last-Msg-Id"] = []string{w.lastMsgID}
		}
		if pt.marker != nil && pt.marker.had && !pt.marker.commit {
			msg.Header[semantics.TxnFirstHeader] = []string{strconv.FormatInt(pt.marker.first, 10)}
		}
		if pt.ttl > 0 {
			msg.Header["Nats-TTL"] = []string{strconv.FormatInt(int64(pt.ttl/time.Second), 10) + "s"}
		}
		if err := w.nc.PublishMsg(msg); err != nil {
			w.broken = true
			w.failPending(semantics.Errorf(semantics.ErrUnavailable, "partition %s: append: %v", w.name(), err))
			w.replyErr(reply, semantics.Errorf(semantics.ErrUnavailable, "partition %s: append: %v", w.name(), err))
			return
		}
		w.lastMsgID = msgID
		w.lastSeq++
		if pt.marker == nil {
			// The batch as stored: its base offset is set, its timestamps are the
			// producer's.
			if ph, err := semantics.PeekBatchHeader(pt.data); err == nil {
				pa.max = pa.max.Fold(semantics.TimestampMark{Timestamp: ph.MaxTimestamp, BaseOffset: ph.BaseOffset, Seq: w.lastSeq})
			}
		}
		w.next += pt.records
		pa.count += pt.records
		pa.bytes += len(pt.data)
	}
	pa.lastSeq = w.lastSeq
	w.sentMax = w.sentMax.Fold(pa.max)
	w.pending[id] = pa
}

// newChainID returns a prefix for a writer's message ids, unique per load.
func newChainID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}

type part struct {
	subject string
	data    []byte
	records int64
	ttl     time.Duration
	marker  *markerAppend
}

// splitCompacted turns a batch for a compacted topic into one single-record batch per
// record, each on its key's subject, so that MaxMsgsPerSubject keeps the latest per
// key. A record without a key is refused, as Kafka does.
func splitCompacted(topic string, p int32, data []byte, h semantics.BatchHeader, cfg *semantics.TopicConfig) ([]part, error) {
	recs, err := semantics.DecodeRecords(nil, data, topic, p)
	if err != nil {
		return nil, semantics.Errorf(semantics.ErrCorruptMessage, "partition %s: %v", semantics.PartitionString(topic, p), err)
	}
	parts := make([]part, 0, len(recs))
	var b semantics.BatchBuilder
	for i := range recs {
		r := &recs[i]
		if r.Key == nil {
			return nil, semantics.Errorf(semantics.ErrInvalidRecord,
				"partition %s: record %d has no key: a compacted topic keeps the latest record per key, so every record needs one", semantics.PartitionString(topic, p), i)
		}
		b.Reset()
		b.Append(r)
		pi := semantics.NoProducer
		if h.ProducerID >= 0 {
			pi = semantics.ProducerInfo{ID: h.ProducerID, Epoch: h.ProducerEpoch, BaseSequence: addSeq(h.BaseSequence, int32(i))}
		}
		out, err := b.Build(nil, pi, h.Compression())
		if err != nil {
			return nil, err
		}
		pt := part{subject: semantics.KeySubject(topic, p, r.Key), data: out, records: 1}
		if r.Value == nil {
			pt.ttl = cfg.DeleteRetention
		}
		parts = append(parts, pt)
	}
	return parts, nil
}

type pubAck struct {
	Seq   uint64 `json:"seq"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// onAck handles JetStream's answer to one append.
func (w *writer) onAck(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[len(w.ackPrefix):], 10, 64)
	if err != nil {
		return
	}
	var ack pubAck
	jerr := json.Unmarshal(m.Data, &ack)
	if jerr == nil && ack.Error == nil && ack.Seq == 0 {
		jerr = errors.New("ack without sequence")
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		jerr = errors.New("no JetStream responders")
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	pa := w.pending[id]
	if pa == nil {
		return // failed already; the log is the truth
	}
	if jerr != nil || ack.Error != nil {
		detail := ""
		if jerr != nil {
			detail = jerr.Error()
		} else {
			detail = fmt.Sprintf("%s (JetStream error %d)", ack.Error.Description, ack.Error.ErrCode)
		}
		if jerr == nil && behindLeader(ack.Error.ErrCode, ack.Error.Description, w.acked.Seq) {
			// A former leader's answer: see behindLeader. The leader answers too.
			w.log.Debug("append answered by a former leader of the stream; awaiting the leader's answer", "err", detail)
			return
		}
		w.log.Warn("append failed; reloading from the log", "err", detail)
		w.broken = true
		w.failPending(semantics.Errorf(semantics.ErrNotLeader, "partition %s: append failed: %s; retry", w.name(), detail))
		return
	}
	pa.parts--
	if pa.parts > 0 {
		return
	}
	delete(w.pending, id)
	if pa.rb != nil {
		pa.rb.pending = false
	}
	if pa.marker != nil {
		w.markerStoredLocked(pa)
	}
	if ack.Seq >= w.acked.Seq {
		w.acked.Seq = ack.Seq
		w.acked.Next = pa.base + pa.count
		w.dirty = true
	}
	w.maxTS = w.maxTS.Fold(pa.max)
	if len(w.pending) == 0 {
		w.idle.Broadcast()
	}
	w.keepDurabilityLocked(w.cfg.Load(), false)
	w.obs.appended(w.topic, w.p, pa.count, pa.bytes, time.Since(pa.sent))
	w.reply(pa.reply, semantics.ProduceReply{BaseOffset: pa.base, LogAppendTime: time.Now()})
}

// wrongLastSeq is JetStream's error code for an append whose
// Nats-Expected-Last-Sequence is not the stream's last sequence; its description
// ends with the last sequence the answering server counts ("wrong last sequence:
// 200").
var wrongLastSeq = natsserver.ApiErrors[natsserver.JSStreamWrongLastSequenceErrF].ErrCode

// behindLeader tells whether an append's error answer came from a server whose
// view of the stream is behind the log the writer knows: a wrong-last-sequence
// answer counting fewer messages than the writer saw acknowledged (or loaded),
// which the stream's leader, whose log never shrinks, cannot give. A leader cut
// off from its peers goes on counting itself the stream's leader, subscribed to
// its subjects, until it hears of the newer term after the heal; in that window
// it answers every append with its old last sequence, beside the leader's own
// answer. Taken as the writer's failure, that answer failed every append in
// flight and reloaded the writer over and over for up to a second after a heal,
// stalling partitions led by healthy nodes.
func behindLeader(code int, description string, known uint64) bool {
	if code != int(wrongLastSeq) {
		return false
	}
	i := strings.LastIndexByte(description, ' ')
	n, err := strconv.ParseUint(description[i+1:], 10, 64)
	return err == nil && n < known
}

// onLeaderElected handles JetStream's advisory that the stream elected a leader,
// this node or another. An append sent before the election that is still in flight
// was proposed in an older term, and JetStream answers none of those (a leader that
// steps down drops its proposals' replies): fail them now, so that their producers
// resend at once (an idempotent producer's resend of a stored batch is answered as
// the duplicate it is), rather than after ackTimeout. A node woken from a pause, or
// back from a cut, makes the healthy leaders of the groups it shares step down; here
// that costs a resend, not a request timeout.
func (w *writer) onLeaderElected(m *nats.Msg) {
	var adv natsserver.JSStreamLeaderElectedAdvisory
	if err := json.Unmarshal(m.Data, &adv); err != nil || adv.Time.IsZero() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	stale := false
	for _, pa := range w.pending {
		if pa.sent.Before(adv.Time) {
			stale = true
			break
		}
	}
	if !stale || w.closed {
		return
	}
	w.log.Info("stream elected a leader while appends were in flight; failing them for a resend", "node", adv.Leader)
	w.broken = true
	w.failPending(semantics.Errorf(semantics.ErrNotLeader, "partition %s: the stream elected a leader (%s) while the append was in flight; retry", w.name(), adv.Leader))
	if w.lost != nil {
		w.lost()
	}
}

// failPending answers every append in flight with err. Called with mu held.
func (w *writer) failPending(err error) {
	for id, pa := range w.pending {
		w.replyErr(pa.reply, err)
		delete(w.pending, id)
	}
	w.idle.Broadcast()
}

// background times out stuck appends, and, on its own goroutine so that a slow
// bucket never delays a timeout, writes checkpoints to the bucket: at most one a
// second while busy, and the first after a quiet spell at once, so that the offsets
// of a partition that then goes idle are recorded long before its records can age
// out.
func (w *writer) background() {
	defer w.wg.Done()
	w.wg.Add(1)
	go w.bucketCheckpoints()
	t := time.NewTicker(checkpointSoon)
	defer t.Stop()
	// resumed is when the loop last found that its node had not run (a tick
	// lateTick late: the node was paused, SIGSTOP). Appends in flight then
	// waited on this node, not on the cluster: their ackTimeout counts from
	// there. Woken, the node soon learns whether it still leads the stream
	// (its RAFT group hears from the others): if not, the check below answers
	// them NOT_LEADER, which sends Kafka clients to the new leader at once,
	// where a timeout had them resend to this node.
	var resumed time.Time
	last := time.Now()
	for {
		select {
		case <-w.done:
			return
		case <-w.durChanged:
			w.mu.Lock()
			w.keepDurabilityLocked(w.cfg.Load(), true)
			w.mu.Unlock()
			continue
		case <-t.C:
		}
		if time.Since(last) > lateTick {
			resumed = time.Now()
		}
		last = time.Now()
		w.mu.Lock()
		if len(w.pending) > 0 && w.cfg.Load().Replicas > 1 && !w.leads.isStreamLeader(semantics.StreamName(w.topic, w.p)) {
			// The stream's leader stepped down (a node woke from a pause or came
			// back from a cut and called an election): it answers none of the
			// appends it proposed. Fail them now for a resend, not after ackTimeout.
			w.log.Info("stream leadership lost with appends in flight; failing them for a resend")
			w.broken = true
			w.failPending(semantics.Errorf(semantics.ErrNotLeader, "partition %s: this node stopped leading it while the append was in flight; retry", w.name()))
			if w.lost != nil {
				w.lost()
			}
		}
		if w.noDurabilityTick == nil || !w.noDurabilityTick.Load() {
			w.keepDurabilityLocked(w.cfg.Load(), true)
		}
		for _, pa := range w.pending {
			if time.Since(pa.sent) > ackTimeout && time.Since(resumed) > ackTimeout {
				w.log.Warn("append not acknowledged in time; reloading from the log")
				w.broken = true
				w.failPending(semantics.Errorf(semantics.ErrTimeout, "partition %s: append not acknowledged within %v; retry", w.name(), ackTimeout))
				break
			}
		}
		w.mu.Unlock()
	}
}

func (w *writer) bucketCheckpoints() {
	defer w.wg.Done()
	// A put in progress ends when the writer stops, which writes the last one.
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		<-w.done
		stop()
	}()
	t := time.NewTicker(checkpointSoon)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		if time.Since(last) < checkpointEvery {
			continue
		}
		ctx, cancel := context.WithTimeout(base, 5*time.Second)
		if w.checkpoint(ctx) {
			last = time.Now()
		}
		cancel()
	}
}

// checkpoint writes the position after the last acknowledged append and the producer
// state, if either changed; it reports whether it wrote.
func (w *writer) checkpoint(ctx context.Context) bool {
	w.mu.Lock()
	if !w.dirty {
		w.mu.Unlock()
		return false
	}
	ck := semantics.Checkpoint{Seq: w.acked.Seq, Next: w.acked.Next, Producers: map[int64]semantics.ProducerCheckpoint{}}
	if w.maxKnown {
		m := w.maxTS
		ck.MaxTimestamp = &m
	}
	now := time.Now()
	for id, ps := range w.producers {
		if now.Sub(ps.seen) > w.producerIdle && !ps.inTxn { // an open transaction keeps its producer
			delete(w.producers, id)
			continue
		}
		// Only batches covered by the checkpoint: later ones are replayed from the log.
		var covered []semantics.BatchMeta
		for _, r := range ps.recent {
			if !r.pending && r.baseOffset < ck.Next {
				covered = append(covered, semantics.BatchMeta{BaseSeq: r.baseSeq, LastSeq: r.lastSeq, BaseOffset: r.baseOffset})
			}
		}
		if n := len(covered); n > 0 {
			last := covered[n-1]
			ck.Producers[id] = semantics.ProducerCheckpoint{Epoch: ps.epoch, BaseSeq: last.BaseSeq, LastSeq: last.LastSeq,
				BaseOffset: last.BaseOffset, Earlier: covered[:n-1], Seen: ps.seen.UnixMilli(), TxnFirst: w.openBefore(id, ck.Next)}
		}
	}
	w.dirty = false
	w.mu.Unlock()
	if err := w.checkpoints.putCheckpoint(ctx, w.topicID, w.p, ck); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, context.Canceled) {
			// The node is stopping without a quorum and says so itself, or the
			// writer is stopping and writes its last checkpoint next.
			w.log.Debug("checkpoint failed", "err", err)
		} else {
			w.log.Warn("checkpoint failed", "err", err)
		}
		w.mu.Lock()
		w.dirty = true
		w.mu.Unlock()
		return false
	}
	return true
}

// storedAt is when a replayed batch was stored: the stream's own time, which the
// producer's record timestamps (a backfill may carry old ones) cannot skew, else
// the batch's largest timestamp.
func storedAt(m partition.Msg, h semantics.BatchHeader) time.Time {
	if !m.Time.IsZero() {
		return m.Time
	}
	return time.UnixMilli(h.MaxTimestamp)
}

// keepDurabilityLocked keeps the partition's store on this node at the topic's
// durability (store_durability.go): it applies a durability not applied yet
// (the writer started, the topic was altered, the stream's store changed), and,
// on a node that syncs always, sets a store of a sync topic that does not fsync
// every write back to syncing, flushed and fsynced, before the caller goes on to
// acknowledge an append. tick also puts back a store that drifted the safe way
// (JetStream made an async topic's store sync when its stream's config changed).
// Called with mu held: at start, before each acknowledgement, on each
// background tick, and as soon as the topic's config changes its durability
// (setConfig). A replicated partition's store is JetStream's to keep.
//
// Before an acknowledgement of a sync topic's append it also looks whether the
// store it set is still the stream's: a stream deleted and created again (by
// hand, or by a restore) has a new store, which JetStream sets up as the
// stream's config says, async for one made with persist mode async, and the
// append just acknowledged by JetStream went there. JetStream stops a store
// before the stream that replaces it exists, so the old one's closed flag, one
// more atomic load, tells: the writer then finds the new store and sets it to
// sync, flushed and fsynced, before the producer hears of the append. Not done
// for an async topic: a new store there syncs (the safe way) or is async as
// asked, and the next tick finds it.
func (w *writer) keepDurabilityLocked(cfg *semantics.TopicConfig, tick bool) {
	if w.stores == nil || cfg.Replicas > 1 {
		return
	}
	want := cfg.DurabilityOrDefault()
	if !tick {
		switch {
		case w.store != nil && w.durApplied == want &&
			(want == semantics.DurabilityAsync || (!w.store.closed() && (!w.syncAlways || w.store.syncsAlways()))):
			// The common case, lock-free.
			return
		case w.store == nil && w.durFixed != "":
			// A store qxd cannot set (storeSyncOf): nothing to do before an
			// acknowledgement; the next tick looks again.
			return
		}
	}
	s, fixed, why := w.stores(w.stream, w.store)
	if s == nil {
		w.store, w.durApplied, w.durFixed = nil, "", fixed
		if fixed != "" && fixed != want && !w.durOff {
			w.durOff = true
			w.log.Warn("topic durability not applied: the partition's store writes as JetStream set it up", "durability", fixed, "err", why)
		}
		return
	}
	w.durFixed = ""
	if s != w.store {
		w.store, w.durApplied = s, ""
		if s.legacy {
			w.log.Info("partition stream created with JetStream's persist mode async: qxd keeps its store at the topic's durability")
		}
	}
	switch {
	case w.durApplied != want:
	case want == semantics.DurabilitySync && w.syncAlways && !s.syncsAlways():
		w.log.Warn("partition store stopped syncing every append (JetStream set its stream's persist mode back); syncing it before acknowledging")
	case tick && !s.is(want == semantics.DurabilityAsync, w.syncAlways):
	default:
		return
	}
	if why := s.apply(want == semantics.DurabilityAsync, w.syncAlways); why != "" {
		if why == errReplicated {
			return // scaled up for a move: JetStream keeps it, with its RAFT log
		}
		if !w.durOff {
			w.durOff = true
			w.log.Warn("topic durability not applied to the partition's store", "err", why)
		}
		return
	}
	if w.durApplied != want {
		w.log.Debug("partition durability applied", "durability", want)
	}
	w.durApplied, w.durOff = want, false
}

// durability is the partition's durability as its store on this node writes
// now ("" when no store is found), and, when that is not the topic's and will
// not become it, why: this node cannot set the store (storeSyncOf). A
// replicated partition's is sync.
func (w *writer) durability() (d, why string) {
	cfg := w.cfg.Load()
	if cfg.Replicas > 1 {
		return semantics.DurabilitySync, ""
	}
	if w.stores == nil {
		return "", ""
	}
	// Under the writer's lock, which a durability being applied holds until its
	// flush and fsync are done: sync is not reported before.
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.store
	if s == nil || s.closed() {
		// None found yet, none qxd can set, or the stream was created again
		// since the writer looked: what the stream's store writes now. Reads
		// only: the writer sets a new store at its next tick or append.
		var fixed string
		if s, fixed, why = w.stores(w.stream, nil); s == nil {
			if fixed == "" || fixed == cfg.DurabilityOrDefault() {
				return fixed, ""
			}
			if fixed == semantics.DurabilityAsync {
				why += "; the stream was created with JetStream's persist mode async, which its store keeps"
			}
			return fixed, fmt.Sprintf("node %s cannot set its store of the partition to %s: %s", w.node, cfg.DurabilityOrDefault(), why)
		}
	}
	return s.effective(w.syncAlways), ""
}
