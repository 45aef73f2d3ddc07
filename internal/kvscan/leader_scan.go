package kvscan

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// ErrNoLeader is returned by LeaderScan when the bucket's stream had no leader
// that answered before its context ended: nothing was read, and a caller that
// must start from the bucket's state tries again later rather than start from
// nothing.
var ErrNoLeader = errors.New("the bucket has no leader that answers")

// Entry is one live key of a bucket as LeaderScan reads it.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// leaderScanAttempt bounds one request of a LeaderScan to the bucket's leader:
// one lost while the bucket changes leaders is sent again rather than waited for
// until ctx ends.
const leaderScanAttempt = 2 * time.Second

// leaderFirstAttempt bounds each of the first leaderShortAttempts requests of a
// read from the bucket's leader (leaderMsg); each one after is twice as long as
// the one before, up to leaderScanAttempt. A leader answers a message get
// within milliseconds, tens of them on a loaded machine; a request sent to a
// leader that went silent (its node paused or cut off) is never answered, and
// the leader elected next answers only what is sent after its election, most
// often 2–2.5 s after the pause. With 2 s attempts, a group coordinator's commit
// that read the offsets bucket 66 ms before that bucket's election waited 2.1 s
// (TestMemberCommitPastAPausedCoordinator, "group request answered slowly …
// took=2.121s"); with attempts doubling from the first, the read in
// TestLeaderGetPastAPausedLeader was answered 3.8 s after the pause in 3 of 3
// runs (a 2 s attempt sent just before the election).
const leaderFirstAttempt = 500 * time.Millisecond

// leaderShortAttempts is how many requests of leaderFirstAttempt a read from a
// bucket's leader sends before its attempts grow: with the pauses between
// them, about 3.6 s, past most elections.
const leaderShortAttempts = 6

// leaderScanRetry is the pause before a request of a LeaderScan that found no
// leader is sent again.
const leaderScanRetry = 100 * time.Millisecond

// leaderScanWatch bounds LeaderScan's read with a watcher; past it, the scan
// walks the leader's stream instead.
const leaderScanWatch = 5 * time.Second

// leaderScanPatience is how long LeaderScan's watcher may go without an entry
// before the scan walks the leader's stream beside it. A watcher whose consumer
// JetStream placed on a paused or cut-off replica hears nothing until its
// pass goes Quiet, and a coordinator's takeover would wait that long; a
// healthy one gives its first entry within milliseconds.
const leaderScanPatience = time.Second

// LeaderScan reads the latest entry of every live key of kv whose key matches
// filter (jetstream.AllKeys for all) as the bucket stream's leader holds them,
// and calls each with them in revision order. Unlike Scan, whose watcher is
// served by a consumer that JetStream may place on any replica of the stream,
// one behind the leader among them, it sees every write the leader had
// acknowledged when the scan began: a coordinator that starts from it starts
// from the latest state. nc reaches the leader.
//
// It asks the leader for the last message on the keys matching filter (the
// JetStream API's message get, which only the leader answers), then reads the
// keys with a watcher, as Scan does, and keeps what the watcher gave if it
// reached that message's revision: the replica serving it held everything the
// leader did. If not (the replica is behind), or the watcher fails or stalls
// past leaderScanWatch, it walks the stream in sequence order with the
// leader's message gets, one per stored message on the keys. Either way, a key
// written again during the scan is taken at its newer revision. A request that
// finds no leader (nothing answers, or JetStream says it is between leaders) is
// sent again until ctx ends; then LeaderScan returns an error that wraps
// ErrNoLeader and calls each with nothing.
func LeaderScan(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, filter string, each func(Entry) error) error {
	bucket := kv.Bucket()
	last, err := leaderMsg(ctx, nc, bucket, map[string]any{"last_by_subj": semantics.KVKeySubject(bucket, filter)})
	if err != nil {
		return fmt.Errorf("scan bucket %s on its leader: %w", bucket, err)
	}
	var upTo uint64
	if last != nil {
		upTo = last.Seq
	}
	entries, err := watchOrWalk(ctx, nc, kv, filter, upTo)
	if err != nil {
		return fmt.Errorf("scan bucket %s on its leader: %w", bucket, err)
	}
	for _, e := range entries {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

// watchOrWalk reads the live keys of kv matching filter as the leader held
// them at revision upTo or later: with a watcher (watchedUpTo) if it reaches
// upTo, else with a walk of the leader's stream (leaderWalk), started when the
// watcher ends short of upTo or has gone leaderScanPatience without an entry.
// It returns the first of the two reads to end with the leader's state, and
// stops the other.
func watchOrWalk(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, filter string, upTo uint64) ([]Entry, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	type read struct {
		entries []Entry
		err     error
	}
	quiet := make(chan struct{}, 1)
	patience := time.AfterFunc(leaderScanPatience, func() {
		select {
		case quiet <- struct{}{}:
		default:
		}
	})
	defer patience.Stop()
	watched := make(chan []Entry, 1) // nil: the watcher did not reach upTo
	wg.Add(1)
	go func() {
		defer wg.Done()
		entries, ok := watchedUpTo(ctx, kv, filter, upTo, func() { patience.Reset(leaderScanPatience) })
		if !ok {
			entries = nil
		}
		watched <- entries
	}()
	var walked chan read
	walk := func() {
		if walked != nil {
			return
		}
		walked = make(chan read, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries, err := leaderWalk(ctx, nc, kv.Bucket(), filter)
			walked <- read{entries, err}
		}()
	}
	for w := watched; ; {
		select {
		case entries := <-w:
			if entries != nil {
				return entries, nil
			}
			w = nil
			walk()
		case <-quiet:
			walk()
		case r := <-walked:
			return r.entries, r.err
		}
	}
}

// watchedUpTo reads the live keys of kv matching filter with a watcher, in
// revision order, and reports whether the watcher reached revision upTo; it
// calls heard on each entry the watcher gives.
func watchedUpTo(ctx context.Context, kv jetstream.KeyValue, filter string, upTo uint64, heard func()) ([]Entry, bool) {
	wctx, cancel := context.WithTimeout(ctx, leaderScanWatch)
	defer cancel()
	live := map[string]Entry{}
	var top uint64
	err := scan(wctx, kv, filter, func() { clear(live); top = 0 }, func(e jetstream.KeyValueEntry) error {
		heard()
		top = max(top, e.Revision())
		if e.Operation() == jetstream.KeyValuePut {
			live[e.Key()] = Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision()}
		} else {
			delete(live, e.Key())
		}
		return nil
	}, nil)
	if err != nil || top < upTo {
		return nil, false
	}
	return inOrder(live), true
}

// leaderWalk reads the live keys of bucket matching filter, in revision order,
// with the leader's message gets: the next message on the keys from a
// sequence, one after another, until there is none.
func leaderWalk(ctx context.Context, nc *nats.Conn, bucket, filter string) ([]Entry, error) {
	prefix := semantics.KVKeySubject(bucket, "")
	pattern := semantics.KVKeySubject(bucket, filter)
	live := map[string]Entry{}
	for seq := uint64(1); ; {
		m, err := leaderMsg(ctx, nc, bucket, map[string]any{"seq": seq, "next_by_subj": pattern})
		if err != nil {
			return nil, err
		}
		if m == nil {
			return inOrder(live), nil
		}
		key := strings.TrimPrefix(m.Subject, prefix)
		del, err := m.deletes()
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", bucket, err)
		}
		if del {
			delete(live, key)
		} else {
			live[key] = Entry{Key: key, Value: m.Data, Revision: m.Seq}
		}
		seq = m.Seq + 1
	}
}

// inOrder returns the entries of live in revision order.
func inOrder(live map[string]Entry) []Entry {
	entries := make([]Entry, 0, len(live))
	for _, e := range live {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return cmp.Compare(a.Revision, b.Revision) })
	return entries
}

// storedMsg is a message as the JetStream API's message get returns it.
type storedMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Header  []byte `json:"hdrs"`
	Data    []byte `json:"data"`
}

// deletes reports whether m is a key-value delete or purge marker.
func (m *storedMsg) deletes() (bool, error) {
	if len(m.Header) == 0 {
		return false, nil
	}
	h, err := nats.DecodeHeadersMsg(m.Header)
	if err != nil {
		return false, fmt.Errorf("entry at revision %d: its headers do not decode: %w", m.Seq, err)
	}
	op := h.Get("KV-Operation")
	return op == "DEL" || op == "PURGE", nil
}

// leaderMsg sends req, a message get, to the leader of bucket's stream and
// returns the message it answers with, nil when it has none. It sends the
// request again while no leader answers, until ctx ends.
func leaderMsg(ctx context.Context, nc *nats.Conn, bucket string, req map[string]any) (*storedMsg, error) {
	subject := semantics.Subject(semantics.JSStreamMsgGetPrefix, semantics.KVStream(bucket))
	body, _ := json.Marshal(req)
	for i := 0; ; i++ {
		attempt := leaderFirstAttempt
		if i >= leaderShortAttempts {
			attempt = min(attempt<<(i-leaderShortAttempts+1), leaderScanAttempt)
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		resp, err := nc.RequestWithContext(actx, subject, body)
		cancel()
		if err == nil {
			var out struct {
				Message *storedMsg          `json:"message"`
				Error   *jetstream.APIError `json:"error"`
			}
			if err = json.Unmarshal(resp.Data, &out); err != nil {
				return nil, err
			}
			switch {
			case out.Error != nil && out.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound, out.Error == nil && out.Message == nil:
				return nil, nil
			case out.Error == nil:
				return out.Message, nil
			}
			err = out.Error
		}
		if !Transient(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoLeader, err)
		case <-time.After(leaderScanRetry):
		}
	}
}
