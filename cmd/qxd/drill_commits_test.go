//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"errors"
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

// storedWatch reads, every 100 ms through healthy nodes, the last stored commit
// of each of a group's partitions from the offsets bucket's leader, with the
// time the bucket stored it: the ground truth the group's description only
// samples (a description can take seconds while a partition's leader is away,
// and its committed offsets are older than its end). A read the bucket does
// not answer (it elects a leader) can only hide commits, which makes a stall
// look longer, never shorter. (A KV watcher is no fit: its consumer, placed on
// any replica, can hear nothing from a killed or cut-off one for the whole
// fault.)
type storedWatch struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	got    []storedCommit
	errs   []string
}

func watchStored(ctx context.Context, t *testing.T, urls, group, topic string, parts int32) *storedWatch {
	t.Helper()
	w := &storedWatch{done: make(chan struct{})}
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("watch the offsets bucket: connect to %s: %v", urls, err)
	}
	w.nc = nc
	wctx, wcancel := context.WithCancel(ctx)
	w.cancel = wcancel
	go func() {
		defer close(w.done)
		last := map[int32]uint64{}
		for {
			for p := range parts {
				subj := semantics.KVKeySubject(semantics.OffsetsBucket, semantics.OffsetKey(group, topic, p))
				gctx, cancel := context.WithTimeout(wctx, time.Second)
				m, err := leaderLastMsg(gctx, nc, semantics.KVStream(semantics.OffsetsBucket), subj)
				cancel()
				if err != nil {
					if errors.Is(err, jetstream.ErrMsgNotFound) || wctx.Err() != nil {
						continue
					}
					w.mu.Lock()
					if len(w.errs) < 10 {
						w.errs = append(w.errs, fmt.Sprintf("%s p%d: %v", time.Now().Format("15:04:05.000"), p, err))
					}
					w.mu.Unlock()
					continue
				}
				if m.Seq == last[p] {
					continue
				}
				last[p] = m.Seq
				var c offsets.Committed
				err = json.Unmarshal(m.Data, &c)
				w.mu.Lock()
				if err != nil {
					w.errs = append(w.errs, fmt.Sprintf("p%d: %v", p, err))
				} else {
					w.got = append(w.got, storedCommit{p: p, offset: c.Offset, at: m.Time})
				}
				w.mu.Unlock()
			}
			select {
			case <-wctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
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

// storedMsg is a stream's message as its leader's message get answers it.
type storedMsg struct {
	Seq  uint64    `json:"seq"`
	Data []byte    `json:"data"`
	Time time.Time `json:"time"`
}

// leaderLastMsg reads the last message of subj in stream from the stream's
// leader (the JetStream API's message get; a direct get, which any replica
// answers, could read a copy behind).
func leaderLastMsg(ctx context.Context, nc *nats.Conn, stream, subj string) (storedMsg, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": subj})
	m, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return storedMsg{}, err
	}
	var resp struct {
		Message *storedMsg `json:"message"`
		Error   *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return storedMsg{}, err
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 {
			return storedMsg{}, jetstream.ErrMsgNotFound
		}
		return storedMsg{}, fmt.Errorf("message get: %d %s", resp.Error.Code, resp.Error.Description)
	}
	if resp.Message == nil {
		return storedMsg{}, errors.New("message get: empty answer")
	}
	return *resp.Message, nil
}
