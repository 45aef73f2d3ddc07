package qxdtest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// failureLogMax bounds what FailureLog keeps; past it, lines are counted, not kept.
const failureLogMax = 16 << 20

// FailureLog returns a debug-level logger for the nodes and clients of t whose
// lines are kept in memory and written to t's log only if t fails, after t's
// later cleanups (the nodes' stops) have run: what a rare failure needs to be
// explained, without the lines of every passing run.
func FailureLog(t testing.TB) *slog.Logger {
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
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
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
