package qxdtest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// failureLogMax bounds what FailureLog keeps; past it, lines are counted, not kept.
const failureLogMax = 16 << 20

// FailureLog returns a debug-level logger for the nodes and clients of t whose
// lines are kept in memory and written to t's log only if t fails, after t's
// later cleanups (the nodes' stops) have run: what a rare failure needs to be
// explained, without the lines of every passing run.
func FailureLog(t testing.TB) *slog.Logger {
	t.Helper()
	log, _ := FailureLogLines(t)
	return log
}

// FailureLogLines is FailureLog, and a function that returns the lines kept so far
// that were logged from from to to and contain one of subs (every line when subs
// is empty), at most max of them (the last ones): what a failed test prints
// before its whole log, since a long log is often shown only in part.
func FailureLogLines(t testing.TB) (*slog.Logger, func(from, to time.Time, max int, subs ...string) []string) {
	t.Helper()
	b := &failureBuf{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Logf("debug log of the failed test (%d bytes):\n%s", b.buf.Len(), b.buf.Bytes())
		if b.dropped > 0 {
			t.Logf("debug log: %d later lines not kept (over %d bytes)", b.dropped, failureLogMax)
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b.lines
}

// lines implements FailureLogLines's search.
func (b *failureBuf) lines(from, to time.Time, max int, subs ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for line := range strings.Lines(b.buf.String()) {
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		if len(subs) > 0 && !containsAny(line, subs) {
			continue
		}
		out = append(out, strings.TrimSuffix(line, "\n"))
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// failureBuf is FailureLog's store of lines.
type failureBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

func (b *failureBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > failureLogMax {
		b.dropped++
		return len(p), nil
	}
	return b.buf.Write(p)
}
