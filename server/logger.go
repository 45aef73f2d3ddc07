package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
	// The NATS server's own text is the message; it cannot be a constant.
	l.log.Log(context.Background(), level, msg, "component", "nats")
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
