//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// storedCommit is one commit of a partition as the offsets bucket stored it: at is
// the time its stream's leader stored it.
type storedCommit struct {
	p      int32
	offset int64
	at     time.Time
}

// storedWatch follows a group's commits in the offsets bucket, through healthy
// nodes: each stored commit with the time the bucket stored it, the ground truth
// the group's description only samples (a description can take seconds while a
// partition's leader is away, and its committed offsets are older than its end).
type storedWatch struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	got    []storedCommit
	errs   []string
}

func watchStored(ctx context.Context, t *testing.T, urls, group string) *storedWatch {
	t.Helper()
	w := &storedWatch{done: make(chan struct{})}
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("watch the offsets bucket: connect to %s: %v", urls, err)
	}
	w.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	kv, err := js.KeyValue(octx, semantics.OffsetsBucket)
	cancel()
	if err != nil {
		t.Fatalf("watch the offsets bucket: %v", err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	w.cancel = wcancel
	kw, err := kv.Watch(wctx, semantics.GroupOffsetsFilter(group))
	if err != nil {
		t.Fatalf("watch the offsets bucket: %v", err)
	}
	go func() {
		defer close(w.done)
		defer kw.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-kw.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				_, _, p, err := semantics.ParseOffsetKey(e.Key())
				var c offsets.Committed
				if err == nil {
					err = json.Unmarshal(e.Value(), &c)
				}
				w.mu.Lock()
				if err != nil {
					w.errs = append(w.errs, fmt.Sprintf("%s: %v", e.Key(), err))
				} else {
					w.got = append(w.got, storedCommit{p: p, offset: c.Offset, at: e.Created()})
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// halt stops the watch and returns what it saw.
func (w *storedWatch) halt() ([]storedCommit, []string) {
	w.cancel()
	<-w.done
	w.nc.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got, w.errs
}

// commitGap is the longest time one partition went without a new commit stored.
type commitGap struct {
	p        int32
	from, to time.Time
}

func (g commitGap) d() time.Duration { return g.to.Sub(g.from) }

// storedStalls returns, per partition, the longest time from `from` to `end` in
// which the bucket stored no commit of it that moved its offset.
func storedStalls(got []storedCommit, parts int32, from, end time.Time) []commitGap {
	out := make([]commitGap, parts)
	by := make([][]storedCommit, parts)
	for _, c := range got {
		if c.p >= 0 && c.p < parts {
			by[c.p] = append(by[c.p], c)
		}
	}
	for p := range parts {
		cs := by[p]
		slices.SortFunc(cs, func(a, b storedCommit) int { return a.at.Compare(b.at) })
		last, lastOff := from, int64(-1)
		for _, c := range cs {
			if c.offset == lastOff {
				continue // stored again, not moved
			}
			lastOff = c.offset
			if !c.at.After(from) {
				continue
			}
			if c.at.Sub(last) > out[p].d() {
				out[p] = commitGap{p, last, c.at}
			}
			last = c.at
		}
		if end.Sub(last) > out[p].d() {
			out[p] = commitGap{p, last, end}
		}
	}
	return out
}

// describeStalls is commitStall per partition, with when each longest stall was.
func describeStalls(snaps []commitSnap, from time.Time) map[int32]commitGap {
	out := map[int32]commitGap{}
	last := map[int32]int64{}
	since := map[int32]time.Time{}
	for _, s := range snaps {
		for p, c := range s.committed {
			if c != last[p] || since[p].IsZero() {
				last[p], since[p] = c, s.at
				continue
			}
			if s.at.After(from) {
				g := commitGap{p, maxTime(since[p], from), s.at}
				if g.d() > out[p].d() {
					out[p] = g
				}
			}
		}
	}
	return out
}

// gapsText lists gaps as "p0 1.2s (from 0.3s)", times after faultAt.
func gapsText(gaps []commitGap, faultAt time.Time) string {
	var b []string
	for _, g := range gaps {
		b = append(b, fmt.Sprintf("p%d %v (from %v)", g.p, g.d().Round(time.Millisecond), since(faultAt, g.from)))
	}
	return strings.Join(b, ", ")
}
