package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/semantics"
)

// reconcileEvery is how often the node checks which partitions it leads.
const reconcileEvery = 250 * time.Millisecond

// writerManager runs a writer for every partition whose stream this node leads, and
// stops it when leadership moves or the topic goes away. It learns topics by
// watching the topics bucket.
type writerManager struct {
	env      writerEnv
	topicsKV jetstream.KeyValue // the topics bucket, watched

	mu      sync.Mutex
	topics  map[string]semantics.TopicMeta
	writers map[string]*writer   // by stream name
	held    map[string]time.Time // streams being handed off, until when: start no writer
	// starting are the writers being started, by stream name: each starts on its
	// own goroutine, and a reconcile neither waits for it nor starts another.
	starting map[string]*startingWriter
	stopped  bool // stop began: a writer that finishes starting is stopped at once
	// startSlots bounds how many writers load at a time on the node.
	startSlots chan struct{}
	// startCtx is the parent of every start; stop cancels it.
	startCtx    context.Context
	startCancel context.CancelFunc
	starts      sync.WaitGroup // the start goroutines; added to with mu held
	// live are the writers by stream name too, for Writers: a lookup must not wait
	// for mu, which a reconcile holds while it starts writers.
	live sync.Map

	kick chan struct{}
	// elected wakes the loop on JetStream's leader-elected advisories, so that a
	// new leader's writer starts at once, not on the next reconcileEvery.
	elected *nats.Subscription
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing sync.WaitGroup // the last checkpoints of writers a reconcile stopped; added to with mu held
	running atomic.Bool    // started and not stopping: the node's readiness
}

// writerEnv is what partition writers need from their node.
type writerEnv struct {
	log *slog.Logger
	// node is the node's name as JetStream's advisories name a stream's leader:
	// each writer also takes requests on its WriterDirectSubject.
	node string
	// conn is the connection the writer of partition p of topic takes requests and
	// sends appends on.
	conn func(topic string, p int32) *nats.Conn
	// reads is the connection writers read their partitions' logs on.
	reads *nats.Conn
	// store is the store of a stream this node leads, read in process, or nil
	// (Node.replayStore); a nil store func: none. replays counts the batches
	// the writers' loads replayed from it and through NATS, lookups the loads'
	// other reads of the log (stream state, checkpoint, abort markers).
	store       func(stream string) *leaderStore
	replays     *storeReads
	lookups     *storeReads
	leads       streamLeadership
	checkpoints checkpointStore
	obs         *observers // the services' Observers
	// epoch is a partition stream's leader epoch on this node (see epochs.of);
	// nil: 0.
	epoch func(ctx context.Context, stream string) int32
	// producerIdle is how long a writer remembers an idle idempotent producer
	// (Config.ProducerIDExpiration); 0: defaultProducerIdle.
	producerIdle time.Duration
	// stores finds the durability handle of a stream's store on this node
	// (storeSyncOf), cached when still the stream's; nil: topics' durability is
	// not applied, every store syncs as the node does.
	stores func(stream string, cached *storeSync) (s *storeSync, fixed, why string)
	// syncAlways: the node syncs every append (--sync always).
	syncAlways bool
	// noDurabilityTick, when set and true, has the writers' background ticks
	// leave their stores' durability alone (Node.noDurabilityTick); nil: they
	// keep it.
	noDurabilityTick *atomic.Bool
}

// startingWriter is a writer being started, and done, closed once the start is
// over and the writer registered, or stopped because it is no longer wanted.
type startingWriter struct {
	w    *writer
	done chan struct{}
}

func newWriterManager(env writerEnv, topics jetstream.KeyValue) *writerManager {
	m := &writerManager{env: env, topicsKV: topics, topics: map[string]semantics.TopicMeta{},
		writers: map[string]*writer{}, held: map[string]time.Time{}, starting: map[string]*startingWriter{},
		startSlots: make(chan struct{}, writerStarts), kick: make(chan struct{}, 1)}
	m.startCtx, m.startCancel = context.WithCancel(context.Background())
	return m
}

// setWriter records w as the running writer of stream. Called with mu held.
func (m *writerManager) setWriter(stream string, w *writer) {
	m.writers[stream] = w
	m.live.Store(stream, w)
}

// dropWriter forgets the writer of stream. Called with mu held.
func (m *writerManager) dropWriter(stream string) {
	delete(m.writers, stream)
	m.live.Delete(stream)
}

// lookup returns the running writer of stream, nil when this node runs none.
func (m *writerManager) lookup(stream string) *writer {
	w, _ := m.live.Load(stream)
	wr, _ := w.(*writer)
	return wr
}

// wake makes the loop reconcile at once.
func (m *writerManager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// handOffHold bounds how long a stream handed off stays without a writer on this node
// while the node still leads it (the step-down is slow or did not happen).
const handOffHold = 5 * time.Second

// release stops the writer of stream, if this node runs one, and starts none for it
// until the node no longer leads the stream or handOffHold passes: the stream is
// about to step down, and its writer must append nothing more before a writer on the
// new leader loads the log.
func (m *writerManager) release(ctx context.Context, stream string) {
	m.mu.Lock()
	m.held[stream] = time.Now().Add(handOffHold)
	if s, ok := m.starting[stream]; ok {
		// The writer is loading: once loaded it sees the hold and stops itself
		// without taking a request.
		m.mu.Unlock()
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	if w, ok := m.writers[stream]; ok {
		m.stopWriter(ctx, w)
		m.dropWriter(stream)
	}
}

// unhold lets the manager run a writer for stream again (its step-down failed).
func (m *writerManager) unhold(stream string) {
	m.mu.Lock()
	delete(m.held, stream)
	m.mu.Unlock()
	m.wake()
}

func (m *writerManager) start(ctx context.Context) error {
	cancel, err := kvscan.Reconciler{Every: reconcileEvery, Kick: m.kick, FirstNow: true,
		Apply: m.apply, Reconcile: m.reconcile}.Start(m.topicsKV, &m.wg)
	if err != nil {
		return err
	}
	m.cancel = cancel
	// The node is ready once the writers of the partitions it leads now serve.
	m.awaitStarts(ctx, func(string) bool { return true })
	if m.env.reads != nil {
		// Best effort: without it, leadership is seen every reconcileEvery.
		m.elected, _ = m.env.reads.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, "*"), func(*nats.Msg) { m.wake() })
	}
	m.running.Store(true)
	return nil
}

func (m *writerManager) apply(e jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.topics, semantics.DecodeTopic(e.Key()))
		return
	}
	t, err := decodeTopic(e)
	if err != nil {
		m.env.log.Warn("skipping corrupt topic record", "topic", semantics.DecodeTopic(e.Key()), "err", err)
		return
	}
	m.topics[t.Name] = t
}

// sync makes the manager see topic t at once (after an admin change on this node),
// and waits (bounded by ctx) for the writers of t's partitions this node leads to
// start.
func (m *writerManager) sync(ctx context.Context, t semantics.TopicMeta) {
	m.mu.Lock()
	m.topics[t.Name] = t
	m.mu.Unlock()
	m.reconcile(ctx)
	m.awaitStarts(ctx, func(stream string) bool {
		topic, _, ok := semantics.ParseStreamName(stream)
		return ok && topic == t.Name
	})
}

// awaitStarts waits, bounded by ctx, until every writer being started now for a
// stream that of accepts has started or given up.
func (m *writerManager) awaitStarts(ctx context.Context, of func(stream string) bool) {
	m.mu.Lock()
	var wait []chan struct{}
	for stream, s := range m.starting {
		if of(stream) {
			wait = append(wait, s.done)
		}
	}
	m.mu.Unlock()
	for _, done := range wait {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

func (m *writerManager) forget(ctx context.Context, name string) {
	m.mu.Lock()
	delete(m.topics, name)
	m.mu.Unlock()
	m.reconcile(ctx)
}

// Bounds of one writer's start (load from the log) and stop (appends in flight, last
// checkpoint) in the reconcile loop, so that one partition whose stream or checkpoint
// bucket is between leaders cannot hold up the others.
const (
	writerStartTimeout = 15 * time.Second
	writerStopTimeout  = 10 * time.Second
	// writerStarts is how many writers load at a time on a node: the loads' reads
	// queue in JetStream's API workers anyway, and more at once only lengthen
	// every load.
	writerStarts = 16
)

// reconcile starts and stops writers to match topics and stream leadership.
func (m *writerManager) reconcile(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	want := map[string]bool{}
	for _, t := range m.topics {
		if t.State != semantics.TopicReady {
			continue
		}
		for p := int32(0); p < t.Config.Partitions; p++ {
			stream := semantics.StreamName(t.Name, p)
			if !m.env.leads.isStreamLeader(stream) {
				delete(m.held, stream)
				continue
			}
			if until, ok := m.held[stream]; ok {
				if time.Now().Before(until) {
					continue
				}
				delete(m.held, stream)
			}
			want[stream] = true
			if w, ok := m.writers[stream]; ok {
				if w.topicID == t.ID {
					w.setConfig(t.Config)
					continue
				}
				m.stopWriter(ctx, w)
				m.dropWriter(stream)
			}
			if _, ok := m.starting[stream]; ok {
				continue
			}
			m.startWriter(stream, newWriter(m.env, t, p, m.wake))
		}
	}
	var wg sync.WaitGroup
	// The writers of streams this node no longer leads stop side by side, and
	// their last checkpoints are written after the reconcile: a checkpoint waits
	// up to stopCheckpointTimeout when the checkpoint bucket is between leaders
	// (a node that woke from a pause made its leader step down too), and the
	// next reconcile must be free to start the writer of a stream this node was
	// elected to lead again meanwhile. A writer that starts before its
	// predecessor's last checkpoint is stored replays a little more of the log.
	var stopped []*writer
	for stream, w := range m.writers {
		if !want[stream] {
			stopped = append(stopped, w)
			m.dropWriter(stream)
		}
	}
	m.closing.Add(len(stopped))
	for _, w := range stopped {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, writerStopTimeout)
			halted := w.halt(hctx)
			cancel()
			if !halted {
				m.closing.Done()
				return
			}
			go func() {
				defer m.closing.Done()
				w.lastCheckpoint(context.WithoutCancel(ctx))
			}()
		}()
	}
	wg.Wait()
}

// startWriter starts w, the writer of stream, on a goroutine of its own and returns
// at once: a partition whose load waits (its stream is between leaders, or every
// batch aged out and the checkpoint bucket has no quorum) or replays a long tail
// holds up neither the other partitions' starts nor the next reconcile, which may
// start the writers of streams elected meanwhile. Called with mu held.
func (m *writerManager) startWriter(stream string, w *writer) {
	s := &startingWriter{w: w, done: make(chan struct{})}
	m.starting[stream] = s
	m.starts.Add(1)
	go func() {
		defer m.starts.Done()
		defer close(s.done)
		select {
		case m.startSlots <- struct{}{}:
		case <-m.startCtx.Done():
			m.finishStart(stream, s, m.startCtx.Err())
			return
		}
		sctx, cancel := context.WithTimeout(m.startCtx, writerStartTimeout)
		err := w.start(sctx)
		cancel()
		<-m.startSlots
		m.finishStart(stream, s, err)
	}()
}

// finishStart registers the writer s started for stream, if the start succeeded
// and the node still wants it: it leads the stream, the topic is the same, no
// hand-off holds the stream, and the manager is not stopping. Otherwise the
// writer is stopped before it takes a request the node should not serve.
func (m *writerManager) finishStart(stream string, s *startingWriter, err error) {
	w := s.w
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.starting, stream)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			m.env.log.Warn("writer did not start; will retry", "topic", w.topic, "partition", w.p, "err", err)
		}
		return
	}
	t, ok := m.topics[w.topic]
	_, held := m.held[stream]
	if m.stopped || !ok || t.ID != w.topicID || t.State != semantics.TopicReady || held || !m.env.leads.isStreamLeader(stream) {
		m.stopWriter(m.startCtx, w)
		m.wake()
		return
	}
	w.setConfig(t.Config)
	m.setWriter(stream, w)
}

func (m *writerManager) stopWriter(ctx context.Context, w *writer) {
	ctx, cancel := context.WithTimeout(ctx, writerStopTimeout)
	defer cancel()
	w.stop(ctx)
}

// stop stops every writer, letting appends in flight finish within ctx.
func (m *writerManager) stop(ctx context.Context) error {
	m.running.Store(false)
	if m.elected != nil {
		m.elected.Unsubscribe()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.startCancel()
	m.starts.Wait() // added to with mu held, before stopped was set
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closing.Wait() // added to with mu held
	var wg sync.WaitGroup
	for _, w := range m.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stop(ctx)
		}()
	}
	wg.Wait()
	for stream := range m.writers {
		m.dropWriter(stream)
	}
	return ctx.Err()
}
