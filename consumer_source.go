// The consumer's per-partition source: where a partition's read starts (a start
// position resolved to an offset and a stream sequence), and the fetcher that reads
// its stream and hands decoded records to Poll. The producer's per-partition sink is
// producer_partition.go.

package qxd

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// partSource is one assigned partition of a consumer: its position and its fetcher.
type partSource struct {
	tp        TopicPartition
	meta      semantics.TopicMeta
	reader    *partition.Reader
	gen       uint64
	next      int64 // next offset Poll returns
	delivered bool  // Poll returned records of it (its position moved)
	// consumed is the position as of the last Poll call's start: the application
	// asked for more, so it is done with what came before. Auto-commit commits it.
	consumed    int64
	hasConsumed bool
	// marked is the offset after the last record marked with MarkCommitRecords;
	// with AutoCommitMarks, auto-commit commits it.
	marked    int64
	hasMarked bool
	paused    bool
	// eofSent: PollFetches reported the partition at its end, and has delivered
	// nothing of it since.
	eofSent bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type chunk struct {
	pc   *partSource
	gen  uint64
	recs []Record
	err  error
	// eof: when it was read, the stream held nothing after the chunk's last
	// record (or, with no records, after the read's start).
	eof bool
	// skipTo, in a chunk without records: the read passed batches that hold
	// none for the application (transaction markers, aborted transactions'
	// records), up to this offset: the position moves there.
	skipTo int64
}

// newPartSource returns the source of partition p of the topic meta describes,
// not yet reading.
func newPartSource(c *Client, meta semantics.TopicMeta, p int32, direct bool) *partSource {
	return &partSource{tp: TopicPartition{Topic: meta.Name, Partition: p}, meta: meta,
		reader: partition.NewReader(c.nc, meta.Name, p, direct)}
}

// readOffsets reads the partition's log start and high watermark.
func (pc *partSource) readOffsets(ctx context.Context, c *Client) (partition.Offsets, error) {
	return pc.reader.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
		return c.checkpointNext(ctx, pc.meta, pc.tp.Partition)
	})
}

// startResolver turns a start position (Offset) into an offset of a partition and
// the stream sequence of the batch holding it, applying a reset policy to an offset
// that is not stored. The consumer resolves its partitions' starts with it, and
// Admin.SeekGroupOffsets a group's new positions.
type startResolver struct {
	c     *Client
	reset ResetPolicy
	group string // the group whose missing commit offsetNone reports
	// committed: the end is the last stable offset (read-committed)
	committed bool
}

// resolveRetrying is resolve, asked again while the partition is between leaders (a
// read timed out, or nothing answered): right after a node is lost, its partitions
// answer again once new leaders are elected. It gives up when ctx ends, or after the
// client's request timeout (ClientRequestTimeout) if ctx has no deadline.
func (sr startResolver) resolveRetrying(ctx context.Context, pc *partSource, o Offset) (int64, uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sr.c.cfg.reqTimeout)
		defer cancel()
	}
	for {
		off, seq, err := sr.resolve(ctx, pc, o)
		if err == nil || ctx.Err() != nil || !semantics.IsRetriable(err) {
			return off, seq, err
		}
		select {
		case <-ctx.Done():
			return off, seq, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// resolve turns o into an offset of pc and the stream sequence of the batch holding
// it.
func (sr startResolver) resolve(ctx context.Context, pc *partSource, o Offset) (int64, uint64, error) {
	offs, err := pc.readOffsets(ctx, sr.c)
	if err != nil {
		return 0, 0, err
	}
	var want int64
	switch o.kind {
	case offsetNone:
		return 0, 0, semantics.Errorf(semantics.ErrOffsetOutOfRange,
			"partition %s: group %q has no committed offset and the reset policy is none: seek the group, or use reset earliest or latest",
			pc.tp, sr.group)
	case offsetStart:
		want = offs.LogStart
	case offsetEnd:
		if want, err = sr.end(ctx, pc, offs.HighWatermark); err != nil {
			return 0, 0, err
		}
	case offsetAt:
		want = o.at
		// A high watermark read from a replica (the stream between leaders, or
		// its leader's last batch not given) may be behind the leader's: an
		// offset past it, one a group committed, is the leader's to judge, and
		// the read starts there (after the last batch seen, skipping records
		// before want) rather than at the reset policy's start.
		if want > offs.HighWatermark && offs.Behind {
			sr.c.log.Debug("start offset past a high watermark read from a replica: reading from it", "topic", pc.tp.Topic, "partition", pc.tp.Partition, "offset", want)
		}
		if want < offs.LogStart || want > offs.HighWatermark && !offs.Behind {
			switch sr.reset {
			case ResetEarliest:
				want = offs.LogStart
			case ResetLatest:
				if want, err = sr.end(ctx, pc, offs.HighWatermark); err != nil {
					return 0, 0, err
				}
			default:
				if offs.LogStart == offs.HighWatermark {
					return 0, 0, semantics.Errorf(semantics.ErrOffsetOutOfRange,
						"partition %s: offset %d is out of range: the partition holds no records (high watermark %d); use start, end or %d",
						pc.tp, want, offs.HighWatermark, offs.HighWatermark)
				}
				return 0, 0, semantics.Errorf(semantics.ErrOffsetOutOfRange,
					"partition %s: offset %d is out of range: stored offsets are %d to %d (high watermark %d); use start, end or an offset in range",
					pc.tp, want, offs.LogStart, offs.HighWatermark-1, offs.HighWatermark)
			}
		}
	case offsetTime:
		m, found, err := pc.reader.OffsetForTime(ctx, offs, o.at)
		if err != nil {
			return 0, 0, err
		}
		if !found {
			seq, err := findOffset(ctx, pc.reader, offs, offs.HighWatermark)
			return offs.HighWatermark, seq, err
		}
		return m.Offset, m.Seq, nil
	}
	seq, err := findOffset(ctx, pc.reader, offs, want)
	return want, seq, err
}

// findOffset returns the sequence to start reading offset from: past the end at or
// beyond the high watermark, the first or last batch without a search when the
// offset is in one of them (reading from the start or the end), else the batch
// found by binary search.
func findOffset(ctx context.Context, r *partition.Reader, offs partition.Offsets, offset int64) (uint64, error) {
	switch {
	case offs.Msgs == 0:
		return offs.LastSeq + 1, nil
	case offset >= offs.HighWatermark:
		// Right after the last batch the high watermark was read from.
		return offs.LastBatchSeq + 1, nil
	case offset <= offs.LogStart && offs.FirstBatchSeq > 0:
		return offs.FirstBatchSeq, nil
	case offset >= offs.LastBatchBase && offs.LastBatchSeq > 0:
		return offs.LastBatchSeq, nil
	}
	seq, found, err := semantics.FindOffset(ctx, r, offs.FirstSeq, offs.LastSeq, offset)
	if err != nil {
		return 0, err
	}
	if !found {
		seq = offs.FirstSeq
	}
	return seq, nil
}

// startLocked starts reading pc from offset off, at stream sequence seq.
func (c *Consumer) startLocked(pc *partSource, off int64, seq uint64) {
	pc.gen++
	pc.next = off
	ctx, cancel := context.WithCancel(context.Background())
	pc.cancel = cancel
	pc.done = make(chan struct{})
	go c.fetch(ctx, pc, pc.gen, off, seq, pc.done)
}

// halt stops pc's fetcher. Called with the consumer's mu held.
func (pc *partSource) halt() {
	pc.gen++
	if pc.cancel != nil {
		pc.cancel()
		pc.cancel = nil
	}
}

// fetch reads pc's stream from seq and hands decoded records to Poll. When the read
// breaks (a leader moved, a node died, the connection failed over), it starts again
// after the last record it handed over, with backoff; only a partition that no longer
// exists, or a batch that cannot be decoded, ends it with an error for Poll.
//
// A read that got batches starts again right after the last one it handed over
// (its stream sequence is known: nothing to look up), and so does every later
// restart; one that never got any looks its offset up again (locate). Each
// request of a restart (locate's, the consumer's creation) is bounded by an
// attempt's timeout: readAttempt, and
// twice that after each restart past readAttempts in a row that read nothing,
// up to the request timeout. A request sent while the stream is between
// leaders, or to a node that has just been paused or killed (a consumer placed
// there, a direct get its replica takes), gets no answer, and waiting out the
// whole request timeout for it kept the partition silent for seconds after its
// new leader was elected.
func (c *Consumer) fetch(ctx context.Context, pc *partSource, gen uint64, from int64, seq uint64, done chan struct{}) {
	defer close(done)
	c.c.reads.Add(1)
	defer c.c.reads.Add(-1)
	backoff := 50 * time.Millisecond
	attempt, idle := readAttempt, 0
	passed := false
	at := 1 // consumer creations sent at once: one at the read's start
	for {
		next, nextSeq, fatal, err := c.fetchOnce(ctx, pc, gen, from, seq, attempt, at)
		at = readRestartCreations
		if ctx.Err() != nil {
			return
		}
		if fatal {
			select {
			case c.out <- chunk{pc: pc, gen: gen, err: err}:
			case <-ctx.Done():
			}
			return
		}
		if next > from {
			from, backoff, attempt, idle = next, 50*time.Millisecond, readAttempt, 0
		} else if idle++; idle > readAttempts {
			// Nothing read again and again: perhaps attempts too short for a
			// node under load. (A consumer placed on a node just paused or
			// killed, whose creation is never answered, is hedged by others
			// within the attempt: createHedged.)
			attempt = min(2*attempt, c.c.cfg.reqTimeout)
		}
		// Once a read got batches, its sequence is the one after the last it
		// handed over: later restarts start there too, also after one whose
		// consumer's creation failed (a locate then may wait out its attempt
		// on a direct get a lost replica takes).
		passed = passed || nextSeq > seq
		seq = max(seq, nextSeq)
		c.c.log.Debug("partition read restarting", "topic", pc.tp.Topic, "partition", pc.tp.Partition, "offset", from, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		if passed {
			continue
		}
		lctx, lcancel := context.WithTimeout(ctx, attempt)
		s, found, lerr := c.locate(lctx, pc, from)
		lcancel()
		switch {
		case errors.Is(lerr, semantics.ErrUnknownTopic):
			select {
			case c.out <- chunk{pc: pc, gen: gen, err: lerr}:
			case <-ctx.Done():
			}
			return
		case lerr == nil && found:
			seq = s
		}
	}
}

// fetchQuiet is how long a partition read may go without records before it checks
// whether the partition has more than it delivered.
const fetchQuiet = 3 * time.Second

// readAttempt bounds each request of a partition read's restart (fetch) for
// the first readAttempts restarts in a row that read nothing; it doubles after
// each one past them.
const (
	readAttempt  = time.Second
	readAttempts = 3
)

// locate finds the stream sequence to read offset from.
func (c *Consumer) locate(ctx context.Context, pc *partSource, offset int64) (uint64, bool, error) {
	offs, err := pc.reader.ReadOffsets(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	seq, err := findOffset(ctx, pc.reader, offs, offset)
	return seq, err == nil, err
}

// readInactiveThreshold is how long the server keeps a partition read's consumer
// once nobody pulls from it, should dropConsumer not reach the server.
const readInactiveThreshold = 30 * time.Second

// dropConsumer deletes a finished read's consumer on the server, in the background:
// a read that restarts leaves the old one behind otherwise, until it goes inactive.
func dropConsumer(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(ctx, stream, info.Name)
	}()
}

// fetchOnce reads with one pull consumer until it fails; it returns the offset after
// the last record handed to Poll, the stream sequence after the last batch the read
// got (seq when none), and whether the failure is final. attempt bounds each
// request of the consumer's creation.
//
// It is an ordered read without nats.go's ordered consumer: an ephemeral consumer
// without acks, starting at seq, whose deliveries must come with consecutive consumer
// sequences (a gap, e.g. a message dropped on the way, ends the read, and fetch
// starts again after the last record handed over). nats.go's ordered consumer
// recreates a broken consumer for ever, with a backoff growing to 10 s and outside
// ctx, so a read that broke while its stream refused new consumers (between leaders)
// stayed silent for tens of seconds after the stream was back; fetch retries instead,
// with its own backoff and ctx. And its iterator (Messages) sizes a channel for the
// most messages a pull may bring, a million when pulling by bytes: 8 MB zeroed and
// scanned by the collector per partition read. Consume hands each message to a
// callback instead, in order, from one goroutine.
func (c *Consumer) fetchOnce(ctx context.Context, pc *partSource, gen uint64, from int64, seq uint64, attempt time.Duration, at int) (int64, uint64, bool, error) {
	cons, host, leader, err := c.createRead(ctx, pc, seq, attempt, at)
	if err != nil {
		return from, seq, errors.Is(err, jetstream.ErrStreamNotFound), err
	}
	defer dropConsumer(c.c.js, pc.reader.Stream, cons)
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		// Nothing stored from the start on: the partition is at its end.
		select {
		case c.out <- chunk{pc: pc, gen: gen, eof: true}:
		case <-ctx.Done():
			return from, seq, false, ctx.Err()
		}
	}
	c.mu.Lock()
	share := c.cfg.fetchMaxBytes / max(1, len(c.parts))
	c.mu.Unlock()
	share = max(c.c.readShare(share), int(pc.meta.Config.MaxMessageBytes)+64<<10)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &partRead{c: c, pc: pc, gen: gen, ctx: rctx, next: from, lastStream: max(seq, 1) - 1, handed: max(seq, 1) - 1, failed: make(chan readFailure, 1)}
	r.cons, r.host, r.leader, r.hostLed = cons, host, leader, host != "" && host == leader
	r.stall = c.c.check.stallTimer()
	defer r.stall.disarm()
	r.last.Store(time.Now().UnixNano())
	// Pulling by bytes bounds what is fetched ahead whatever the batches' sizes.
	// Bounding the count instead (PullMaxMessagesWithBytesLimit) measurably raised
	// the end-to-end p99 at 5000 records/s with linger 0 (see docs/performance.md).
	// A move to another node loses what the consumer sent on the old connection
	// and had not arrived: listen before the first pull.
	up := c.c.nc.StatusChanged(nats.CONNECTED)
	defer c.c.nc.RemoveStatusListener(up)
	cc, err := cons.Consume(r.handle, jetstream.PullMaxBytes(share), jetstream.PullHeartbeat(readHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { r.fail(err, false) }))
	if err != nil {
		return from, seq, errors.Is(err, jetstream.ErrStreamNotFound), err
	}
	failure := r.watch(ctx, up)
	cancel()
	cc.Stop()
	next, handed := r.stop()
	return next, handed + 1, failure.fatal, failure.err
}

// readPlacements is how many consumers a partition read's start creates at most
// to find one that a replica cut from its stream's leader does not serve.
const readPlacements = 5

// createRead creates the consumer of a read of pc from stream sequence seq, and
// returns it with the node serving it (host) and the stream's leader as its
// info gave them ("" when not known). JetStream places a one-replica consumer
// of a replicated stream on any of its replicas, picked at random; one whose
// leader has stopped hearing from it (partition.StreamState.Unheard: cut from
// the leader, or stopped) holds only what it had then and delivers nothing
// more, so the consumer is deleted and created again, up to readPlacements
// times (one stream info a read's start, none a record; asked for within
// readHedge, the check skipped when it does not come). Each creation is
// hedged (createHedged): one placed on a node just paused or killed, which the
// cluster does not yet count offline, is never answered.
func (c *Consumer) createRead(ctx context.Context, pc *partSource, seq uint64, attempt time.Duration, at int) (cons jetstream.Consumer, host, leader string, err error) {
	for i := 1; ; i++ {
		cons, err = c.createHedged(ctx, pc, seq, attempt, at)
		if err != nil {
			return nil, "", "", err
		}
		host = ""
		if info := cons.CachedInfo(); info != nil && info.Cluster != nil {
			host = info.Cluster.Leader
		}
		if host == "" {
			return cons, "", "", nil
		}
		// The stream between leaders (its leader just lost) does not answer:
		// the check is skipped then, rather than holding the read up.
		actx, cancel := context.WithTimeout(ctx, min(attempt, readHedge))
		st, serr := pc.reader.StreamInfo(actx)
		cancel()
		if serr != nil || host == st.Leader || !slices.Contains(st.Unheard, host) || i == readPlacements {
			return cons, host, st.Leader, nil
		}
		c.c.log.Debug("partition read placed on a replica its leader does not hear: placing it again", "topic", pc.tp.Topic,
			"partition", pc.tp.Partition, "node", host)
		dropConsumer(c.c.js, pc.reader.Stream, cons)
	}
}

// readHedge is how long a read's consumer creation may go unanswered before
// createHedged sends another, and readHedges how many it sends at most. A
// creation is answered within milliseconds by a live node, tens of them on a
// loaded one.
const (
	readHedge  = 250 * time.Millisecond
	readHedges = 4
)

// readRestartCreations is how many consumer creations a read's restart sends
// at once (createHedged): a restart follows a failure, often the loss of a
// node that JetStream may place one of them on, and on a loaded machine a
// creation's answer takes about as long as readHedge. Two at once are both
// placed on a lost one of three replicas one time in nine, one alone one time
// in three; the one not kept is deleted. A read's start sends one.
const readRestartCreations = 2

// createHedged creates a consumer of pc's stream from sequence seq, within
// attempt, sending at creations at once. JetStream places each creation on a replica picked at random among
// those its meta leader has not yet found offline, which for seconds after a
// pause or a kill includes the node lost; a creation placed there is never
// answered, nor is one sent while the meta group elects a leader (its leader
// lost), and waiting out the attempt for it kept a read silent a second
// longer than its stream. So while creations go unanswered another is sent
// every readHedge, up to readHedges, each placed afresh: the first answered
// is the read's, and the others are deleted as they answer (by name, should
// they be made after all, when they time out). A live cluster answers the
// first within readHedge: a read's start sends one creation, as before.
func (c *Consumer) createHedged(ctx context.Context, pc *partSource, seq uint64, attempt time.Duration, at int) (jetstream.Consumer, error) {
	type created struct {
		name string
		cons jetstream.Consumer
		err  error
	}
	actx, cancel := context.WithTimeout(ctx, attempt)
	results := make(chan created, readHedges)
	create := func() {
		name := "qxd_read_" + rand.Text()
		go func() {
			cons, err := c.c.js.CreateConsumer(actx, pc.reader.Stream, jetstream.ConsumerConfig{
				Name:          name,
				DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(seq, 1),
				AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: readInactiveThreshold,
				Replicas: 1, MemoryStorage: true,
			})
			results <- created{name, cons, err}
		}()
	}
	// drop deletes a creation that lost, or failed without an answer.
	drop := func(r created) {
		switch {
		case r.err == nil:
			dropConsumer(c.c.js, pc.reader.Stream, r.cons)
		case errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, context.Canceled):
			go func() {
				dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.c.js.DeleteConsumer(dctx, pc.reader.Stream, r.name)
			}()
		}
	}
	for range at {
		create()
	}
	sent, answered := at, 0
	hedge := time.NewTimer(readHedge)
	defer hedge.Stop()
	var first error
	for answered < sent {
		select {
		case <-hedge.C:
			if sent < readHedges {
				create()
				sent++
				hedge.Reset(readHedge)
			}
			continue
		case r := <-results:
			answered++
			if r.err != nil {
				if ctx.Err() == nil {
					drop(r)
				}
				first = cmp.Or(first, r.err)
				continue
			}
			// The others lose: cancelled, and deleted as they end.
			cancel()
			go func(left int) {
				for range left {
					drop(<-results)
				}
			}(sent - answered)
			return r.cons, nil
		}
	}
	cancel()
	return nil, first
}

// readShare is the most bytes a partition read starting now may have fetched
// ahead of Poll: its consumer's share (consumer), and at most an equal share of
// ClientFetchMaxBytes among the client's partition reads running. Every read of
// the client's consumers is pulled over its one connection, and the node buffers
// what they asked for while the client reads it more slowly than the node sends:
// past the node's MaxPending it cuts the connection off as a slow consumer, and
// every read, request and producer of the client starts again after a reconnect
// (eight consumers of one client, 32 MiB ahead each, were cut off so; one
// consumer reading the same eight partitions, 4 MiB ahead each, was not). A read
// keeps the share it started with until it restarts: reads that start one after
// another hold more than ClientFetchMaxBytes together, at most its multiple by
// the harmonic number of their count.
func (c *Client) readShare(consumer int) int {
	return min(consumer, c.cfg.fetchMaxBytes/max(1, int(c.reads.Load())))
}

// readHeartbeat is how often the server says a read's consumer is alive while it has
// nothing to deliver; two missed end the read (as nats.go's ordered consumers do).
const readHeartbeat = 5 * time.Second

// partRead is one fetchOnce's state, shared by its callback and its watch.
type partRead struct {
	c   *Consumer
	pc  *partSource
	gen uint64
	ctx context.Context // ends the read
	// host is the node serving the read's consumer cons: the copy of the stream
	// it reads is that node's.
	host string
	cons jetstream.Consumer
	// leader is the stream's leader as last seen by the read's start or its
	// watchdog ("" when not known); only the watchdog uses it after the start.
	leader string
	// hostLed: host led the stream when the read started, or when the
	// watchdog last looked.
	hostLed bool

	mu      sync.Mutex // held while a message is handed over
	next    int64      // the offset after the last record handed to Poll
	lastSeq uint64     // the consumer sequence of the last message
	// lastStream is the stream sequence of the last message (before the first:
	// the one before the read's start).
	lastStream uint64
	// handed is the stream sequence of the last batch whose records all went to
	// Poll or were passed over (before the first: the one before the read's
	// start): a read started again after it misses nothing.
	handed  uint64
	stopped bool
	// held is the consumer's delivered stream sequence when the watchdog last
	// found deliveries on the way, past lastStream (0: none).
	held uint64

	stable stableView // read-committed: the partition's transactions (consumer_txn.go)

	// stall checks the client's node when the next batch of a stream that holds
	// more does not come (see nodeCheck); nil without a check.
	stall *stallTimer

	busy   atomic.Bool  // a message is being handled (maybe waiting for Poll)
	last   atomic.Int64 // when the last message was handled, Unix ns
	failed chan readFailure
}

type readFailure struct {
	err   error
	fatal bool
}

// fail ends the read with err, unless it ended already.
func (r *partRead) fail(err error, fatal bool) {
	select {
	case r.failed <- readFailure{err: err, fatal: fatal}:
	default:
	}
}

// leader names the node that leads pc's stream, for errors about what it stored.
func (pc *partSource) leader(ctx context.Context) string {
	st, err := pc.reader.StreamInfo(ctx)
	if err != nil || st.Leader == "" {
		return "(unknown: " + fmt.Sprint(err) + ")"
	}
	return st.Leader
}

// gapError explains offsets from to to-1 missing before the batch at stream
// sequence seq: nil when the head of the log was removed past them (retention, a
// trim), else an ErrCorruptMessage naming the partition, the range and the node
// serving the read: the batches are gone from the middle of its copy of the log,
// as when a stored block file is damaged, and no other replica returned them.
func (r *partRead) gapError(ctx context.Context, from, to int64, seq uint64) error {
	st, err := r.pc.reader.StreamInfo(ctx)
	if err != nil {
		return fmt.Errorf("offsets %d to %d were skipped and the stream's state could not be read to tell why: %w", from, to-1, err)
	}
	if st.FirstSeq >= seq || st.LogStart >= to {
		return nil
	}
	return semantics.Errorf(semantics.ErrCorruptMessage,
		"offsets %d to %d are missing from the log stored on node %s (the batch at stream sequence %d starts at offset %d, and older batches are still stored), and no other replica returned them: its stored data is damaged; rebuild the replica or restore the partition",
		from, to-1, cmp.Or(r.host, st.Leader, "(unknown)"), seq, to)
}

// handle decodes one message and hands its records to Poll. Consume calls it for
// one message after the other, in order. A batch that fails its checks on the
// node serving the read, or batches missing from that node's copy, are read from
// another replica's intact copy when one has them (fromReplica, fillGap).
func (r *partRead) handle(msg jetstream.Msg) {
	r.busy.Store(true)
	r.stall.disarm()
	more := false // the stream holds more for the read: it awaits the next batch
	defer func() {
		r.last.Store(time.Now().UnixNano())
		r.busy.Store(false)
		if more && r.ctx.Err() == nil {
			r.stall.arm()
		}
	}()
	meta, err := msg.Metadata()
	if err != nil {
		r.fail(fmt.Errorf("read message metadata: %w", err), false)
		return
	}
	more = meta.NumPending > 0
	data := msg.Data()
	recs, derr := semantics.DecodeRecords(nil, data, r.pc.tp.Topic, r.pc.tp.Partition)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if meta.Sequence.Consumer != r.lastSeq+1 {
		r.stopped = true
		r.fail(fmt.Errorf("message %d of the read came after %d", meta.Sequence.Consumer, r.lastSeq), false)
		return
	}
	prev, seq := r.lastStream, meta.Sequence.Stream
	// Past batches that fillTail read from another replica, should the consumer
	// deliver them after all: hand skips their records.
	r.lastSeq, r.lastStream = meta.Sequence.Consumer, max(prev, seq)
	switch {
	case errors.Is(derr, semantics.ErrCorruptMessage):
		if data, derr = r.fromReplica(seq, data, derr); derr == nil {
			recs, derr = semantics.DecodeRecords(nil, data, r.pc.tp.Topic, r.pc.tp.Partition)
		}
	case derr != nil:
		derr = fmt.Errorf("batch at stream sequence %d, after offset %d, on node %s: %w", seq, r.next-1, cmp.Or(r.host, r.pc.leader(r.ctx)), derr)
	}
	if derr != nil {
		r.stopped = true
		r.fail(derr, true)
		return
	}
	if h, herr := semantics.PeekBatchHeader(data); herr == nil && seq > prev+1 && h.BaseOffset > r.next && !r.pc.meta.Config.Compact {
		if !r.fillGap(prev, seq, h.BaseOffset) {
			return
		}
	}
	r.hand(data, recs, seq, meta.NumPending == 0)
}

// hand hands the records of batch data, stored at stream sequence seq, to Poll;
// eof: the stream held nothing after it. It returns false when the read ended.
// Called with r.mu held.
func (r *partRead) hand(data []byte, recs []Record, seq uint64, eof bool) (ok bool) {
	defer func() {
		if ok {
			r.handed = max(r.handed, seq)
		}
	}()
	if r.c.cfg.isolation == ReadCommitted {
		skip, ok := r.committedOnly(data)
		if !ok {
			r.stopped = true
			return false
		}
		if skip {
			recs = recs[:0] // an aborted transaction's: passed over as a marker is
		}
	}
	if len(recs) == 0 {
		// A transaction marker takes an offset and holds no record for the
		// application: the read goes on after it, and so does the position.
		if h, herr := semantics.PeekBatchHeader(data); herr == nil && h.LastOffset() >= r.next {
			select {
			case r.c.out <- chunk{pc: r.pc, gen: r.gen, eof: eof, skipTo: h.LastOffset() + 1}:
				r.next = h.LastOffset() + 1
			case <-r.ctx.Done():
				r.stopped = true
				return false
			}
		}
		return true
	}
	if hs := &r.c.c.cfg.hooks; len(hs.read) > 0 {
		hs.batchRead(r.pc.tp.Topic, r.pc.tp.Partition, FetchBatchMetrics{NumRecords: len(recs), BatchBytes: len(data), FirstOffset: recs[0].Offset})
	}
	if recs[0].Offset > r.next && !r.pc.meta.Config.Compact {
		// Offsets are dense; only removing the head (retention, a trim) skips some.
		if gerr := r.gapError(r.ctx, r.next, recs[0].Offset, seq); gerr != nil {
			r.stopped = true
			r.fail(gerr, true)
			return false
		}
	}
	i := 0
	for i < len(recs) && recs[i].Offset < r.next {
		i++
	}
	if i == len(recs) && !eof {
		return true
	}
	select {
	case r.c.out <- chunk{pc: r.pc, gen: r.gen, recs: recs[i:], eof: eof}:
		if i < len(recs) {
			r.next = recs[len(recs)-1].Offset + 1
		}
		return true
	case <-r.ctx.Done():
		r.stopped = true
		return false
	}
}

// fillGap reads the batches at stream sequences after prev and before seq, which
// the node serving the read skipped although the batch at seq starts at offset
// base, past the read's position: unless retention or a trim removed them, they
// are missing from that node's copy (a damaged block file), and are read from
// another replica's intact copy and handed to Poll. The damage is reported to the
// cluster either way. It returns false when the read ended; when no replica holds
// them, hand then fails the read naming the offsets and the node. Called with
// r.mu held.
func (r *partRead) fillGap(prev, seq uint64, base int64) bool {
	st, err := r.pc.reader.StreamInfo(r.ctx)
	if err != nil || st.FirstSeq >= seq || st.LogStart >= base {
		return true // the head moved past them, or hand's check says why not
	}
	node := cmp.Or(r.host, st.Leader, "(unknown)")
	from, next := max(prev+1, st.FirstSeq), r.next
	d := semantics.BatchDamage{Kind: semantics.DamageUnreadable, FromSeq: from, ToSeq: seq - 1, FromOffset: next, ToOffset: base - 1, Node: node,
		Detail: fmt.Sprintf("stream sequences %d to %d (offsets %d to %d) are missing from the copy on node %s", from, seq-1, next, base-1, node)}
	var gerr error
	for q := from; q < seq && gerr == nil; q++ {
		var m partition.Msg
		if m, gerr = r.pc.reader.GetIntact(r.ctx, q, len(st.Replicas)); gerr != nil {
			break
		}
		recs, derr := semantics.DecodeRecords(nil, m.Data, r.pc.tp.Topic, r.pc.tp.Partition)
		if derr != nil {
			gerr = derr
			break
		}
		if !r.hand(m.Data, recs, q, false) {
			return false
		}
	}
	r.c.c.reportDamage(r.ctx, r.pc.tp, d, gerr == nil)
	if gerr == nil {
		r.c.c.log.Warn("read batches missing from a replica from a healthy one", "topic", r.pc.tp.Topic, "partition", r.pc.tp.Partition,
			"offset", next, "node", node)
	}
	return true
}

// fromReplica is the read's answer to the batch at stream sequence seq, data,
// failing its checks with derr on the node serving the read: the same batch as
// another replica stores it, when one holds an intact copy. Either way the damage
// is reported to the cluster (it shows in describe and cluster info). The error,
// when no replica holds an intact copy, is an ErrCorruptMessage naming the
// partition, the offsets, the stream sequence and the node.
func (r *partRead) fromReplica(seq uint64, data []byte, derr error) ([]byte, error) {
	st, serr := r.pc.reader.StreamInfo(r.ctx)
	node := cmp.Or(r.host, st.Leader, "(unknown)")
	from, to := r.next, int64(-1)
	if h, err := semantics.PeekBatchHeader(data); err == nil && h.NumRecords > 0 {
		from, to = h.BaseOffset, h.LastOffset()
	}
	var good partition.Msg
	gerr := serr
	if serr == nil {
		good, gerr = r.pc.reader.GetIntact(r.ctx, seq, len(st.Replicas))
	}
	d := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: seq, ToSeq: seq, FromOffset: from, ToOffset: to, Node: node,
		Detail: fmt.Sprintf("the batch at stream sequence %d on node %s fails its checks: %v", seq, node, derr)}
	r.c.c.reportDamage(r.ctx, r.pc.tp, d, gerr == nil)
	if gerr == nil {
		r.c.c.log.Warn("read a corrupt batch from a healthy replica", "topic", r.pc.tp.Topic, "partition", r.pc.tp.Partition,
			"offset", from, "node", node, "err", derr)
		return good.Data, nil
	}
	what := fmt.Sprintf("offsets %d to %d", from, to)
	if to < 0 {
		what = fmt.Sprintf("the offsets from %d on", from)
	}
	return nil, semantics.Errorf(semantics.ErrCorruptMessage,
		"%s, stored at stream sequence %d, are corrupt on node %s (%v) and no other replica returned an intact copy (%v): rebuild the replica or restore the partition",
		what, seq, node, derr, gerr)
}

// watch waits until the read fails or ctx ends. It is also a watchdog: after a quiet
// spell it checks whether the read is stalled (check), and ends it if so. It ends
// the read when the connection comes back after a loss (up): what the read's
// consumer sent on the lost connection did not arrive, and, sent already, would
// not be sent again (the watchdog would find that only after two quiet spells).
//
// A read whose serving node is known is looked at sooner, every followerQuiet
// until fetchQuiet (cutOff), and a read served by a follower every followerQuiet
// after that too: it restarts when its stream's leader holds more and has
// stopped hearing from the node serving it, or that node has lost the
// leadership it held (hostLost).
func (r *partRead) watch(ctx context.Context, up <-chan nats.Status) readFailure {
	t := time.NewTimer(r.spell(0))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return readFailure{err: ctx.Err()}
		case f := <-r.failed:
			return f
		case _, ok := <-up:
			if !ok {
				up = nil // the connection closed: ctx or a failure ends the read
				continue
			}
			return readFailure{err: errors.New("the connection to the node was lost and restored: what the read's consumer sent meanwhile may be lost")}
		case <-t.C:
		}
		if r.busy.Load() { // waiting for Poll, or decoding
			t.Reset(r.spell(0))
			continue
		}
		quiet := time.Since(time.Unix(0, r.last.Load()))
		if spell := r.spell(quiet); quiet < spell {
			t.Reset(spell - quiet)
			continue
		}
		if quiet < fetchQuiet {
			if f, wait := r.cutOff(ctx, quiet); !wait {
				return f
			}
			quiet = time.Since(time.Unix(0, r.last.Load()))
			t.Reset(max(0, min(r.spell(quiet), fetchQuiet-quiet)))
			continue
		}
		if f, wait := r.check(ctx); !wait {
			return f
		}
		t.Reset(r.spell(fetchQuiet))
	}
}

// followerQuiet is how long a partition read whose serving node is known may go
// without records before it checks whether the stream's leader still hears from
// that node (and whether that node still leads the stream, if it did).
const followerQuiet = time.Second

// spell is how long the read, quiet for quiet, may go without records before the
// watchdog looks next: followerQuiet while quiet is under fetchQuiet or a
// follower serves it (its serving node known), else fetchQuiet. A read served
// by its stream's leader is looked at as soon as a follower's: a pause or a
// kill of that node silences it as well, and its new leader is elected within
// seconds.
func (r *partRead) spell(quiet time.Duration) time.Duration {
	if r.host != "" && (quiet < fetchQuiet || r.host != r.leader) {
		return followerQuiet
	}
	return fetchQuiet
}

// watchTimeout bounds a request of the watchdog's: one sent to a stream
// between leaders, or to a consumer on a node that died, gets no answer, and
// the next look asks again.
const watchTimeout = time.Second

// hostLost tells, from the state st of its stream's leader, whether the node
// serving the read no longer serves what the leader stores: the leader has
// stopped hearing from it (partition.StreamState.Unheard: cut from the leader,
// paused or dead), or, the read itself quiet for a spell (the watchdog looks
// after one), the leader has not heard from it for hostSilent while it lags
// (st.Silent): the read's own silence and the leader's agree, and waiting for
// Unheard kept a read served by a paused or killed follower silent for a second
// longer. Or it led the stream (when the read started, or when the watchdog
// looked) and another node leads it now (a paused or killed leader: its
// followers elected another, while the read's consumer, on the old leader,
// delivers nothing). Either way the read restarts, and createRead places it
// afresh.
func (r *partRead) hostLost(st partition.StreamState) (string, bool) {
	switch {
	case slices.Contains(st.Unheard, r.host):
		return "is served by a replica its leader does not hear from", true
	case r.host != "" && r.host != st.Leader && st.Silent[r.host] >= hostSilent:
		return fmt.Sprintf("is served by a replica its leader has not heard from for %v", st.Silent[r.host].Round(time.Millisecond)), true
	case r.hostLed && st.Leader != "" && st.Leader != r.host:
		return "is served by a node that has lost the stream's leadership", true
	}
	return "", false
}

// hostSilent is how long a stream's leader must not have heard from the
// follower serving a read, quiet itself for followerQuiet while the leader holds
// more, for the watchdog to restart the read: a follower answers its leader's
// appends many times a second while records are stored.
const hostSilent = followerQuiet / 2

// look is the watchdog's view of a read: the offset after the last record it
// handed to Poll, the stream sequence of the last batch it got, and the
// stream's state, asked for within watchTimeout; it notes the stream's leader,
// and whether the read's serving node has led the stream (hostLed).
func (r *partRead) look(ctx context.Context) (int64, uint64, partition.StreamState, error) {
	r.mu.Lock()
	next, got := r.next, r.lastStream
	r.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, watchTimeout)
	st, err := r.pc.reader.StreamInfo(lctx)
	cancel()
	if err != nil {
		return next, got, st, err
	}
	r.leader = st.Leader
	r.hostLed = r.hostLed || r.host != "" && st.Leader == r.host
	return next, got, st, nil
}

// cutOff is the watchdog's look at a read whose serving node is known, quiet
// for less than fetchQuiet: the read restarts (and createRead places it
// elsewhere) when the stream's leader holds batches after the last one the read
// got and that node no longer serves them (hostLost): a follower cut off holds
// what it held when it was cut off, and delivers nothing more; a paused or
// killed node delivers nothing at all. It restarts too when that node leads the
// stream (as last seen) and the look, which asks the leader, gets no answer
// while the client's own node answers a ping and the client did not move
// meanwhile. The read restarts after the last record it handed to Poll, as after any
// failure.
func (r *partRead) cutOff(ctx context.Context, quiet time.Duration) (readFailure, bool) {
	nc := r.c.c.nc
	reconnects := nc.Stats().Reconnects
	next, got, st, err := r.look(ctx)
	if err != nil {
		// A look the client's own connection failed (it moved to another node
		// meanwhile, and may answer a ping again already) says nothing of the
		// leader.
		moved := nc.Stats().Reconnects != reconnects || errors.Is(err, nats.ErrDisconnected) ||
			errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionClosed)
		if r.host != "" && r.host == r.leader && !moved && nc.FlushTimeout(watchTimeout/2) == nil {
			// The stream's leader serves the read, and answers neither with
			// records nor to the look (it asks the leader), while the
			// client's own node answers a ping: the leader is paused, killed
			// or cut off. A new consumer, placed on a follower, delivers as
			// soon as the followers have elected a leader; waiting for the
			// next look to see that kept the read silent a spell longer.
			// (When the client's own node is silent, the client moves, and
			// the read restarts then.)
			return r.stalled(next, got, r.host, st, fmt.Sprintf("is served by the stream's leader, which does not answer (%v)", err), quiet), false
		}
		return readFailure{}, true // between leaders: look again
	}
	if st.LastSeq <= max(got, st.FirstSeq-1) {
		return readFailure{}, true
	}
	why, lost := r.hostLost(st)
	if !lost {
		return readFailure{}, true
	}
	return r.stalled(next, got, r.host, st, why, quiet), false
}

// check is the watchdog's look at a read quiet for fetchQuiet: whether to keep
// waiting, or else how the read ends.
//
// It judges by the stream's leader (StreamInfo): the read is stalled when the
// leader holds batches after the last one the read got (r.lastStream) and the
// read's consumer delivered none of them. JetStream places the consumer on any
// replica, a follower behind included, which delivers only what it has applied
// while its heartbeats go on; a direct get may be answered by that same replica
// (direct gets are a queue group, and NATS prefers a local member), so neither
// tells a stalled read. A new consumer, which JetStream places afresh, reads them:
// the read ends with an error that is not final, and fetch starts it again.
//
// Deliveries not yet handled (the consumer's delivered stream sequence is past
// r.lastStream: in transit, or in the client's buffers, as under heavy load) are
// waited for one more spell, then the read restarts. Only a consumer served by the
// leader or a follower the leader counts in sync, with nothing pending, can mean
// that its copy lacks the batches: fillTail reads them from another replica, and
// missingError ends the read as damaged only when the leader itself cannot return
// the next one. A slow or lagging read never ends as damaged.
func (r *partRead) check(ctx context.Context) (readFailure, bool) {
	next, got, st, err := r.look(ctx)
	if err != nil {
		// Between leaders, or the leader is unreachable: the read's heartbeats
		// tell whether its consumer is gone; look again after the next spell.
		return readFailure{}, true
	}
	if st.LastSeq <= max(got, st.FirstSeq-1) {
		r.held = 0
		return readFailure{}, true // nothing new: keep waiting
	}
	host := cmp.Or(r.host, "(unknown)")
	if r.cons == nil {
		return r.stalled(next, got, host, st, "has no consumer", fetchQuiet), false
	}
	if why, lost := r.hostLost(st); lost {
		return r.stalled(next, got, host, st, why, fetchQuiet), false
	}
	lctx, cancel := context.WithTimeout(ctx, 2*watchTimeout)
	ci, err := r.cons.Info(lctx)
	cancel()
	if err != nil {
		return r.stalled(next, got, host, st, fmt.Sprintf("has a consumer that does not answer (%v)", err), fetchQuiet), false
	}
	if d := ci.Delivered.Stream; d > got {
		if d != r.held {
			r.held = d
			return readFailure{}, true // delivered, on the way: wait
		}
		return r.stalled(next, got, host, st, fmt.Sprintf("did not receive what its consumer delivered up to stream sequence %d", d), fetchQuiet), false
	}
	r.held = 0
	inSync := r.host == "" || r.host == st.Leader || slices.Contains(st.InSync, r.host)
	if ci.NumPending == 0 && inSync {
		if r.pc.meta.Config.Compact {
			// Compaction removes batches anywhere, the last ones included: the
			// leader's last sequence may hold nothing.
			return readFailure{}, true
		}
		if r.fillTail(ctx, st) {
			return readFailure{}, true
		}
		if derr := r.missingError(ctx, next, st); derr != nil {
			return readFailure{err: derr, fatal: true}, false
		}
	}
	return r.stalled(next, got, host, st, "has a consumer that delivered nothing after it", fetchQuiet), false
}

// stalled logs a stalled read and returns the failure that restarts it.
func (r *partRead) stalled(next int64, got uint64, host string, st partition.StreamState, why string, quiet time.Duration) readFailure {
	r.c.c.log.Warn("partition read stalled behind its stream's leader: restarting it", "topic", r.pc.tp.Topic,
		"partition", r.pc.tp.Partition, "offset", next, "node", host)
	return readFailure{err: fmt.Errorf("partition %s: the read through node %s %s for %v, at stream sequence %d, while the stream's leader %s holds sequences up to %d",
		semantics.PartitionString(r.pc.tp.Topic, r.pc.tp.Partition), host, why, quiet.Round(time.Millisecond), got, cmp.Or(st.Leader, "(unknown)"), st.LastSeq)}
}

// fillTail is for a read that got nothing for a while although the stream's
// leader holds batches after the last one it got (st), and whose consumer, served
// by a replica the leader counts in sync, has delivered nothing since and has
// nothing pending: those batches are missing from that replica's copy (a
// truncated block file). fillTail reads them from another replica's intact copy
// and hands them to Poll, reporting the damage. It returns whether it handed any
// over. With one replica there is no other copy (GetIntact would not ask): it
// hands nothing over, and missingError decides from the leader's copy. When no
// other replica returns the first batch it hands nothing over either: a
// replica's direct get may come from a copy behind, so only missingError, which
// asks the leader, may call the batches lost.
func (r *partRead) fillTail(ctx context.Context, st partition.StreamState) bool {
	if r.cons == nil || len(st.Replicas) <= 1 {
		return false
	}
	if r.host != "" && r.host != st.Leader && !slices.Contains(st.InSync, r.host) {
		return false // a follower behind: it may not have them yet
	}
	ci, err := r.cons.Info(ctx)
	if err != nil || ci.NumPending > 0 {
		return false // a slow read, not a damaged copy
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	after := max(r.lastStream, st.FirstSeq-1)
	if r.stopped || after >= st.LastSeq || ci.Delivered.Stream > r.lastStream {
		return false // delivered, on the way: not missing
	}
	node, next := cmp.Or(r.host, st.Leader, "(unknown)"), r.next
	var gerr error
	filled := false
	for q := after + 1; q <= st.LastSeq; q++ {
		m, err := r.pc.reader.GetIntact(ctx, q, len(st.Replicas))
		if err == nil {
			var recs []Record
			if recs, err = semantics.DecodeRecords(nil, m.Data, r.pc.tp.Topic, r.pc.tp.Partition); err == nil {
				if !r.hand(m.Data, recs, q, q == st.LastSeq) {
					return filled
				}
				r.lastStream, filled = q, true
				continue
			}
		}
		gerr = err
		break
	}
	if !filled {
		return false // missingError asks the leader
	}
	d := semantics.BatchDamage{Kind: semantics.DamageUnreadable, FromSeq: after + 1, ToSeq: st.LastSeq, FromOffset: next, ToOffset: r.next - 1, Node: node,
		Detail: fmt.Sprintf("stream sequences %d to %d (offsets from %d) are missing from the copy on node %s", after+1, st.LastSeq, next, node)}
	r.c.c.reportDamage(ctx, r.pc.tp, d, gerr == nil)
	r.c.c.log.Warn("read batches missing from a replica from a healthy one", "topic", r.pc.tp.Topic, "partition", r.pc.tp.Partition,
		"offset", next, "node", node)
	return true
}

// missingError checks, for a read that got nothing for a while, whether the
// batch after the last one it got can be read at all: an ErrCorruptMessage naming
// the offsets, the stream sequences and the node when the stream's leader cannot
// return it although it counts it stored (the store lost it, as when a block file
// is cut short), reported to the cluster as damage, else nil. It asks the leader (a message get, not a direct get,
// which a replica behind may answer).
func (r *partRead) missingError(ctx context.Context, next int64, st partition.StreamState) error {
	r.mu.Lock()
	after := r.lastStream
	r.mu.Unlock()
	after = max(after, st.FirstSeq-1) // retention or a trim removed the head
	if after >= st.LastSeq {
		return nil
	}
	leader := partition.NewReader(r.c.c.nc, r.pc.tp.Topic, r.pc.tp.Partition, false)
	m, err := leader.Get(ctx, after+1)
	switch {
	case errors.Is(err, semantics.ErrNoBatch):
	case err == nil && m.Seq > after+1:
	default:
		return nil
	}
	// The head may have moved on, or the stream grown, since st was read.
	now, err := r.pc.reader.StreamInfo(ctx)
	if err != nil || now.FirstSeq > after+1 || now.Leader != st.Leader {
		return nil
	}
	node := cmp.Or(st.Leader, "(unknown)")
	d := semantics.BatchDamage{Kind: semantics.DamageUnreadable, FromSeq: after + 1, ToSeq: st.LastSeq, FromOffset: next, ToOffset: -1, Node: node,
		Detail: fmt.Sprintf("stream sequences %d to %d (offsets from %d) are missing from the copy on node %s", after+1, st.LastSeq, next, node)}
	r.c.c.reportDamage(ctx, r.pc.tp, d, false)
	return semantics.Errorf(semantics.ErrCorruptMessage,
		"the records from offset %d on, stored at stream sequences %d to %d, cannot be read from node %s, the stream's leader: its stored data is damaged; rebuild the replica or restore the partition",
		next, after+1, st.LastSeq, node)
}

// stop ends the read's hand-overs and returns the offset after the last record
// handed to Poll and the stream sequence of the last batch whose records all went
// to Poll (handed). The
// read's ctx must have ended, so a hand-over in progress gives up.
func (r *partRead) stop() (int64, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	return r.next, r.handed
}

// reportTimeout bounds a damage report: the read waits for it.
const reportTimeout = 5 * time.Second

// reportDamage tells the cluster that a read found the batch d names damaged on
// d.Node (recovered: an intact copy was read from another replica), so that
// describe and cluster info show it. A report that fails is logged: the read
// goes on either way.
func (c *Client) reportDamage(ctx context.Context, tp TopicPartition, d semantics.BatchDamage, recovered bool) {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	req := semantics.ReportDamageRequest{Name: tp.Topic, Partition: tp.Partition, Damage: d, Recovered: recovered}
	var resp semantics.ReportDamageResponse
	err := c.send(ctx, topicAPISubject(semantics.APITopicReportDamage, tp.Topic), req, &resp, false)
	if err == nil {
		err = resp.Failure()
	}
	if err != nil {
		c.log.Warn("damage report failed", "topic", tp.Topic, "partition", tp.Partition, "node", d.Node, "err", err)
	}
}
