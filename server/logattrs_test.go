package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// logLines is a node's JSON log, kept for a test to read.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// find returns the first line with message msg, nil when there is none yet.
func (l *logLines) find(t *testing.T, msg string) map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line["msg"] == msg {
			return line
		}
	}
	return nil
}

// TestErrorLogsNameWhatTheyAreAbout drives known error paths of a node and
// checks that their warnings name the topic and partition they are about: a
// partition written by someone else than its writer (the writer is fenced), and a
// topic record that cannot be read.
func TestErrorLogsNameWhatTheyAreAbout(t *testing.T) {
	t.Parallel()
	var logs logLines
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	qxdtest.CreateTopic(t, c, "fenced.t", qxd.TopicConfig{Partitions: 2})
	batch := func() []byte {
		var b semantics.BatchBuilder
		b.Append(&semantics.Record{Value: []byte("v")})
		out, err := b.Build(nil, semantics.NoProducer, semantics.CompressionNone)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if _, err := n.Writers().Append(ctx, "fenced.t", 1, batch()); err != nil {
		t.Fatal(err)
	}
	// Someone else appends to partition 1's stream: the writer's next append is
	// fenced off, and it says which partition.
	js := qxdtest.JetStream(t, n)
	if _, err := js.Publish(ctx, semantics.BatchSubject("fenced.t", 1), batch()); err != nil {
		t.Fatal(err)
	}
	_, _ = n.Writers().Append(ctx, "fenced.t", 1, batch())
	// A topic record that does not decode.
	kv, err := js.KeyValue(ctx, semantics.TopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, semantics.EncodeTopic("broken.t"), []byte("not a topic")); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		msg       string
		topic     string
		partition float64 // -1: none
	}{
		{"append failed; reloading from the log", "fenced.t", 1},
		{"skipping corrupt topic record", "broken.t", -1},
	} {
		var line map[string]any
		deadline := time.Now().Add(30 * time.Second)
		for line = logs.find(t, c.msg); line == nil; line = logs.find(t, c.msg) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q logged within 30s", c.msg)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if line["level"] != "WARN" || line["topic"] != c.topic || line["node"] != "test" || line["err"] == nil {
			t.Errorf("%q: %v, want a warning naming topic %s, node test and the error", c.msg, line, c.topic)
		}
		if c.partition >= 0 && line["partition"] != c.partition {
			t.Errorf("%q: partition %v, want %v", c.msg, line["partition"], c.partition)
		}
	}
}
