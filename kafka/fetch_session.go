package kafka

import (
	"container/list"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sessions (KIP-227), as Kafka's brokers keep them (FetchSession.scala).
// A full fetch with epoch 0 asks for a session: the node remembers the fetch's
// partitions and what it last answered for each, and gives a session id. The
// client's next fetches are incremental (the id and epochs 1, 2, …): they name
// only the partitions whose fetch offset or limits changed, and those to forget,
// and the answer holds only the partitions with something to say. A full fetch
// with epoch -1 is sessionless, and closes the session it names.

// Kafka's session codes.
const (
	codeFetchSessionIDNotFound   int16 = 70  // FETCH_SESSION_ID_NOT_FOUND
	codeInvalidFetchSessionEpoch int16 = 71  // INVALID_FETCH_SESSION_EPOCH
	codeFetchSessionTopicIDError int16 = 106 // FETCH_SESSION_TOPIC_ID_ERROR
)

// A full fetch's epochs: initial asks for a session, final for none.
const (
	sessionEpochInitial int32 = 0
	sessionEpochFinal   int32 = -1
)

// Defaults of the session cache, Kafka's max.incremental.fetch.session.cache.slots
// and min.incremental.fetch.session.eviction.ms.
const (
	DefaultFetchSessionSlots    = 1000
	DefaultFetchSessionEviction = 120 * time.Second
)

// nextEpoch is the epoch after e, as Kafka counts: 1 after MaxInt32.
func nextEpoch(e int32) int32 {
	switch {
	case e < 0:
		return sessionEpochFinal
	case e == math.MaxInt32:
		return 1
	}
	return e + 1
}

// sessionKey names a partition in a session: by topic id in a session of Fetch
// v13+ (name empty), by name before (id zero).
type sessionKey struct {
	id        [16]byte
	topic     string
	partition int32
}

// sessionPart is a partition of a session: the fetch parameters the client last
// sent for it, and what the node last answered.
type sessionPart struct {
	key sessionKey
	req kmsg.FetchRequestTopicPartition
	// What the client was last told; -1 before any answer, and the high
	// watermark -1 after an error, so that the next answer is sent.
	highWatermark, lastStable, logStart int64
	at                                  *list.Element
}

// fetchSession is one client's session.
type fetchSession struct {
	id        int32
	principal string
	usesIDs   bool
	created   time.Time

	// Guarded by the cache's mu.
	lastUsed time.Time
	size     int // partitions at the last touch

	mu    sync.Mutex
	epoch int32 // the epoch the next incremental fetch must carry
	parts map[sessionKey]*sessionPart
	order *list.List // of *sessionPart: the order the partitions are read in
}

// fetchSessions is a node's session cache: at most slots sessions. A session
// asked for when the cache is full takes the place of one idle longer than
// evictAfter (the least recently used first) or, failing that, of the smallest
// session older than evictAfter when the new one has more partitions; else the
// fetch is answered without a session (session id 0), which clients take as a
// sign to send full fetches.
type fetchSessions struct {
	slots      int
	evictAfter time.Duration

	mu   sync.Mutex
	byID map[int32]*fetchSession
	// For the metrics: the partitions the sessions hold (their sizes at their
	// last touch, summed), and the sessions evicted since the cache was made.
	partitions int
	evictions  uint64
}

func newFetchSessions(slots int, evictAfter time.Duration) *fetchSessions {
	return &fetchSessions{slots: slots, evictAfter: evictAfter, byID: map[int32]*fetchSession{}}
}

// newID draws a random positive session id not in use. Called with mu held.
func (fs *fetchSessions) newID() int32 {
	for {
		id := rand.Int32()
		if _, used := fs.byID[id]; id != 0 && !used {
			return id
		}
	}
}

// create stores a new session of principal holding parts, in that order, and
// returns its id; 0 when the cache is full and nothing may be evicted.
func (fs *fetchSessions) create(principal string, usesIDs bool, parts []*sessionPart) int32 {
	now := time.Now()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.byID) >= fs.slots && !fs.evictFor(len(parts), now) {
		return 0
	}
	s := &fetchSession{id: fs.newID(), principal: principal, usesIDs: usesIDs, created: now,
		epoch: nextEpoch(sessionEpochInitial), parts: make(map[sessionKey]*sessionPart, len(parts)), order: list.New()}
	for _, p := range parts {
		if _, dup := s.parts[p.key]; dup {
			continue
		}
		p.at = s.order.PushBack(p)
		s.parts[p.key] = p
	}
	s.lastUsed, s.size = now, len(s.parts)
	fs.byID[s.id] = s
	fs.partitions += s.size
	return s.id
}

// evictFor makes room for a new session of size partitions, as Kafka's
// tryEvict does; false when no session may go. Called with mu held.
func (fs *fetchSessions) evictFor(size int, now time.Time) bool {
	var lru, small *fetchSession
	for _, s := range fs.byID {
		if lru == nil || s.lastUsed.Before(lru.lastUsed) || (s.lastUsed.Equal(lru.lastUsed) && s.id < lru.id) {
			lru = s
		}
		if now.Sub(s.created) > fs.evictAfter && (small == nil || s.size < small.size || (s.size == small.size && s.id < small.id)) {
			small = s
		}
	}
	var gone *fetchSession
	switch {
	case lru != nil && now.Sub(lru.lastUsed) > fs.evictAfter:
		gone = lru
	case small != nil && size > small.size:
		gone = small
	default:
		return false
	}
	fs.drop(gone)
	fs.evictions++
	return true
}

// drop takes s out of the cache. Called with mu held.
func (fs *fetchSessions) drop(s *fetchSession) {
	delete(fs.byID, s.id)
	fs.partitions -= s.size
}

// remove closes the session id of principal, if there is one.
func (fs *fetchSessions) remove(id int32, principal string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if s, ok := fs.byID[id]; ok && s.principal == principal {
		fs.drop(s)
	}
}

// len is the number of sessions cached.
func (fs *fetchSessions) len() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.byID)
}

// stats reads the cache's figures for the metrics.
func (fs *fetchSessions) stats() FetchSessionStats {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return FetchSessionStats{Sessions: len(fs.byID), Partitions: fs.partitions, Evictions: fs.evictions}
}

// update applies an incremental fetch of session id at epoch to its session:
// the partitions named are added or take the request's parameters, those
// forgotten are removed, and the epoch moves on. It returns the session and the
// partitions to read, in the session's order; a session error code (nothing
// changed); or, when the fetch left the session empty, no session (it is
// closed: the fetch is answered as a sessionless one).
func (fs *fetchSessions) update(id, epoch int32, principal string, usesIDs bool, parts []*sessionPart, forget []sessionKey) (*fetchSession, []sessionPart, int16) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	s, ok := fs.byID[id]
	if !ok || s.principal != principal {
		// Another principal's session is not found: its id tells nothing.
		return nil, nil, codeFetchSessionIDNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != epoch {
		return nil, nil, codeInvalidFetchSessionEpoch
	}
	if s.usesIDs != usesIDs {
		return nil, nil, codeFetchSessionTopicIDError
	}
	for _, p := range parts {
		if have, ok := s.parts[p.key]; ok {
			have.req = p.req
			continue
		}
		p.at = s.order.PushBack(p)
		s.parts[p.key] = p
	}
	for _, k := range forget {
		if p, ok := s.parts[k]; ok {
			s.order.Remove(p.at)
			delete(s.parts, k)
		}
	}
	if len(s.parts) == 0 {
		fs.drop(s)
		return nil, nil, 0
	}
	fs.partitions += len(s.parts) - s.size
	s.lastUsed, s.size = time.Now(), len(s.parts)
	s.epoch = nextEpoch(s.epoch)
	read := make([]sessionPart, 0, len(s.parts))
	for e := s.order.Front(); e != nil; e = e.Next() {
		read = append(read, *e.Value.(*sessionPart))
	}
	return s, read, 0
}

// answered filters an incremental fetch's answer to the partitions with
// something to say — batches, a changed high watermark, last stable offset or
// log start, an error — and remembers what they said. Partitions that returned
// batches go to the end of the session's order, so that a fetch's byte limit
// serves the others first next time. key names an answered partition as the
// session does. It returns the code to answer instead when the session has moved
// on since update (a fetch of the same epoch raced this one): Kafka's
// INVALID_FETCH_SESSION_EPOCH, with no partitions.
func (s *fetchSession) answered(epoch int32, resp *kmsg.FetchResponse, key func(t *kmsg.FetchResponseTopic, p int32) sessionKey) int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != nextEpoch(epoch) {
		return codeInvalidFetchSessionEpoch
	}
	topics := resp.Topics[:0]
	for ti := range resp.Topics {
		t := resp.Topics[ti]
		kept := t.Partitions[:0]
		for _, rp := range t.Partitions {
			p, ok := s.parts[key(&t, rp.Partition)]
			if !ok {
				// Not the session's (it cannot be): say it.
				kept = append(kept, rp)
				continue
			}
			if p.tell(&rp) {
				kept = append(kept, rp)
				if len(rp.RecordBatches) > 0 {
					s.order.MoveToBack(p.at)
				}
			}
		}
		if len(kept) > 0 {
			t.Partitions = kept
			topics = append(topics, t)
		}
	}
	resp.Topics = topics
	return 0
}

// tell reports whether the answer rp must be sent, and remembers it.
func (p *sessionPart) tell(rp *kmsg.FetchResponseTopicPartition) bool {
	say := len(rp.RecordBatches) > 0 || rp.PreferredReadReplica >= 0
	if rp.HighWatermark != p.highWatermark || rp.LastStableOffset != p.lastStable || rp.LogStartOffset != p.logStart {
		say = true
		p.highWatermark, p.lastStable, p.logStart = rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset
	}
	if rp.ErrorCode != 0 {
		p.highWatermark = -1
		say = true
	}
	return say
}
