package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// The scrub (Config.Scrub): every node reads its own stored copy of every
// partition back in the background, slowly, batch by batch, and records what it
// finds damaged (a batch that fails its Kafka CRC-32C or format checks, stream
// sequences its store no longer returns) in the partition's damage record, as a
// read or a verify does. Describe and cluster info then show the copy damaged,
// and the automatic repair (repair_auto.go) rebuilds it, without anyone having
// read the damaged batches. What it reads intact it clears, as a verify does:
// an entry of the damage record that names this node, recorded before the read
// of the copy began, goes once the scrub has read every stream sequence it
// names from this node's copy intact, with nothing found damaged in between
// (after a repair, or after JetStream rebuilt the copy). Entries naming another
// node are that node's scrub's business, so a partition's record goes once
// every copy it names reads intact.
//
// A node reads its own copy, not a copy another node holds: through an
// ephemeral one-replica consumer that JetStream placed on this node (a consumer
// reads the store of the node it runs on; placement among a stream's replicas is
// JetStream's choice, so one placed elsewhere is deleted and another made). The
// batches go from the node's store to its own in-process connection: nothing
// crosses the network, no leadership moves and the partition's writer is not
// involved.
//
// One pass over the node's copies is spread over Config.ScrubInterval: the scrub
// reads at the pace of the bytes the node stores divided by the interval, never
// faster than Config.ScrubRate when that is set (a token bucket, pacer, that
// each read waits on for the batches it asks for before it is made), then
// waits for the interval's end before the next pass (or starts it at once when
// the cap made the pass outlast the interval). Where the pass is (its
// start and, by partition stream, the next sequence to read) is kept in
// scrubStateFile in the data dir, so a node that restarts goes on where it
// stopped.

// scrubStateFile is the file in the data dir that says where the scrub is.
const scrubStateFile = "scrub.json"

// scrubFetch is the most batches one scrub read asks for.
const scrubFetch = 16

// scrubWait bounds one scrub read; scrubEmptyReads reads in a row that return
// nothing before the scrub asks whether the copy holds more.
const (
	scrubWait       = 5 * time.Second
	scrubEmptyReads = 3
)

// scrubPlaceTries is how many consumers the scrub makes for one copy before it
// leaves it for the next pass: JetStream places each on one of the stream's
// replicas at random (1 in 3 on this node for three replicas; missing 12 times
// in a row: under 1%).
const scrubPlaceTries = 12

// scrubSaveEvery is how often the scrub saves where it is during a copy's read.
const scrubSaveEvery = 10 * time.Second

// minScrubInterval is the shortest pass Config.ScrubInterval may ask for.
const minScrubInterval = time.Second

// errNotPlaced says that no scrub consumer landed on this node.
var errNotPlaced = errors.New("no consumer was placed on this node")

// ScrubStats are what the scrub of a node read and found since the node started.
type ScrubStats struct {
	// Bytes and Batches are what it read from the node's copies.
	Bytes, Batches uint64
	// Damage is the damaged stretches it found (each a corrupt batch or a run of
	// stream sequences the store did not return).
	Damage uint64
	// Passes is the passes over all the node's copies it completed.
	Passes uint64
}

// scrubCounts counts for ScrubStats.
type scrubCounts struct {
	bytes, batches, damage, passes atomic.Uint64
}

// ScrubStats returns what this node's scrub read and found since it started.
func (a *Admin) ScrubStats() ScrubStats {
	return ScrubStats{Bytes: a.scrubs.bytes.Load(), Batches: a.scrubs.batches.Load(),
		Damage: a.scrubs.damage.Load(), Passes: a.scrubs.passes.Load()}
}

// scrubState is where a scrub pass is, as kept in scrubStateFile.
type scrubState struct {
	Began time.Time         `json:"began"` // when the pass began
	Next  map[string]uint64 `json:"next"`  // by partition stream: the sequence to read on from
}

// scrubOn reports whether the node runs the scrub.
func (c Config) scrubOn() bool { return c.Scrub && c.ScrubInterval > 0 }

// runScrub runs the scrub until ctx ends.
func (n *Node) runScrub(ctx context.Context) {
	interval := n.cfg.ScrubInterval
	st := n.loadScrubState()
	// Let the node settle first: its topics, its replicas catching up.
	if !sleepCtx(ctx, min(interval, time.Minute)) {
		return
	}
	for {
		if st.Began.IsZero() {
			st = scrubState{Began: time.Now(), Next: map[string]uint64{}}
			n.saveScrubState(st)
		}
		err := n.scrubPass(ctx, &st)
		if ctx.Err() != nil {
			n.saveScrubState(st)
			return
		}
		if err != nil {
			n.log.Warn("scrub pass interrupted; will go on", "err", err)
			n.saveScrubState(st)
			if !sleepCtx(ctx, min(interval, time.Minute)) {
				return
			}
			continue
		}
		n.admin.scrubs.passes.Add(1)
		n.log.Info("scrub pass over the node's partition copies done")
		if !sleepCtx(ctx, time.Until(st.Began.Add(interval))) {
			return
		}
		st = scrubState{}
	}
}

// scrubCopy is one partition copy this node holds, to scrub.
type scrubCopy struct {
	t      semantics.TopicMeta
	p      int32
	stream string
	from   uint64 // the sequence to read on from
	last   uint64 // the stream's last sequence when the pass looked
	bytes  uint64 // what is left to read, about
	avg    uint64 // the stream's bytes a message, on average
}

// scrubPass reads the node's copies on from where st says, at the pace that
// ends the pass by its interval's end, and updates st as it goes.
func (n *Node) scrubPass(ctx context.Context, st *scrubState) error {
	copies, err := n.scrubCopies(ctx, st)
	if err != nil {
		return err
	}
	var left uint64
	for _, c := range copies {
		left += c.bytes
	}
	// The pace: what is left over the time left, not faster than a tenth of
	// the interval would take, nor than the rate cap.
	span := max(time.Until(st.Began.Add(n.cfg.ScrubInterval)), n.cfg.ScrubInterval/10)
	rate := float64(left) / span.Seconds()
	if limit := float64(n.cfg.ScrubRate); limit > 0 && (rate <= 0 || rate > limit) {
		rate = limit
	}
	p := newPacer(rate)
	for _, c := range copies {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, repairing := n.admin.repairing.Load(c.stream); repairing {
			continue
		}
		if err := n.scrubOne(ctx, c, p, st); err != nil && ctx.Err() == nil {
			n.log.Debug("partition copy not scrubbed in this pass", "topic", c.t.Name, "partition", c.p, "err", err)
		}
	}
	return nil
}

// scrubCopies lists the partition copies this node holds that are left to read
// in the pass st, in stream name order.
func (n *Node) scrubCopies(ctx context.Context, st *scrubState) ([]scrubCopy, error) {
	me := n.ns.Name()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var copies []scrubCopy
	l := n.js.ListStreams(lctx, jetstream.WithStreamListSubject(semantics.PartitionSubjects))
	for si := range l.Info() {
		name, p, ok := semantics.ParseStreamName(si.Config.Name)
		if !ok || !holdsCopy(si, me) {
			continue
		}
		s := si.State
		from := max(st.Next[si.Config.Name], s.FirstSeq, 1)
		if s.Msgs == 0 || from > s.LastSeq {
			continue
		}
		t, err := n.admin.meta.getTopic(lctx, name)
		if err != nil || t.State != semantics.TopicReady {
			continue // gone, or not ready yet: the next pass sees it
		}
		left := s.Bytes
		if span := s.LastSeq - s.FirstSeq + 1; from > s.FirstSeq && span > 0 {
			left = s.Bytes / span * (s.LastSeq - from + 1)
		}
		copies = append(copies, scrubCopy{t: t, p: p, stream: si.Config.Name, from: from, last: s.LastSeq, bytes: left, avg: s.Bytes / s.Msgs})
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("scrub: list partition streams: %w", err)
	}
	slices.SortFunc(copies, func(a, b scrubCopy) int {
		if a.stream < b.stream {
			return -1
		}
		if a.stream > b.stream {
			return 1
		}
		return 0
	})
	return copies, nil
}

// holdsCopy reports whether node me holds a copy of the stream si tells of.
func holdsCopy(si *jetstream.StreamInfo, me string) bool {
	if si.Cluster == nil || (si.Cluster.Leader == "" && len(si.Cluster.Replicas) == 0) {
		return true // a single node
	}
	if si.Cluster.Leader == me {
		return true
	}
	return slices.ContainsFunc(si.Cluster.Replicas, func(r *jetstream.PeerInfo) bool { return r.Name == me })
}

// scrubOne reads this node's copy of c from c.from to c.last, batch by batch at
// the pace p sets, records what it finds damaged and keeps in st where it is. A
// pause longer than scrubHold before a read lets the consumer go and makes
// another after it.
func (n *Node) scrubOne(ctx context.Context, c scrubCopy, p *pacer, st *scrubState) error {
	me := n.ns.Name()
	r := &copyRead{n: n, c: c, expect: c.from,
		v: verifier{r: partition.NewReader(n.nc, c.t.Name, c.p, false), compact: c.t.Config.Compact, leader: me, next: -1}}
	if rec, _, err := n.admin.meta.getDamage(ctx, c.t.ID, c.p); err == nil {
		for _, d := range rec.Damage {
			if d.Node == me {
				r.known = append(r.known, d)
			}
		}
	}
	defer func() {
		st.Next[c.stream] = r.expect
		n.saveScrubState(*st)
		r.clearIntact(ctx)
	}()
	for r.expect <= c.last {
		// Wait for the first read with no consumer held.
		if _, d := p.next(r.size(), scrubFetch); !sleepCtx(ctx, d) {
			return ctx.Err()
		}
		if err := r.run(ctx, p, st); err != nil {
			return err
		}
		st.Next[c.stream] = r.expect
		n.saveScrubState(*st)
		r.clearIntact(ctx)
	}
	return nil
}

// scrubHold is the longest pause before a read of one scrub consumer.
const scrubHold = 20 * time.Second

// copyRead is the read of one copy by the scrub.
type copyRead struct {
	n      *Node
	c      scrubCopy
	v      verifier
	expect uint64 // the next stream sequence the copy should return
	widest uint64 // the largest batch read so far, in bytes

	// known are the entries naming this node in the partition's damage record
	// when the read began: the ones it may clear.
	known []semantics.BatchDamage
	// clean is the first stream sequence of the stretch read intact since the
	// read began or last found damage (0: none); intact are the stretches
	// (first and last sequence) read intact and not yet cleared.
	clean  uint64
	intact [][2]uint64
}

// size is what the scrub reckons a batch of the copy holds, to ask the pacer
// for: the copy's average or the largest batch read so far, whichever is more.
func (r *copyRead) size() float64 { return float64(max(r.c.avg, r.widest, 1)) }

// readIntact notes that the batch at seq passed its checks.
func (r *copyRead) readIntact(seq uint64) {
	if r.clean == 0 {
		r.clean = seq
	}
}

// found notes the damage resp holds past its first skip entries: the stretch
// read intact ends before the first of them.
func (r *copyRead) found(resp *semantics.VerifyPartitionResponse, skip int) {
	if len(resp.Damage) > skip {
		r.endIntact(resp.Damage[skip].FromSeq - 1)
	}
}

// endIntact ends the stretch read intact at sequence to, where damage begins.
func (r *copyRead) endIntact(to uint64) {
	if r.clean != 0 && to >= r.clean && len(r.known) > 0 {
		r.intact = append(r.intact, [2]uint64{r.clean, to})
	}
	r.clean = 0
}

// clearIntact removes from the partition's damage record the known entries
// whose stream sequences all lie in a stretch this read found intact, and
// starts the stretch read since afresh.
func (r *copyRead) clearIntact(ctx context.Context) {
	if len(r.known) == 0 {
		return
	}
	if r.clean != 0 && r.expect > r.clean {
		r.intact = append(r.intact, [2]uint64{r.clean, r.expect - 1})
		r.clean = r.expect // the stretch goes on from here
	}
	if len(r.intact) == 0 || ctx.Err() != nil {
		return
	}
	n, c, me := r.n, r.c, r.v.leader
	cleared, err := n.admin.meta.clearScrubbed(ctx, c.t.ID, c.p, me, r.known, r.intact)
	if err != nil {
		n.log.Warn("damage record not cleared", "topic", c.t.Name, "partition", c.p, "node", me, "err", err)
		return
	}
	r.intact = r.intact[:0]
	if len(cleared) == 0 {
		return
	}
	r.known = slices.DeleteFunc(r.known, func(d semantics.BatchDamage) bool { return slices.Contains(cleared, d) })
	n.log.Info("scrub read the partition copy intact: damage record cleared", "topic", c.t.Name, "partition", c.p, "node", me)
}

// run reads the copy on from r.expect through a consumer on this node until it
// reaches the copy's last sequence or the pace asks for a pause longer than
// scrubHold before the next read. Each read waits first until the pacer holds
// the bytes of the batches it asks for, and asks for no more than the pacer
// can hold: a read stays within the pacer's burst however large the batches.
func (r *copyRead) run(ctx context.Context, p *pacer, st *scrubState) error {
	n, c := r.n, r.c
	cons, name, err := n.scrubConsumer(ctx, c.stream, r.expect)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = n.js.DeleteConsumer(dctx, c.stream, name)
		cancel()
	}()
	saved := time.Now()
	first := r.expect == c.from // nothing of the copy read yet: a gap is at its head
	for empty := 0; r.expect <= c.last; {
		var resp semantics.VerifyPartitionResponse
		// Ask for no more than is left: a pull waits for all it asks for (or
		// scrubWait), so asking for more would hold the end of every copy.
		want, d := p.next(r.size(), int(min(scrubFetch, c.last-r.expect+1)))
		if d > scrubHold {
			return nil // the consumer goes meanwhile
		}
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
		fctx, cancel := context.WithTimeout(ctx, scrubWait)
		batch, err := cons.Fetch(want, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return fmt.Errorf("scrub %s at stream sequence %d: %w", c.stream, r.expect, err)
		}
		read, got := r.check(ctx, batch, &resp, first)
		cancel()
		p.charge(read)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			return fmt.Errorf("scrub %s at stream sequence %d: %w", c.stream, r.expect, err)
		}
		first = first && got == 0
		if got > 0 {
			empty = 0
		} else if empty++; empty >= scrubEmptyReads && r.expect <= c.last {
			// Nothing more comes: if the copy is current and holds nothing past
			// expect, the rest is missing from it.
			if n.copyEndsAt(ctx, cons, c.stream) {
				before := len(resp.Damage)
				r.v.gap(ctx, &resp, r.expect, c.last, -1)
				r.found(&resp, before)
				r.expect = c.last + 1
			} else if empty >= 4*scrubEmptyReads {
				return fmt.Errorf("scrub %s at stream sequence %d: the copy on node %s does not get there", c.stream, r.expect, r.v.leader)
			}
		}
		n.admin.scrubs.bytes.Add(read)
		n.scrubFound(ctx, c, resp)
		if time.Since(saved) > scrubSaveEvery {
			st.Next[c.stream] = r.expect
			n.saveScrubState(*st)
			saved = time.Now()
		}
	}
	return nil
}

// check checks the batches of batch, adding what it finds damaged to resp: the
// bytes it read and how many messages it got. head tells that nothing of the
// copy was read before batch.
func (r *copyRead) check(ctx context.Context, batch jetstream.MessageBatch, resp *semantics.VerifyPartitionResponse, head bool) (uint64, int) {
	var read uint64
	got := 0
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil || md.Sequence.Stream < r.expect || r.expect > r.c.last {
			continue
		}
		got++
		seq := md.Sequence.Stream
		before := len(resp.Damage)
		if seq > r.c.last { // the ones up to the last are gone from this copy
			r.v.gap(ctx, resp, r.expect, r.c.last, -1)
			r.found(resp, before)
			r.expect = r.c.last + 1
			continue
		}
		if seq > r.expect && (got > 1 || !head || !r.headMoved(ctx, seq-1)) {
			base := int64(-1)
			if h, err := semantics.PeekBatchHeader(msg.Data()); err == nil {
				base = h.BaseOffset
			}
			r.v.gap(ctx, resp, r.expect, seq-1, base)
		}
		if h, err := semantics.ParseBatchHeader(msg.Data()); err != nil {
			r.v.corrupt(resp, seq, msg.Data(), err)
		} else {
			r.v.next = h.LastOffset() + 1
			r.n.admin.scrubs.batches.Add(1)
		}
		if r.found(resp, before); len(resp.Damage) == before {
			r.readIntact(seq)
		}
		read += uint64(len(msg.Data()))
		r.widest = max(r.widest, uint64(len(msg.Data())))
		r.expect = seq + 1
	}
	return read, got
}

// scrubHeadWait is how long a copy that starts past the sequence the scrub asked
// for waits for the leader's copy to start past it too.
const scrubHeadWait = 10 * time.Second

// headMoved reports whether the leader's copy starts past sequence to, now or
// within scrubHeadWait: each replica removes what its topic's retention.ms
// removes by its own clock, so a follower's copy can start a moment before the
// leader's does.
func (r *copyRead) headMoved(ctx context.Context, to uint64) bool {
	for deadline := time.Now().Add(scrubHeadWait); ; {
		if st, err := r.v.r.StreamInfo(ctx); err == nil && st.FirstSeq > to {
			return true
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, time.Second) {
			return false
		}
	}
}

// scrubFound records the damage resp holds, found in this node's copy of c, as a
// verify does.
func (n *Node) scrubFound(ctx context.Context, c scrubCopy, resp semantics.VerifyPartitionResponse) {
	if len(resp.Damage) == 0 {
		return
	}
	for _, d := range resp.Damage {
		if d.Kind == semantics.DamageCorrupt || d.Kind == semantics.DamageUnreadable {
			n.admin.scrubs.damage.Add(1)
		}
	}
	n.admin.keepVerified(ctx, c.t, c.p, resp, 0, 0) // records; clears nothing
}

// scrubConsumer makes an ephemeral one-replica consumer of stream that runs on
// this node and starts at sequence from. It returns the consumer and its name.
func (n *Node) scrubConsumer(ctx context.Context, stream string, from uint64) (jetstream.Consumer, string, error) {
	me := n.ns.Name()
	for range scrubPlaceTries {
		name := "qxd_scrub_" + rand.Text()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := n.js.CreateConsumer(cctx, stream, jetstream.ConsumerConfig{
			Name:          name,
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
			AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute,
			Replicas: 1, MemoryStorage: true,
		})
		cancel()
		if err != nil {
			return nil, "", fmt.Errorf("scrub %s: create a consumer: %w", stream, err)
		}
		host := ""
		if info := c.CachedInfo(); info != nil && info.Cluster != nil {
			host = info.Cluster.Leader
		}
		if host == me || host == "" && !n.cfg.clustered() {
			return c, name, nil
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = n.js.DeleteConsumer(dctx, stream, name)
		cancel()
	}
	return nil, "", fmt.Errorf("scrub %s: %w in %d tries", stream, errNotPlaced, scrubPlaceTries)
}

// copyEndsAt reports whether this node's copy of stream, read through cons,
// holds nothing past what cons delivered, while the node is current with the
// stream's leader (or leads it): then what the pass expected past it is missing
// from the copy.
func (n *Node) copyEndsAt(ctx context.Context, cons jetstream.Consumer, stream string) bool {
	me := n.ns.Name()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ci, err := cons.Info(ictx)
	if err != nil || ci.NumPending > 0 {
		return false
	}
	s, err := n.js.Stream(ictx, stream)
	if err != nil {
		return false
	}
	si := s.CachedInfo()
	if si.Cluster == nil || si.Cluster.Leader == me || si.Cluster.Leader == "" {
		return true
	}
	for _, r := range si.Cluster.Replicas {
		if r.Name == me {
			return r.Current && r.Lag == 0
		}
	}
	return false
}

// pacer spreads reads at rate bytes a second: a token bucket that starts
// empty, fills at rate and holds at most one second's worth (its burst). A read
// waits until the bucket holds the bytes of the batches it asks for, and asks
// for no more batches than the bucket holds; what it read is then charged. So
// from the pacer's start, at most rate bytes a second are read, give or take
// the misjudged size of the batches of one read (a batch larger than the
// burst waits for a full bucket, and takes it below empty).
type pacer struct {
	rate   float64 // bytes a second; 0: no limit
	tokens float64
	last   time.Time
}

// newPacer returns an empty pacer of rate bytes a second (0: no limit).
func newPacer(rate float64) *pacer { return &pacer{rate: rate, last: time.Now()} }

// fill adds what the bucket gained since it was last looked at.
func (p *pacer) fill() {
	now := time.Now()
	p.tokens = min(p.tokens+now.Sub(p.last).Seconds()*p.rate, p.rate)
	p.last = now
}

// next returns how many batches of about size bytes the next read asks for, at
// least one and at most most, and how long to wait before making it: until the
// bucket holds them.
func (p *pacer) next(size float64, most int) (int, time.Duration) {
	if p.rate <= 0 {
		return most, 0
	}
	p.fill()
	n := max(1, min(most, int(p.rate/size)))
	need := min(float64(n)*size, p.rate)
	if p.tokens >= need {
		return n, 0
	}
	return n, time.Duration(math.Ceil((need - p.tokens) / p.rate * float64(time.Second)))
}

// charge takes n bytes just read from the bucket.
func (p *pacer) charge(n uint64) {
	if p.rate <= 0 {
		return
	}
	p.fill()
	p.tokens -= float64(n)
}

// ParseScrubRate reads a scrub rate (Config.ScrubRate): bytes a second, plain
// or with a unit as semantics.ParseSize reads it ("8MiB", "512KiB", "10MB"),
// optionally followed by "/s"; 0 sets no cap. The error quotes s and says what
// to give.
func ParseScrubRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "/S"))
	if t == "0" {
		return 0, nil
	}
	n, err := semantics.ParseSize(t, false)
	if err != nil {
		return 0, fmt.Errorf("%q is not a rate in bytes a second: give one such as 8MiB or 512KiB, or 0 for no cap", s)
	}
	return n, nil
}

// sleepCtx waits for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loadScrubState reads where the scrub was from the data dir; an empty state
// (a new pass) when there is none or it cannot be read.
func (n *Node) loadScrubState() scrubState {
	var st scrubState
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, scrubStateFile))
	if err != nil {
		return scrubState{}
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Began.After(time.Now()) {
		n.log.Warn("scrub state unreadable: a new pass begins", "err", err)
		return scrubState{}
	}
	if st.Next == nil {
		st.Next = map[string]uint64{}
	}
	return st
}

// saveScrubState keeps st in the data dir (written aside, then renamed).
func (n *Node) saveScrubState(st scrubState) {
	b, err := json.Marshal(st)
	if err == nil {
		path := filepath.Join(n.cfg.DataDir, scrubStateFile)
		if err = os.WriteFile(path+".tmp", b, 0o640); err == nil {
			err = os.Rename(path+".tmp", path)
		}
	}
	if err != nil {
		n.log.Debug("scrub state not saved", "err", err)
	}
}
