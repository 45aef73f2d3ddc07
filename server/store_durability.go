package server

import (
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe" // go:linkname, for the file store's sync settings

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd/semantics"
)

// A topic's durability (semantics.TopicConfig.Durability) is kept in the topic's
// record, not in its partition streams' JetStream config, and applied at run time,
// by the writer of each one-replica partition, to the file store of the partition's
// stream on the node that holds it.
//
// Why not JetStream's own persist mode: nats-server v2.15.2 fixes a stream's
// PersistMode when the stream is created (stream.go configUpdateCheckLocked:
// "stream configuration update can not change persist mode"), and a topic's
// durability must be alterable. What PersistMode async does to a one-replica
// store is four settings (stream.go addStreamWithAssignmentAndMode, filestore.go
// UpdateConfig): FileStoreConfig.SyncAlways and AsyncFlush, the atomic syncAlways
// that the write path reads before it fsyncs a block (flushPendingMsgsLocked), and
// fip, flush in place, whose absence has writes gather in memory for a flusher
// goroutine (flushLoop, up to maxFlushWait). qxd sets the same four, under the
// store's lock, as UpdateConfig does. Streams are created in JetStream's default
// mode, so the safe direction is the default: a node that has not applied "async"
// (it restarted, it just became the stream's holder, or this nats-server's file
// store is not laid out as expected) syncs every append, as the node's --sync says.
//
// Such a node tells: describe shows each partition with the durability its
// store writes and, where that is not the topic's and will not become it, why
// (writer.durability); an alter of the durability fails, naming the topic, the
// partitions, the node and what they write (awaitDurability). The record keeps
// the durability asked for.
//
// Going back to sync sets the four first, then flushes and fsyncs every block of
// the store (syncBlocks): once it returns, every append made while the store was
// async is on disk too.
//
// A stream created with PersistMode async (by a qxd from before durability was
// alterable) is made to sync the same way. JetStream sets such a store back to
// async whenever its config is updated (UpdateConfig reads the stream's
// PersistMode), so the writer checks the store before it acknowledges each append
// (writer.keepDurabilityLocked): a store that should sync always and does not is
// set back, flushed and fsynced before the producer hears of its append. So is a
// store that replaced the one the writer set (the stream deleted and created
// again with persist mode async): the old store's closed flag says so.
//
// nats-server exports none of this: (*fileStore).syncBlocks and
// (*msgBlock).spinUpFlushLoop are linked as the stream lookup is (kafka_store.go),
// and the fields are found by name and type through reflect, once: a field
// missing or of another type turns the run-time setting off (fileStoreType): the
// stores then write as JetStream set them up, sync as the node does (async for a
// stream created with persist mode async), with a log line, and describe and
// alter say so as above. As of nats-server v2.15.2; when it is upgraded, check
// the two functions' signatures, that PersistMode still means these four
// settings, and that a stopped store sets closed. TestTopicDurabilityAlter
// checks the effect, TestTopicDurabilityCannotApply what a node that cannot set
// the stores says, TestTopicDurabilityStoreReplaced a store replaced under the
// writer, TestDurabilityPowerCutAltered (chaos) what a power cut keeps.

// fileStoreSyncBlocks is nats-server's (*fileStore).syncBlocks: flush every
// block's pending writes and fsync those not synced yet.
//
//go:linkname fileStoreSyncBlocks github.com/nats-io/nats-server/v2/server.(*fileStore).syncBlocks
func fileStoreSyncBlocks(fs unsafe.Pointer)

// msgBlockSpinUpFlushLoop is nats-server's (*msgBlock).spinUpFlushLoop: start
// the block's flusher goroutine unless it runs.
//
//go:linkname msgBlockSpinUpFlushLoop github.com/nats-io/nats-server/v2/server.(*msgBlock).spinUpFlushLoop
func msgBlockSpinUpFlushLoop(mb unsafe.Pointer)

// fileStoreLayout are the offsets of the file store's fields qxd sets.
type fileStoreLayout struct {
	typ                                    reflect.Type // *fileStore
	mu, fcfg, cfg, syncAlways, syncOnFlush uintptr
	closed, fip, lmb                       uintptr
}

// fileStoreType checks t, the dynamic type of a StreamStore, and returns the
// offsets of the fields qxd sets, or why it cannot use them.
func fileStoreType(t reflect.Type) (fileStoreLayout, string) {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || t.Elem().Name() != "fileStore" ||
		t.Elem().PkgPath() != "github.com/nats-io/nats-server/v2/server" {
		return fileStoreLayout{}, "the stream's store is not nats-server's file store"
	}
	s := t.Elem()
	l := fileStoreLayout{typ: t}
	for _, f := range []struct {
		name string
		want reflect.Type
		kind reflect.Kind // when want is nil
		off  *uintptr
	}{
		{"mu", reflect.TypeFor[sync.RWMutex](), 0, &l.mu},
		{"fcfg", reflect.TypeFor[natsserver.FileStoreConfig](), 0, &l.fcfg},
		{"cfg", reflect.TypeFor[natsserver.FileStreamInfo](), 0, &l.cfg},
		{"syncAlways", reflect.TypeFor[atomic.Bool](), 0, &l.syncAlways},
		{"syncOnFlush", reflect.TypeFor[atomic.Bool](), 0, &l.syncOnFlush},
		{"closed", reflect.TypeFor[atomic.Bool](), 0, &l.closed},
		{"fip", reflect.TypeFor[bool](), 0, &l.fip},
		{"lmb", nil, reflect.Pointer, &l.lmb},
	} {
		sf, ok := s.FieldByName(f.name)
		switch {
		case !ok || len(sf.Index) != 1:
			return fileStoreLayout{}, "the file store has no field " + f.name
		case f.want != nil && sf.Type != f.want:
			return fileStoreLayout{}, "the file store's field " + f.name + " is a " + sf.Type.String() + ", not a " + f.want.String()
		case f.want == nil && (sf.Type.Kind() != f.kind || sf.Type.Elem().Name() != "msgBlock"):
			return fileStoreLayout{}, "the file store's field " + f.name + " is a " + sf.Type.String() + ", not a *msgBlock"
		}
		*f.off = sf.Offset
	}
	return l, ""
}

// layouts caches fileStoreType by store type (there is one).
var layouts sync.Map // reflect.Type → layoutResult

type layoutResult struct {
	l   fileStoreLayout
	why string
}

func layoutOf(store natsserver.StreamStore) (fileStoreLayout, string) {
	t := reflect.TypeOf(store)
	if t == nil {
		return fileStoreLayout{}, "the stream has no store"
	}
	if r, ok := layouts.Load(t); ok {
		r := r.(layoutResult)
		return r.l, r.why
	}
	l, why := fileStoreType(t)
	layouts.Store(t, layoutResult{l, why})
	return l, why
}

// storeSync is the file store of one partition stream on this node, as far as
// its durability goes.
type storeSync struct {
	store natsserver.StreamStore
	p     unsafe.Pointer // the *fileStore
	l     fileStoreLayout
	// legacy: the stream was created with JetStream's PersistMode async.
	legacy bool
}

// storeSyncOf returns the durability handle of stream's store on this node,
// cached when it is the handle of the store the stream has. When there is none
// it returns why, and fixed: the durability the store writes with as JetStream
// set it up, which qxd then cannot change (async for a stream created with
// JetStream's persist mode async, else sync, as the node's --sync says), or ""
// when no store was found. mismatch, when set, is taken for the reason the file
// store is not laid out as qxd expects (Node.storeMismatch).
func storeSyncOf(ns *natsserver.Server, stream string, cached *storeSync, mismatch string) (s *storeSync, fixed, why string) {
	acc := ns.GlobalAccount()
	if acc == nil {
		return nil, "", "the node has no account"
	}
	mset, err := streamLookup(acc, stream)
	if err != nil || mset == nil {
		return nil, "", "the stream is not on this node"
	}
	st := streamStore(mset)
	if st == nil {
		return nil, "", "the stream has no store"
	}
	legacy := func() bool { return storedStreamConfig(mset).PersistMode == natsserver.AsyncPersistMode }
	if mismatch != "" {
		why = mismatch
	} else if cached != nil && cached.store == st {
		return cached, "", ""
	} else {
		var l fileStoreLayout
		if l, why = layoutOf(st); why == "" {
			return &storeSync{store: st, p: reflect.ValueOf(st).UnsafePointer(), l: l, legacy: legacy()}, "", ""
		}
	}
	if legacy() {
		return nil, semantics.DurabilityAsync, why
	}
	return nil, semantics.DurabilitySync, why
}

// storeSync is storeSyncOf on this node's server (writerEnv.stores).
func (n *Node) storeSync(stream string, cached *storeSync) (*storeSync, string, string) {
	var mismatch string
	if p := n.storeMismatch.Load(); p != nil {
		mismatch = *p
	}
	return storeSyncOf(n.ns, stream, cached, mismatch)
}

func (s *storeSync) mu() *sync.RWMutex { return (*sync.RWMutex)(unsafe.Add(s.p, s.l.mu)) }
func (s *storeSync) fcfg() *natsserver.FileStoreConfig {
	return (*natsserver.FileStoreConfig)(unsafe.Add(s.p, s.l.fcfg))
}
func (s *storeSync) cfg() *natsserver.FileStreamInfo {
	return (*natsserver.FileStreamInfo)(unsafe.Add(s.p, s.l.cfg))
}
func (s *storeSync) syncAlwaysFlag() *atomic.Bool {
	return (*atomic.Bool)(unsafe.Add(s.p, s.l.syncAlways))
}
func (s *storeSync) syncOnFlushFlag() *atomic.Bool {
	return (*atomic.Bool)(unsafe.Add(s.p, s.l.syncOnFlush))
}
func (s *storeSync) fip() *bool { return (*bool)(unsafe.Add(s.p, s.l.fip)) }
func (s *storeSync) lmb() unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Add(s.p, s.l.lmb))
}

// syncsAlways reports whether the store fsyncs each write before it returns: the
// flag its write path reads. Lock-free.
func (s *storeSync) syncsAlways() bool { return s.syncAlwaysFlag().Load() }

// closed reports whether the store is stopped: its stream was deleted or
// re-created (JetStream gives a stream a store when it adds the stream, and
// stops it when it removes the stream), so appends go to another store or
// none. Lock-free.
func (s *storeSync) closed() bool { return (*atomic.Bool)(unsafe.Add(s.p, s.l.closed)).Load() }

// effective is the store's durability as it writes now: async while its writes
// gather in memory for a flusher, sync when each is written (and, on a node that
// syncs always, fsynced) before the store returns.
func (s *storeSync) effective(nodeSyncsAlways bool) string {
	mu := s.mu()
	mu.RLock()
	defer mu.RUnlock()
	if !*s.fip() || (nodeSyncsAlways && !s.syncAlwaysFlag().Load()) {
		return semantics.DurabilityAsync
	}
	return semantics.DurabilitySync
}

// is reports whether the store is set as apply(async, nodeSyncsAlways) sets it;
// true, without looking, while the store's lock is taken (a write, a compaction):
// the caller looks again later.
func (s *storeSync) is(async, nodeSyncsAlways bool) bool {
	mu := s.mu()
	if !mu.TryRLock() {
		return true
	}
	defer mu.RUnlock()
	if async {
		return !*s.fip() && !s.syncAlwaysFlag().Load()
	}
	return *s.fip() && s.syncAlwaysFlag().Load() == nodeSyncsAlways
}

// errReplicated refuses to set the durability of a replicated stream's store,
// which JetStream keeps in step with its RAFT log.
const errReplicated = "the stream has more than one replica"

// apply sets the store to durability: async, or sync as the node's --sync says
// (nodeSyncsAlways: fsync every write). Back to sync, it returns once every
// earlier write is flushed and, on a node that syncs always, fsynced. It returns
// why it changed nothing.
func (s *storeSync) apply(async, nodeSyncsAlways bool) string {
	mu := s.mu()
	mu.Lock()
	if s.cfg().Replicas > 1 {
		mu.Unlock()
		return errReplicated
	}
	fcfg := s.fcfg()
	if async {
		// As UpdateConfig does for PersistMode async: the flags first, then the
		// last block's flusher (later blocks start theirs when !fip).
		fcfg.SyncAlways, fcfg.AsyncFlush = false, true
		s.syncAlwaysFlag().Store(false)
		s.syncOnFlushFlag().Store(false)
		*s.fip() = false
		if lmb := s.lmb(); lmb != nil {
			msgBlockSpinUpFlushLoop(lmb)
		}
		mu.Unlock()
		return ""
	}
	// Sync first, so that the flusher's next flush and every write from here on
	// fsyncs; then flush and fsync what was written before.
	fcfg.SyncAlways, fcfg.AsyncFlush = nodeSyncsAlways, false
	s.syncAlwaysFlag().Store(nodeSyncsAlways)
	s.syncOnFlushFlag().Store(false)
	*s.fip() = true
	mu.Unlock()
	fileStoreSyncBlocks(s.p)
	return ""
}
