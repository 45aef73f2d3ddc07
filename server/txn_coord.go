package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// The transaction coordinator is Kafka's: transactional ids mapped to a producer id
// and epoch, the partitions and groups of the ongoing transaction, and the two
// phases of its end. Every change is written to the qxd_txns bucket by
// compare-and-set before it is acted on, so the decision to commit or abort is
// stored before any marker is written, and a coordinator taking over (or one that
// lost a race with another) finishes what the bucket says.

// txnRecord is one transactional id's state, as stored.
type txnRecord struct {
	ID         string                     `json:"id"`
	ProducerID int64                      `json:"producer_id"`
	Epoch      int16                      `json:"epoch"`
	TimeoutMs  int32                      `json:"timeout_ms"`
	State      semantics.TxnState         `json:"state"`
	Partitions []semantics.TopicPartition `json:"partitions,omitempty"`
	Groups     []txnGroup                 `json:"groups,omitempty"`
	Started    int64                      `json:"started,omitempty"` // Unix ms
	Updated    int64                      `json:"updated"`
	// Ended is the producer's identity in the transaction whose end bumped the
	// epoch (Kafka's EndTxn v5), kept while that end is being completed or is the
	// last thing that happened, so that a retried end is answered as done.
	Ended *txnEnd `json:"ended,omitempty"`
	// NextProducerID is the producer id the producer goes on with once an end
	// that used the epoch's last value completes (0: none).
	NextProducerID int64 `json:"next_producer_id,omitempty"`
}

// txnEnd is the producer id and epoch a bumping end was asked with.
type txnEnd struct {
	ProducerID int64 `json:"producer_id"`
	Epoch      int16 `json:"epoch"`
	Commit     bool  `json:"commit"`
}

// txnGroup is a group added to the transaction and the offsets committed in it,
// stored in the group when the transaction commits.
type txnGroup struct {
	Group      string      `json:"group"`
	Generation int32       `json:"generation"`
	Member     string      `json:"member,omitempty"`
	Offsets    []txnOffset `json:"offsets,omitempty"`
}

type txnOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata,omitempty"`
	TopicID   string `json:"topic_id,omitempty"`
}

// TxnOffset is one offset committed in a transaction (TxnOffsetCommit).
type TxnOffset struct {
	Topic     string
	Partition int32
	Offset    int64
	Metadata  string
	// TopicID, when set, is the id of the topic the offset was committed to
	// (TxnOffsetCommit v6): the offset is not stored if the topic was made again
	// before the transaction commits.
	TopicID string
}

type txnEntry struct {
	mu  sync.Mutex
	rec txnRecord
	rev uint64 // 0: not stored yet
	// pending is what publishLocked last saw of rec: read without mu, which a
	// transaction's end holds while it writes its markers.
	pending atomic.Pointer[pendingOffsets]
}

// pendingOffsets are, by group, the partitions whose offsets a stored
// transaction holds and has not completed: Kafka's pending transactional offset
// commits, which OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT.
type pendingOffsets map[string][]semantics.TopicPartition

// publishLocked makes e's pending offsets, as e.rec has them, visible to
// PendingOffsets. Called with e.mu held whenever e.rec is what is stored.
func (e *txnEntry) publishLocked() {
	var p pendingOffsets
	switch e.rec.State {
	case semantics.TxnOngoing, semantics.TxnPrepareCommit, semantics.TxnPrepareAbort:
		for _, g := range e.rec.Groups {
			for _, o := range g.Offsets {
				if p == nil {
					p = pendingOffsets{}
				}
				p[g.Group] = append(p[g.Group], semantics.TopicPartition{Topic: o.Topic, Partition: o.Partition})
			}
		}
	}
	e.pending.Store(&p)
}

// markerWriter writes a transaction marker to a partition through its writer
// (Writers.EndTxn).
type markerWriter interface {
	EndTxn(ctx context.Context, topic string, p int32, req semantics.MarkerRequest) error
}

// txnOffsetStore stores a committed transaction's group offsets (offsets.Store).
type txnOffsetStore interface {
	Commit(ctx context.Context, group string, gen int32, member string, offs map[semantics.TopicPartition]offsets.Commit) error
}

// txnGroups describes consumer groups (the node's group service, which runs
// beside the transaction coordinator), to check the member of a transaction's
// offset commit.
type txnGroups interface {
	DescribeGroup(ctx context.Context, group string) (groups.GroupDescription, error)
}

// txnCoordinator answers the transaction requests of every transactional id. It
// runs on one node at a time (txnService).
type txnCoordinator struct {
	log     *slog.Logger
	nc      *nats.Conn // for reads from the bucket's leader (kvscan.LeaderScan, GetFresh)
	kv      jetstream.KeyValue
	markers markerWriter
	offsets txnOffsetStore
	topics  topicStore
	groups  txnGroups
	epoch   int32 // this coordinator's epoch, in the markers it writes

	mu   sync.Mutex
	txns map[string]*txnEntry

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// txnCheckEvery is how often the coordinator looks for transactions past their
// timeout and for ends left half-done.
const txnCheckEvery = 250 * time.Millisecond

// markerRetry bounds the wait between attempts to write a marker.
const markerRetry = 200 * time.Millisecond

func newTxnCoordinator(log *slog.Logger, nc *nats.Conn, kv jetstream.KeyValue, markers markerWriter, offs txnOffsetStore, topics topicStore, gs txnGroups) *txnCoordinator {
	return &txnCoordinator{log: log, nc: nc, kv: kv, markers: markers, offsets: offs, topics: topics, groups: gs,
		epoch: int32(time.Now().Unix() & math.MaxInt32), txns: map[string]*txnEntry{}, done: make(chan struct{})}
}

// load reads every stored transaction and starts the background work: ends that a
// previous coordinator decided but did not finish are finished, and transactions
// past their timeout are aborted. The transactions are read as the bucket's
// leader holds them (kvscan.LeaderScan): a replica behind it would hand the
// coordinator a committed transaction as still open (and it would abort it) or
// an epoch already given (and it would give it again). With no leader, load
// fails once ctx ends (kvscan.ErrNoLeader) and the coordinator does not start.
func (c *txnCoordinator) load(ctx context.Context) error {
	txns := map[string]*txnEntry{}
	err := kvscan.LeaderScan(ctx, c.nc, c.kv, jetstream.AllKeys, func(e kvscan.Entry) error {
		var rec txnRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return fmt.Errorf("transaction record %q is corrupt: %w", e.Key, err)
		}
		te := &txnEntry{rec: rec, rev: e.Revision}
		te.publishLocked() // not shared yet
		txns[rec.ID] = te
		return nil
	})
	if err != nil {
		return fmt.Errorf("load transactions: %w", err)
	}
	c.mu.Lock()
	c.txns = txns
	c.mu.Unlock()
	c.wg.Add(1)
	go c.background()
	return nil
}

// close stops the background work and waits for it; it is idempotent.
func (c *txnCoordinator) close() {
	c.closeOnce.Do(func() { close(c.done) })
	c.wg.Wait()
}

// background finishes decided ends and aborts timed-out transactions.
func (c *txnCoordinator) background() {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.done
		cancel()
	}()
	t := time.NewTicker(txnCheckEvery)
	defer t.Stop()
	for {
		c.mu.Lock()
		entries := make([]*txnEntry, 0, len(c.txns))
		for _, e := range c.txns {
			entries = append(entries, e)
		}
		c.mu.Unlock()
		for _, e := range entries {
			if ctx.Err() != nil {
				return
			}
			if !e.mu.TryLock() {
				continue // a request is working on it
			}
			c.tend(ctx, e)
			e.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tend finishes e's decided end, or aborts it past its timeout. Called with e.mu held.
func (c *txnCoordinator) tend(ctx context.Context, e *txnEntry) {
	switch e.rec.State {
	case semantics.TxnPrepareCommit, semantics.TxnPrepareAbort:
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := c.completeLocked(cctx, e); err != nil && ctx.Err() == nil {
			c.log.Warn("transaction end not finished; will retry", "transactional_id", e.rec.ID, "err", err)
		}
	case semantics.TxnOngoing:
		if time.Since(time.UnixMilli(e.rec.Started)) <= time.Duration(e.rec.TimeoutMs)*time.Millisecond {
			return
		}
		c.log.Info("transaction timed out; aborting", "transactional_id", e.rec.ID)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// The producer is fenced, as Kafka does: its epoch is bumped with the abort.
		if err := c.abortFencingLocked(cctx, e); err != nil && ctx.Err() == nil {
			c.log.Warn("transaction abort not finished; will retry", "transactional_id", e.rec.ID, "err", err)
		}
	}
}

// entry returns the entry of id, a new empty one when none is stored.
func (c *txnCoordinator) entry(id string) *txnEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.txns[id]
	if e == nil {
		e = &txnEntry{rec: txnRecord{ID: id}}
		c.txns[id] = e
	}
	return e
}

// existing returns the stored entry of id, or INVALID_PRODUCER_ID_MAPPING.
func (c *txnCoordinator) existing(id string) (*txnEntry, error) {
	c.mu.Lock()
	e := c.txns[id]
	c.mu.Unlock()
	if e == nil {
		return nil, semantics.Errorf(semantics.ErrInvalidProducerIDMapping,
			"transactional id %q has no producer id: call InitProducerId with it first", id)
	}
	return e, nil
}

// txnStoreAttempt bounds one write of a transaction's record, and the read after a
// failed one. A write that the bucket's stream drops in a leader change is never
// answered: unbounded, it held the transaction (and, in the background pass, every
// transaction after it) for the whole deadline of the end (30 s), as after a
// coordinator's failover, when the transactions bucket's leadership moves too.
const txnStoreAttempt = 5 * time.Second

// saveLocked stores e.rec by compare-and-set. A conflict means another coordinator
// wrote it: the entry is read again and NOT_COORDINATOR returned, so the client
// asks again. A write not answered within txnStoreAttempt fails the same way, with
// COORDINATOR_NOT_AVAILABLE (the entry is what the bucket holds, read again).
// Called with e.mu held.
func (c *txnCoordinator) saveLocked(ctx context.Context, e *txnEntry) error {
	wctx, cancel := context.WithTimeout(ctx, txnStoreAttempt)
	defer cancel()
	e.rec.Updated = time.Now().UnixMilli()
	b, err := json.Marshal(e.rec)
	if err != nil {
		return err
	}
	key := semantics.TxnKey(e.rec.ID)
	var rev uint64
	if e.rev == 0 {
		rev, err = c.kv.Create(wctx, key, b)
	} else {
		rev, err = c.kv.Update(wctx, key, b, e.rev)
	}
	if err == nil {
		e.rev = rev
		e.publishLocked()
		return nil
	}
	defer e.publishLocked()
	// What is stored is the truth: read it again, so the change not stored is
	// forgotten (or, if that read fails too, the next request reads it). It is
	// read from the bucket's leader: a replica behind it holds an older record,
	// and the entry went back to a state before the transaction's last
	// transition, its next store failing again on that record's revision.
	id := e.rec.ID
	rctx, cancel := context.WithTimeout(ctx, txnStoreAttempt)
	defer cancel()
	if v, rev, gerr := kvscan.GetFresh(rctx, c.nc, c.kv, key, leaderReadWait); gerr == nil {
		var rec txnRecord
		if json.Unmarshal(v, &rec) == nil {
			e.rec, e.rev = rec, rev
		}
	} else if errors.Is(gerr, jetstream.ErrKeyNotFound) {
		e.rec, e.rev = txnRecord{ID: id}, 0
	} else {
		c.mu.Lock()
		if c.txns[id] == e {
			delete(c.txns, id)
		}
		c.mu.Unlock()
		c.reread(id)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err) {
		return semantics.Errorf(semantics.ErrNotCoordinator, "transactional id %q was changed by another coordinator; retry", id)
	}
	return semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "store transaction %q: %v; retry", id, err)
}

// reread loads id's stored record into a fresh entry, in the background, after a
// store failure left its entry unknown.
func (c *txnCoordinator) reread(id string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v, rev, err := kvscan.GetFresh(ctx, c.nc, c.kv, semantics.TxnKey(id), leaderReadWait)
			cancel()
			if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
				e := &txnEntry{rec: txnRecord{ID: id}}
				if err == nil && json.Unmarshal(v, &e.rec) == nil {
					e.rev = rev
				}
				e.publishLocked() // not shared yet
				c.mu.Lock()
				if _, ok := c.txns[id]; !ok {
					c.txns[id] = e
				}
				c.mu.Unlock()
				return
			}
			select {
			case <-c.done:
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// checkLocked checks a request's producer id and epoch against e. Called with e.mu held.
func checkLocked(e *txnEntry, pid int64, epoch int16) error {
	switch {
	case e.rev == 0 || pid != e.rec.ProducerID:
		return semantics.Errorf(semantics.ErrInvalidProducerIDMapping,
			"transactional id %q does not have producer id %d: call InitProducerId again", e.rec.ID, pid)
	case epoch < e.rec.Epoch:
		return semantics.Errorf(semantics.ErrProducerFenced,
			"transactional id %q: producer %d epoch %d was fenced by epoch %d (a newer producer with the same transactional id, or the transaction timed out)",
			e.rec.ID, pid, epoch, e.rec.Epoch)
	case epoch > e.rec.Epoch:
		return semantics.Errorf(semantics.ErrInvalidProducerEpoch,
			"transactional id %q: producer %d epoch %d is newer than the coordinator's %d", e.rec.ID, pid, epoch, e.rec.Epoch)
	}
	return nil
}

// InitProducerID gives transactional id its producer id and the next epoch,
// fencing earlier producers with the id: an ongoing transaction is aborted (its
// markers carry the new epoch, so the partitions refuse the old one), an end
// already decided is finished. A producer that gives its current id and epoch
// (pid ≥ 0) keeps its id; another id or epoch is PRODUCER_FENCED.
func (c *txnCoordinator) InitProducerID(ctx context.Context, id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, error) {
	if id == "" {
		return -1, -1, semantics.Errorf(semantics.ErrInvalidRequest, "transactional id is empty: give one, or use an idempotent producer without transactions")
	}
	if timeout <= 0 || timeout > semantics.MaxTxnTimeout {
		return -1, -1, semantics.Errorf(semantics.ErrInvalidTransactionTimeout,
			"transaction timeout %v is outside (0, %v]: set transaction.timeout.ms within it", timeout, semantics.MaxTxnTimeout)
	}
	e := c.entry(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rev == 0 {
		e.rec = txnRecord{ID: id, ProducerID: rand.Int64N(math.MaxInt64), TimeoutMs: int32(timeout / time.Millisecond), State: semantics.TxnEmpty}
		if err := c.saveLocked(ctx, e); err != nil {
			return -1, -1, err
		}
		return e.rec.ProducerID, e.rec.Epoch, nil
	}
	if pid >= 0 && (pid != e.rec.ProducerID || epoch != e.rec.Epoch) {
		return -1, -1, semantics.Errorf(semantics.ErrProducerFenced,
			"transactional id %q: producer %d epoch %d is not the current one (producer %d epoch %d)", id, pid, epoch, e.rec.ProducerID, e.rec.Epoch)
	}
	bumped := false
	switch e.rec.State {
	case semantics.TxnOngoing:
		if err := c.abortFencingLocked(ctx, e); err != nil {
			return -1, -1, err
		}
		bumped = true
	case semantics.TxnPrepareCommit, semantics.TxnPrepareAbort:
		if err := c.completeLocked(ctx, e); err != nil {
			return -1, -1, err
		}
	}
	if !bumped {
		if e.rec.Epoch >= math.MaxInt16-1 {
			e.rec.ProducerID, e.rec.Epoch = rand.Int64N(math.MaxInt64), 0
		} else {
			e.rec.Epoch++
		}
	}
	e.rec.TimeoutMs = int32(timeout / time.Millisecond)
	e.rec.State = semantics.TxnEmpty
	e.rec.Ended = nil
	if err := c.saveLocked(ctx, e); err != nil {
		return -1, -1, err
	}
	return e.rec.ProducerID, e.rec.Epoch, nil
}

// abortFencingLocked bumps e's epoch and aborts its ongoing transaction with the new
// epoch, so every partition of it refuses the old one. Called with e.mu held.
func (c *txnCoordinator) abortFencingLocked(ctx context.Context, e *txnEntry) error {
	e.rec.Ended = nil
	if e.rec.Epoch >= math.MaxInt16-1 {
		// No epoch left to fence with: abort with this one; the next
		// InitProducerId gives a new producer id.
		e.rec.State = semantics.TxnPrepareAbort
	} else {
		e.rec.Epoch++
		e.rec.State = semantics.TxnPrepareAbort
	}
	if err := c.saveLocked(ctx, e); err != nil {
		return err
	}
	return c.completeLocked(ctx, e)
}

// beginLocked makes e's transaction ongoing if it is not. Called with e.mu held.
func beginLocked(e *txnEntry) error {
	switch e.rec.State {
	case semantics.TxnOngoing:
	case semantics.TxnPrepareCommit, semantics.TxnPrepareAbort:
		return semantics.Errorf(semantics.ErrConcurrentTransactions, "transactional id %q: the previous transaction is still being completed; retry", e.rec.ID)
	default:
		e.rec.State = semantics.TxnOngoing
		e.rec.Started = time.Now().UnixMilli()
		e.rec.Partitions, e.rec.Groups, e.rec.Ended = nil, nil, nil
	}
	return nil
}

// AddPartitions adds partitions to the ongoing transaction of id (starting one).
func (c *txnCoordinator) AddPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []semantics.TopicPartition) error {
	e, err := c.existing(id)
	if err != nil {
		return err
	}
	for _, tp := range parts {
		t, err := c.topics.getTopic(ctx, tp.Topic)
		if err != nil {
			return err
		}
		if tp.Partition < 0 || tp.Partition >= t.Config.Partitions {
			return semantics.Errorf(semantics.ErrUnknownTopic, "topic %q has no partition %d", tp.Topic, tp.Partition)
		}
		if t.Config.Compact {
			return semantics.Errorf(semantics.ErrInvalidRecord,
				"topic %q is compacted: transactions are not supported on compacted topics", tp.Topic)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := checkLocked(e, pid, epoch); err != nil {
		return err
	}
	was := e.rec.State == semantics.TxnOngoing
	if err := beginLocked(e); err != nil {
		return err
	}
	n := len(e.rec.Partitions)
	for _, tp := range parts {
		if !slices.Contains(e.rec.Partitions, tp) {
			e.rec.Partitions = append(e.rec.Partitions, tp)
		}
	}
	if was && n == len(e.rec.Partitions) {
		return nil
	}
	return c.saveLocked(ctx, e)
}

// AddGroup adds group to the ongoing transaction of id (starting one), so that
// offsets committed with TxnCommitOffsets are stored when it commits.
func (c *txnCoordinator) AddGroup(ctx context.Context, id string, pid int64, epoch int16, group string) error {
	if err := semantics.ValidateGroupID(group); err != nil {
		return err
	}
	e, err := c.existing(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := checkLocked(e, pid, epoch); err != nil {
		return err
	}
	if err := beginLocked(e); err != nil {
		return err
	}
	if !slices.ContainsFunc(e.rec.Groups, func(g txnGroup) bool { return g.Group == group }) {
		e.rec.Groups = append(e.rec.Groups, txnGroup{Group: group, Generation: -1})
	}
	return c.saveLocked(ctx, e)
}

// CommitOffsets records offsets of group in the ongoing transaction of id; they are
// stored in the group when the transaction commits, and dropped if it aborts. The
// group must have been added (AddGroup). A member and generation given must be
// the group's current ones (Kafka's KIP-447), so that a member whose partitions
// moved in a rebalance it has not noticed cannot commit offsets of records their
// new owner reads; generation -1 without a member (older Kafka clients) is not
// checked.
func (c *txnCoordinator) CommitOffsets(ctx context.Context, id string, pid int64, epoch int16, group string, generation int32, member string, offs []TxnOffset) error {
	e, err := c.existing(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := checkLocked(e, pid, epoch); err != nil {
		return err
	}
	if err := c.checkMember(ctx, group, generation, member); err != nil {
		return err
	}
	i := slices.IndexFunc(e.rec.Groups, func(g txnGroup) bool { return g.Group == group })
	if e.rec.State != semantics.TxnOngoing || i < 0 {
		return semantics.Errorf(semantics.ErrInvalidTxnState,
			"transactional id %q: group %q is not in an ongoing transaction: add it with AddOffsetsToTxn first", id, group)
	}
	g := &e.rec.Groups[i]
	g.Generation, g.Member = generation, member
	for _, o := range offs {
		if err := offsets.CheckOffset(o.Offset); err != nil {
			return fmt.Errorf("%s: %w", semantics.PartitionString(o.Topic, o.Partition), err)
		}
		j := slices.IndexFunc(g.Offsets, func(x txnOffset) bool { return x.Topic == o.Topic && x.Partition == o.Partition })
		to := txnOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata, TopicID: o.TopicID}
		if j >= 0 {
			g.Offsets[j] = to
		} else {
			g.Offsets = append(g.Offsets, to)
		}
	}
	return c.saveLocked(ctx, e)
}

// checkMember checks that member is in group's generation, as the group
// coordinator checks a commit's; generation -1 without a member is not checked.
func (c *txnCoordinator) checkMember(ctx context.Context, group string, generation int32, member string) error {
	if c.groups == nil || (generation < 0 && member == "") {
		return nil
	}
	d, err := c.groups.DescribeGroup(ctx, group)
	if errors.Is(err, semantics.ErrGroupIDNotFound) {
		return semantics.Errorf(semantics.ErrUnknownMemberID, "group %q has no member %q: it does not exist; join it", group, member)
	}
	if err != nil {
		return fmt.Errorf("check member %q of group %q: %w", member, group, err)
	}
	if !slices.ContainsFunc(d.Members, func(m groups.MemberDescription) bool { return m.MemberID == member }) {
		return semantics.Errorf(semantics.ErrUnknownMemberID, "group %q has no member %q (removed, or never joined): rejoin the group", group, member)
	}
	if generation != d.Generation {
		return semantics.Errorf(semantics.ErrIllegalGeneration,
			"offsets of member %q of group %q are from generation %d, the group is in generation %d: abort the transaction and rejoin", member, group, generation, d.Generation)
	}
	return nil
}

// EndTxn commits or aborts the ongoing transaction of id: the decision is stored,
// then a marker is written to every partition of the transaction and, on commit,
// the offsets committed in it are stored in their groups. It returns once all of
// that is done; if ctx ends first, the coordinator finishes it in the background
// and a retried EndTxn answers once it has.
func (c *txnCoordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit bool) error {
	e, err := c.existing(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := checkLocked(e, pid, epoch); err != nil {
		return err
	}
	want, done := semantics.TxnPrepareAbort, semantics.TxnCompleteAbort
	if commit {
		want, done = semantics.TxnPrepareCommit, semantics.TxnCompleteCommit
	}
	switch e.rec.State {
	case semantics.TxnOngoing:
		e.rec.State = want
		if err := c.saveLocked(ctx, e); err != nil {
			return err
		}
	case want:
	case done:
		return nil // a retry of an end that finished
	default:
		return semantics.Errorf(semantics.ErrInvalidTxnState,
			"transactional id %q is %s: it has no ongoing transaction to %s", id, e.rec.State, map[bool]string{true: "commit", false: "abort"}[commit])
	}
	return c.finishLocked(ctx, e)
}

// finishLocked completes e's stored decision: even if the client goes away
// meanwhile, within ctx's deadline or endTxnWait. Called with e.mu held.
func (c *txnCoordinator) finishLocked(ctx context.Context, e *txnEntry) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(endTxnWait)
	}
	cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	return c.completeLocked(cctx, e)
}

// EndTxnBumping is Kafka's EndTxn v5 (KIP-890 part 2, transaction.version 2):
// the end bumps the producer's epoch, its markers carry the new epoch (so every
// partition of the transaction refuses the old one), and it returns the producer
// id and epoch of the next transaction — a new producer id, epoch 0, when the
// epoch has no value left. A retry at the ended epoch is answered as done with
// the new ones; an abort with no ongoing transaction is taken (it bumps the
// epoch and writes no marker), a commit is INVALID_TXN_STATE.
func (c *txnCoordinator) EndTxnBumping(ctx context.Context, id string, pid int64, epoch int16, commit bool) (int64, int16, error) {
	e, err := c.existing(id)
	if err != nil {
		return -1, -1, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	want := semantics.TxnPrepareAbort
	if commit {
		want = semantics.TxnPrepareCommit
	}
	verb := map[bool]string{true: "commit", false: "abort"}[commit]
	if l := e.rec.Ended; l != nil && e.rev != 0 && l.ProducerID == pid && l.Epoch == epoch {
		// A retry of the end that bumped the epoch (Ended is cleared when
		// anything else changes the producer or starts a transaction).
		if l.Commit != commit {
			return -1, -1, semantics.Errorf(semantics.ErrInvalidTxnState,
				"transactional id %q: producer %d epoch %d ended its transaction with %s, not %s", id, pid, epoch,
				map[bool]string{true: "a commit", false: "an abort"}[l.Commit], verb)
		}
		if e.rec.State == want {
			if err := c.finishLocked(ctx, e); err != nil {
				return -1, -1, err
			}
		}
		return e.rec.ProducerID, e.rec.Epoch, nil
	}
	if err := checkLocked(e, pid, epoch); err != nil {
		return -1, -1, err
	}
	switch e.rec.State {
	case semantics.TxnOngoing:
	case semantics.TxnEmpty, semantics.TxnCompleteCommit, semantics.TxnCompleteAbort:
		if commit {
			return -1, -1, semantics.Errorf(semantics.ErrInvalidTxnState,
				"transactional id %q is %s: it has no ongoing transaction to commit", id, e.rec.State)
		}
		e.rec.Partitions, e.rec.Groups = nil, nil // an abort of an empty transaction
	default:
		return -1, -1, semantics.Errorf(semantics.ErrConcurrentTransactions,
			"transactional id %q: the previous transaction is still being completed; retry", id)
	}
	e.rec.Ended = &txnEnd{ProducerID: pid, Epoch: epoch, Commit: commit}
	if epoch >= math.MaxInt16-1 {
		// The markers take the epoch's last value; the producer goes on with a
		// new producer id.
		e.rec.NextProducerID = rand.Int64N(math.MaxInt64-1) + 1
	}
	e.rec.Epoch = epoch + 1
	e.rec.State = want
	if err := c.saveLocked(ctx, e); err != nil {
		return -1, -1, err
	}
	if err := c.finishLocked(ctx, e); err != nil {
		return -1, -1, err
	}
	return e.rec.ProducerID, e.rec.Epoch, nil
}

// endTxnWait bounds how long EndTxn finishes a transaction's end itself before
// leaving it to the background (and the client's retry).
const endTxnWait = 30 * time.Second

// completeLocked finishes e's decided end: markers to every partition, the
// offsets of a commit, then the complete state. Called with e.mu held.
func (c *txnCoordinator) completeLocked(ctx context.Context, e *txnEntry) error {
	commit := e.rec.State == semantics.TxnPrepareCommit
	req := semantics.MarkerRequest{ProducerID: e.rec.ProducerID, Epoch: e.rec.Epoch, Commit: commit, CoordinatorEpoch: c.epoch}
	errs := make([]error, len(e.rec.Partitions))
	var wg sync.WaitGroup
	for i, tp := range e.rec.Partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.writeMarker(ctx, tp, req)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transactional id %q: write markers: %w", e.rec.ID, err)
	}
	if commit {
		for _, g := range e.rec.Groups {
			if err := c.commitGroup(ctx, g); err != nil {
				return fmt.Errorf("transactional id %q: store offsets of group %q: %w", e.rec.ID, g.Group, err)
			}
		}
	}
	e.rec.State = semantics.TxnCompleteAbort
	if commit {
		e.rec.State = semantics.TxnCompleteCommit
	}
	e.rec.Partitions, e.rec.Groups, e.rec.Started = nil, nil, 0
	if e.rec.NextProducerID != 0 {
		e.rec.ProducerID, e.rec.Epoch, e.rec.NextProducerID = e.rec.NextProducerID, 0, 0
	}
	return c.saveLocked(ctx, e)
}

// writeMarker writes one marker, retrying while the partition has no writer
// (leadership moving) until ctx ends. A topic deleted meanwhile needs none.
func (c *txnCoordinator) writeMarker(ctx context.Context, tp semantics.TopicPartition, req semantics.MarkerRequest) error {
	warned := time.Now()
	for {
		err := c.markers.EndTxn(ctx, tp.Topic, tp.Partition, req)
		switch {
		case err == nil, errors.Is(err, semantics.ErrUnknownTopic):
			return nil
		case errors.Is(err, semantics.ErrInvalidProducerEpoch):
			// A newer epoch ended it already (a fencing abort).
			return nil
		}
		if time.Since(warned) >= 5*time.Second {
			warned = time.Now()
			c.log.Warn("transaction marker not written yet; retrying", "topic", tp.Topic, "partition", tp.Partition, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", semantics.PartitionString(tp.Topic, tp.Partition), ctx.Err(), err)
		case <-time.After(markerRetry):
		}
	}
}

// commitGroup stores a committed transaction's offsets of one group, retrying
// until ctx ends. A newer generation's commit is left as it is (a zombie's).
func (c *txnCoordinator) commitGroup(ctx context.Context, g txnGroup) error {
	if len(g.Offsets) == 0 {
		return nil
	}
	offs := make(map[semantics.TopicPartition]offsets.Commit, len(g.Offsets))
	for _, o := range g.Offsets {
		offs[semantics.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = offsets.Commit{Offset: o.Offset, Metadata: o.Metadata, TopicID: o.TopicID}
	}
	gen := max(g.Generation, offsets.NoGeneration)
	for {
		err := c.offsets.Commit(ctx, g.Group, gen, g.Member, offs)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, semantics.ErrIllegalGeneration), errors.Is(err, semantics.ErrUnknownTopic), errors.Is(err, semantics.ErrInvalidRequest):
			c.log.Warn("transaction's offsets not stored", "group", g.Group, "err", err)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(markerRetry):
		}
	}
}

// PendingOffsets returns the partitions of group whose offsets a transaction
// holds that has not completed: stored in the group if it commits, dropped if it
// aborts. It does not wait for a transaction's end in progress.
func (c *txnCoordinator) PendingOffsets(group string) []semantics.TopicPartition {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.txns))
	for _, e := range c.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	var out []semantics.TopicPartition
	for _, e := range entries {
		if p := e.pending.Load(); p != nil {
			for _, tp := range (*p)[group] {
				if !slices.Contains(out, tp) {
					out = append(out, tp)
				}
			}
		}
	}
	return out
}

// Describe returns the state of transactional ids (every one when ids is nil);
// an unknown id is TRANSACTIONAL_ID_NOT_FOUND in its place.
func (c *txnCoordinator) Describe(id string) (semantics.TxnDescription, error) {
	c.mu.Lock()
	e := c.txns[id]
	c.mu.Unlock()
	if e == nil {
		return semantics.TxnDescription{TransactionalID: id}, semantics.Errorf(semantics.ErrTransactionalIDNotFound, "transactional id %q is not known to the coordinator", id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rev == 0 {
		return semantics.TxnDescription{TransactionalID: id}, semantics.Errorf(semantics.ErrTransactionalIDNotFound, "transactional id %q is not known to the coordinator", id)
	}
	return describe(e.rec), nil
}

func describe(r txnRecord) semantics.TxnDescription {
	d := semantics.TxnDescription{TransactionalID: r.ID, ProducerID: r.ProducerID, Epoch: r.Epoch, State: r.State,
		TimeoutMs: r.TimeoutMs, StartMs: -1, Partitions: slices.Clone(r.Partitions)}
	if r.State == semantics.TxnOngoing || r.State == semantics.TxnPrepareCommit || r.State == semantics.TxnPrepareAbort {
		d.StartMs = r.Started
	}
	for _, g := range r.Groups {
		d.Groups = append(d.Groups, g.Group)
	}
	return d
}

// List returns every known transactional id's description, by id.
func (c *txnCoordinator) List() []semantics.TxnDescription {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.txns))
	for _, e := range c.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	out := make([]semantics.TxnDescription, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		if e.rev != 0 {
			out = append(out, describe(e.rec))
		}
		e.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b semantics.TxnDescription) int {
		switch {
		case a.TransactionalID < b.TransactionalID:
			return -1
		case a.TransactionalID > b.TransactionalID:
			return 1
		}
		return 0
	})
	return out
}
