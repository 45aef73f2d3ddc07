package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/qxd-io/qxd/semantics"
)

// natsLogger adapts the NATS server's logger to slog and remembers fatal errors, which
// an embedded server reports instead of exiting (a port in use, a bad store dir).
type natsLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal error
}

func (l *natsLogger) emit(level slog.Level, format string, v ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	msg := fmt.Sprintf(format, v...)
	switch {
	case level == slog.LevelWarn && strings.HasPrefix(msg, "Maximum payloads over"):
		// qxd raises the max payload on purpose, to fit the largest record batch.
		level = slog.LevelDebug
	case level == slog.LevelError && strings.HasPrefix(msg, "Error trying to connect to route"):
		// A peer that is not up (yet) is normal while a cluster starts or a node
		// restarts; NATS keeps trying, and cluster info shows which nodes are down.
		level = slog.LevelInfo
	}
	// The NATS server's own text is the message; it cannot be a constant. A
	// warning or error about a partition's stream names its topic and partition.
	args := []any{"component", "nats"}
	if level >= slog.LevelWarn {
		if topic, p, ok := partitionIn(msg); ok {
			args = append(args, "topic", topic, "partition", p)
		}
	}
	l.log.Log(context.Background(), level, msg, args...)
}

// partitionIn finds the first partition stream named in a NATS server message
// ("JetStream cluster stream '$G > QXD_orders_3' has NO quorum, stalled").
func partitionIn(msg string) (topic string, p int32, ok bool) {
	for _, tok := range strings.FieldsFunc(msg, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '=')
	}) {
		if topic, p, ok := semantics.ParseStreamName(tok); ok {
			return topic, p, true
		}
	}
	return "", 0, false
}

// Noticef passes the NATS server's notices (its start-up banner, listeners) at debug
// level: qxd logs its own start and stop at info.
func (l *natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v...) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v...) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v...) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v...) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.emit(slog.LevelDebug-4, format, v...) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	err := fmt.Errorf(format, v...)
	l.mu.Lock()
	if l.fatal == nil {
		l.fatal = err
	}
	l.mu.Unlock()
	l.emit(slog.LevelError, format, v...)
}

func (l *natsLogger) fatalErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
