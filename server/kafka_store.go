package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe" // go:linkname, for the stream lookup; the StoreMsg layout

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// The Kafka listener reads the batches of a partition this node leads, and its
// stream's state, from the stream's store, in process: StreamStore.LoadMsg copies each stored message
// once, from the store's block cache into a buffer of its own, where a batched
// direct get has nats-server load and copy it, send it through the in-process
// connection, and nats.go read it into a fresh buffer again. What it returns is
// what a direct get returns: the bytes stored, checked by the caller against
// their CRC-32C (invariant 7) as before.
//
// A partition writer's load reads its stream's state, the checkpoint stored in
// it and its abort markers (writer.streamState, lastOn, abortMarkers), and
// replays the batches after its checkpoint (writer.replayer), from the same
// store (Node.replayStore): the writer runs where the stream is led.
//
// Only the stream's leader reads its own store. On a replicated stream the
// leader stores a message when it applies it, and it applies only what its RAFT
// group committed (nats-server v2.15.2: processClusteredInboundMsg proposes the
// message, applyStreamEntries stores it through processJetStreamMsg), so the
// store never holds an entry that could be rolled back; the reads are still
// bounded by the leader's last sequence and the high watermark, as before. A node
// that loses the leadership during a read stops reading its store there, keeping
// what it read (committed entries); the next fetch reads through NATS.
//
// nats-server exports no way to reach a stream: (*stream).Store is exported,
// but only (*Account).lookupStream returns a *stream, and StoreMsg's fields are
// unexported. lookupStream, (*stream).Store, (*stream).IsLeader and
// (*stream).config are linked as lookupRaftNode is (isolation_raft.go), the
// *stream kept as the opaque pointer it is, and a loaded StoreMsg is read through storeMsgView, whose layout is
// checked against StoreMsg's once (storeLayoutOK). As of nats-server v2.15.2 (the
// version in go.mod); when it is upgraded, check that the four functions keep
// their signatures (a rename fails the build at link time, a changed signature
// does not), that StoreMsg keeps its fields (a change turns the store reads off,
// with a log line), that a leader still stores only what it applied, and that
// its message get still answers with LoadNextMsg and LoadLastMsg (leaderStore.get
// does what it does), that its stream info still reads FastState and the
// running configuration's metadata (leaderStore.state), and that LoadMsg and LoadNextMsg still copy a message into the
// StoreMsg's buf (appending to it) rather than point into the store's cache: the
// buffers the Kafka reads give them are the backend's (batchBufs), written again
// by later reads.
// kafka.TestFetchReadsLeaderStoreAcrossLeaderChange and the Kafka fetch tests check
// the effect, and
// TestWriterReplayStoreMatchesNATS, TestWriterLoadLookupsMatchRequests and
// TestWriterLoadReplaysLeaderStore the writers'.

// streamLookup is nats-server's (*Account).lookupStream: the stream named name
// in account a, as the opaque *stream pointer.
//
//go:linkname streamLookup github.com/nats-io/nats-server/v2/server.(*Account).lookupStream
func streamLookup(a *natsserver.Account, name string) (unsafe.Pointer, error)

// streamStore is nats-server's (*stream).Store: the stream's store.
//
//go:linkname streamStore github.com/nats-io/nats-server/v2/server.(*stream).Store
func streamStore(mset unsafe.Pointer) natsserver.StreamStore

// streamIsLeader is nats-server's (*stream).IsLeader: whether this server leads
// the stream (always, for a stream that is not clustered).
//
//go:linkname streamIsLeader github.com/nats-io/nats-server/v2/server.(*stream).IsLeader
func streamIsLeader(mset unsafe.Pointer) bool

// storedStreamConfig is nats-server's (*stream).config: a copy of the stream's
// configuration.
//
//go:linkname storedStreamConfig github.com/nats-io/nats-server/v2/server.(*stream).config
func storedStreamConfig(mset unsafe.Pointer) natsserver.StreamConfig

// storeMsgView is nats-server v2.15.2's StoreMsg with its fields readable.
type storeMsgView struct {
	subj string
	hdr  []byte
	msg  []byte
	buf  []byte
	seq  uint64
	ts   int64
}

// storeLayoutOK reports whether StoreMsg is laid out as storeMsgView: the same
// fields, names, kinds and offsets, and the same size.
var storeLayoutOK = sync.OnceValue(func() bool {
	got, want := reflect.TypeFor[natsserver.StoreMsg](), reflect.TypeFor[storeMsgView]()
	if got.Size() != want.Size() || got.NumField() != want.NumField() {
		return false
	}
	for i := range want.NumField() {
		g, w := got.Field(i), want.Field(i)
		if g.Name != w.Name || g.Offset != w.Offset || g.Type.Kind() != w.Type.Kind() ||
			(w.Type.Kind() == reflect.Slice && g.Type.Elem().Kind() != w.Type.Elem().Kind()) {
			return false
		}
	}
	return true
})

// leaderStore is the store of a partition stream this node leads.
type leaderStore struct {
	mset  unsafe.Pointer
	store natsserver.StreamStore
}

// storeReads counts the batches a reader (the Kafka listener, the writers'
// replays) read from its own store and through NATS, and says once when it
// cannot read a store it should.
type storeReads struct {
	store, nats atomic.Int64
	off         sync.Once
}

// errStoreLayout: this nats-server's StoreMsg is not laid out as storeMsgView,
// and no store is read in process.
var errStoreLayout = errors.New("this nats-server's StoreMsg is not laid out as expected")

// leaderStore returns the store of stream when this node leads it; nil when it
// does not, and nil with an error when its store cannot be read in process
// (errStoreLayout, or the stream is not found in process). The stream is looked
// up at every call, so a stream deleted and made again (a topic deleted and
// created again) is never read through the store of the old one.
func (n *Node) leaderStore(stream string) (*leaderStore, error) {
	if !storeLayoutOK() {
		return nil, errStoreLayout
	}
	acc := n.ns.GlobalAccount()
	if acc == nil {
		return nil, nil
	}
	mset, err := streamLookup(acc, stream)
	if err == nil && mset == nil {
		err = errors.New("no stream")
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	if !streamIsLeader(mset) {
		return nil, nil
	}
	st := streamStore(mset)
	if st == nil {
		return nil, nil
	}
	return &leaderStore{mset: mset, store: st}, nil
}

// leaderStore returns the store of stream when this node leads it, or nil, for
// the Kafka listener's reads: see Node.leaderStore.
func (b *kafkaBackend) leaderStore(stream string) *leaderStore {
	s, err := b.n.leaderStore(stream)
	switch {
	case errors.Is(err, errStoreLayout):
		b.stores.off.Do(func() {
			b.n.log.Warn("kafka fetches read through NATS: this nats-server's StoreMsg is not laid out as expected")
		})
	case err != nil && b.n.isStreamLeader(stream):
		b.stores.off.Do(func() {
			b.n.log.Warn("kafka fetches read a partition this node leads through NATS: its stream is not found in process", "err", err)
		})
	}
	return s
}

// state is the stream's state as its leader's stream info answers it (the
// figures partition.Reader.StreamInfo reads): the store's, and the log start in
// the stream's metadata. It is the leader's own: a stream info request this node
// sends is answered by it too.
func (s *leaderStore) state() (partition.StreamState, error) {
	var st natsserver.StreamState
	s.store.FastState(&st)
	out := partition.StreamState{FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Msgs: st.Msgs, Bytes: st.Bytes}
	if st.Lost != nil {
		out.Lost = st.Lost.Msgs
	}
	if v, ok := storedStreamConfig(s.mset).Metadata[semantics.LogStartMetadata]; ok {
		ls, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ls < 0 {
			return partition.StreamState{}, fmt.Errorf("stream metadata %s=%q is not an offset", semantics.LogStartMetadata, v)
		}
		out.LogStart = ls
	}
	return out, nil
}

// streamState is r's stream state, read from its store when this node leads
// it, else asked of its leader.
func (b *kafkaBackend) streamState(ctx context.Context, r *partition.Reader) (partition.StreamState, error) {
	if s := b.leaderStore(r.Stream); s != nil {
		return s.state()
	}
	return r.StreamInfo(ctx)
}

// errStoreStopped is a store read that stopped before its first message: the
// node no longer leads the stream, the store does not hold the sequence asked
// for (yet), or the store is closed (the stream deleted).
var errStoreStopped = errors.New("the leader's store could not be read")

// read loads the stored messages from seq on, as a batched direct get of req
// answers them (the next stored message at or after each sequence, at most
// req.Batch of them, up to req.UpToSeq, stopping once req.MaxBytes are passed),
// each into a buffer of its own: from bufs when it is set (the message's buf,
// for the caller to give back once done with it), else a fresh one. It stops
// early where this node stopped leading the stream; with nothing read it is
// errStoreStopped. A message the store cannot load (damaged on disk) ends the
// read as a message with no data at its sequence: the caller's checks find it,
// as they find a damaged batch.
func (s *leaderStore) read(req directBatchRequest, bufs *batchBufs) ([]directMsg, error) {
	var out []directMsg
	size := 0
	var sm natsserver.StoreMsg
	view := (*storeMsgView)(unsafe.Pointer(&sm))
	// guess sizes the buffer of the next message: the size of the one before
	// (a partition's batches are alike).
	var guess int
	if bufs != nil {
		guess = int(bufs.last.Load())
	}
	for seq := max(req.Seq, 1); seq <= req.UpToSeq && len(out) < req.Batch && size < req.MaxBytes; seq++ {
		if !streamIsLeader(s.mset) {
			break
		}
		// A buffer of its own for each message: they are answered as they are.
		got := bufs.get(guess)
		view.buf = got
		_, err := s.store.LoadMsg(seq, &sm)
		if err != nil && !errors.Is(err, natsserver.ErrStoreEOF) && !errors.Is(err, natsserver.ErrStoreClosed) {
			// Removed (a compacted topic's log has such holes, a damaged
			// block rebuilt loses some): the next one stored, as a direct
			// get answers.
			view.buf = got[:0]
			_, _, err = s.store.LoadNextMsg(">", true, seq, &sm)
			if err != nil && !errors.Is(err, natsserver.ErrStoreEOF) && !errors.Is(err, natsserver.ErrStoreClosed) {
				bufs.put(got)
				out = append(out, directMsg{seq: seq})
				break
			}
		}
		if err != nil || view.seq < seq || view.seq > req.UpToSeq {
			bufs.put(got)
			break
		}
		seq = view.seq
		data := view.msg[:len(view.msg):len(view.msg)]
		var buf []byte // the buffer to give back, when pooled
		if bufs != nil {
			buf = view.buf
			if !sameBuf(buf, got) {
				// Larger than the buffer taken: loaded into one of its own.
				bufs.put(got)
			}
			if cap(buf) >= 1<<batchBufMinShift && len(buf) < cap(buf)/4 {
				// A small message in a large buffer: a copy of its own, the
				// buffer back.
				data = append([]byte(nil), data...)
				bufs.put(buf)
				buf = nil
			}
			guess = len(view.buf)
			bufs.last.Store(int64(guess))
		}
		out = append(out, directMsg{seq: seq, data: data, buf: buf})
		size += len(view.msg)
	}
	if len(out) == 0 {
		return nil, errStoreStopped
	}
	return out, nil
}

// next loads the first message stored at seq or after it on a subject filter
// (a partition's semantics.StreamSubject, a wildcard) matches, as the stream leader's message get answers a request for it
// (nats-server v2.15.2 jsMsgGetRequest: LoadNextMsg, and any error there is
// "no message found"), into a buffer of its own: semantics.ErrNoBatch when the
// store holds none (or cannot load it: a damaged message, as the leader's get
// answers it), errStoreStopped once this node no longer leads the stream or the
// store is closed. The message carries no headers.
func (s *leaderStore) next(filter string, seq uint64) (partition.Msg, error) {
	return s.get(filter, seq, false)
}

// last loads the last message stored on subject, with its headers, as the
// stream leader's message get answers a last-by-subject request
// (partition.Reader.GetLastFor; nats-server v2.15.2 jsMsgGetRequest:
// LoadLastMsg, and any error there is "no message found"): semantics.ErrNoBatch
// when the store holds none, errStoreStopped as next.
func (s *leaderStore) last(subject string) (partition.Msg, error) {
	return s.get(subject, 0, true)
}

// allOn loads every message stored on subject from st.FirstSeq to st.LastSeq,
// with their headers, in order, where st is the store's state (state): what
// partition.Reader.AllOn reads with the leader's next-by-subject gets.
// errStoreStopped once this node no longer leads the stream or the store is
// closed, with nothing kept: the caller reads them all again through NATS.
func (s *leaderStore) allOn(subject string, st partition.StreamState) ([]partition.Msg, error) {
	if st.Msgs == 0 {
		return nil, nil
	}
	var out []partition.Msg
	for seq := st.FirstSeq; seq <= st.LastSeq; {
		m, err := s.get(subject, seq, true)
		if errors.Is(err, semantics.ErrNoBatch) {
			break
		}
		if err != nil {
			return nil, err
		}
		if m.Seq > st.LastSeq {
			break
		}
		out = append(out, m)
		seq = m.Seq + 1
	}
	return out, nil
}

// get is next (seq > 0: the first message at or after seq on subject, a filter)
// and last (seq 0: the last one on subject), with the stored headers when hdrs
// is set, as the leader's message get decodes them.
func (s *leaderStore) get(subject string, seq uint64, hdrs bool) (partition.Msg, error) {
	if !streamIsLeader(s.mset) {
		return partition.Msg{}, errStoreStopped
	}
	var sm natsserver.StoreMsg
	view := (*storeMsgView)(unsafe.Pointer(&sm))
	var err error
	if seq > 0 {
		_, _, err = s.store.LoadNextMsg(subject, subjectHasWildcard(subject), seq, &sm)
	} else {
		_, err = s.store.LoadLastMsg(subject, &sm)
	}
	switch {
	case errors.Is(err, natsserver.ErrStoreClosed):
		return partition.Msg{}, errStoreStopped
	case err != nil:
		return partition.Msg{}, semantics.ErrNoBatch
	}
	m := partition.Msg{Seq: view.seq, Subject: view.subj, Data: view.msg[:len(view.msg):len(view.msg)],
		Time: time.Unix(0, view.ts).UTC()}
	if hdrs && len(view.hdr) > 0 {
		h, err := nats.DecodeHeadersMsg(view.hdr)
		if err != nil {
			return partition.Msg{}, fmt.Errorf("stream sequence %d: decode stored headers: %w", view.seq, err)
		}
		m.Header = h
	}
	return m, nil
}

// subjectHasWildcard is nats-server's test of a subject filter (unexported
// there): a token that is "*" or ">".
func subjectHasWildcard(subject string) bool {
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "*" || tok == ">" {
			return true
		}
	}
	return false
}

// KafkaFetchReads counts the stored batches the node's Kafka listener has read
// for fetches since it started: from the store of a partition the node leads,
// in process, and through NATS (batched direct gets: partitions led elsewhere,
// a store that could not be read).
type KafkaFetchReads struct {
	Store, NATS int64
}

// KafkaFetchReads reads the Kafka listener's counts of batches read; false
// without a Kafka listener.
func (n *Node) KafkaFetchReads() (KafkaFetchReads, bool) {
	if n.kafka == nil {
		return KafkaFetchReads{}, false
	}
	s := &n.kafka.b.stores
	return KafkaFetchReads{Store: s.store.Load(), NATS: s.nats.Load()}, true
}

// replayStore returns the store of stream when this node leads it, or nil, for
// the writers' replays: see Node.leaderStore.
func (n *Node) replayStore(stream string) *leaderStore {
	s, err := n.leaderStore(stream)
	switch {
	case errors.Is(err, errStoreLayout):
		n.replays.off.Do(func() {
			n.log.Warn("partition writers replay their logs through NATS: this nats-server's StoreMsg is not laid out as expected")
		})
	case err != nil && n.isStreamLeader(stream):
		n.replays.off.Do(func() {
			n.log.Warn("a partition writer replays its log through NATS: its stream is not found in process", "err", err)
		})
	}
	return s
}

// WriterReplays counts the stored batches the node's partition writers read
// when they load (the replay after a checkpoint, the last batch's epoch):
// from the store of a partition the node leads, in process, and through NATS
// (the leader's message gets, and their fallbacks while JetStream's meta group
// has no leader).
type WriterReplays struct {
	Store, NATS int64
}

// WriterReplays reads the partition writers' counts of batches replayed.
func (n *Node) WriterReplays() WriterReplays {
	return WriterReplays{Store: n.replays.store.Load(), NATS: n.replays.nats.Load()}
}

// WriterLoadLookups counts the partition writers' loads' reads of their logs
// other than the replay (WriterReplays): the stream's state, the checkpoint
// stored in it and the scan of its abort markers, each read from the store of
// a partition the node leads, in process, or asked of the stream's leader with
// a JetStream API request (partitions the node does not lead, a store that
// could not be read).
type WriterLoadLookups struct {
	Store, NATS int64
}

// WriterLoadLookups reads the partition writers' counts of load lookups.
func (n *Node) WriterLoadLookups() WriterLoadLookups {
	return WriterLoadLookups{Store: n.lookups.store.Load(), NATS: n.lookups.nats.Load()}
}
