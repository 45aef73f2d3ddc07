package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

// TestNATSLogNamesPartition: the NATS server's warnings about a partition's stream
// (in its own words, from nats-server's format strings) carry the topic and
// partition they are about; others carry none.
func TestNATSLogNamesPartition(t *testing.T) {
	for _, c := range []struct {
		name, format string
		args         []any
		level        slog.Level
		topic        string
		partition    float64
	}{
		{"no quorum", "JetStream cluster stream '%s > %s' has NO quorum, stalled", []any{"$G", semantics.StreamName("orders.eu", 3)}, slog.LevelWarn, "orders.eu", 3},
		{"orphaned", "Detected orphaned stream '%s > %s', will cleanup", []any{"$G", semantics.StreamName("a_b_c", 12)}, slog.LevelWarn, "a_b_c", 12},
		{"consumer skew", "Detected consumer cluster node skew '%s > %s > %s'", []any{"$G", semantics.StreamName("t-1", 0), "c1"}, slog.LevelWarn, "t-1", 0},
		{"a bucket", "JetStream cluster stream '%s > %s' has NO quorum, stalled", []any{"$G", semantics.KVStream(semantics.TopicsBucket)}, slog.LevelWarn, "", 0},
		{"no stream", "Error applying JetStream cluster entries: %v", []any{"boom"}, slog.LevelError, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := &natsLogger{log: slog.New(slog.NewJSONHandler(&buf, nil))}
			if c.level == slog.LevelError {
				l.Errorf(c.format, c.args...)
			} else {
				l.Warnf(c.format, c.args...)
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			if c.topic == "" {
				if _, ok := line["topic"]; ok {
					t.Errorf("line %s names a topic; it is about none", buf.String())
				}
				return
			}
			if line["topic"] != c.topic || line["partition"] != c.partition {
				t.Errorf("line %s: topic %v partition %v, want %s and %v", buf.String(), line["topic"], line["partition"], c.topic, c.partition)
			}
		})
	}
}
