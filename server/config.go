package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// Config is a node's configuration. Start from DefaultConfig.
type Config struct {
	// Name is the node's name, unique in a cluster. Default: the host name.
	Name string
	// Listen is the NATS client address, host:port. Port 0 picks a free port (for
	// tests). Default 127.0.0.1:4222.
	Listen string
	// DataDir holds JetStream's store. Default ./qxd-data.
	DataDir string
	// MaxPayload is the largest NATS message the node accepts; it must fit the
	// largest record batch a topic may allow. Default 8 MiB + 64 KiB.
	MaxPayload int32
	// MaxPending is how many bytes the node buffers for one client before it cuts the
	// client off as a slow consumer. Default 256 MiB, room for consumers that fetch
	// many partitions ahead.
	MaxPending int64
	// GroupInitialRebalanceDelay is how long an empty consumer group waits for more
	// members before its first generation. Default 300ms (the coordinator's default).
	GroupInitialRebalanceDelay time.Duration
	// ShutdownTimeout bounds a graceful shutdown. Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives the node's logs, NATS server logs included. Default: discard.
	Logger *slog.Logger
	// NATSDebug passes the NATS server's debug logs to Logger.
	NATSDebug bool
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Name:            "",
		Listen:          "127.0.0.1:4222",
		DataDir:         "./qxd-data",
		MaxPayload:      semantics.MaxMessageBytesLimit + 64<<10,
		MaxPending:      256 << 20,
		ShutdownTimeout: 10 * time.Second,
	}
}

// Validate reports the first invalid field, naming it and what to do.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data dir is empty: set --data to a writable directory")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q is not host:port: %v", c.Listen, err)
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("listen address %q has port %q: use a number from 0 to 65535", c.Listen, port)
	}
	if c.MaxPayload < semantics.MaxMessageBytesLimit {
		return fmt.Errorf("max payload %d is below the largest record batch a topic may allow (%d)", c.MaxPayload, semantics.MaxMessageBytesLimit)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown timeout %v must be positive", c.ShutdownTimeout)
	}
	return nil
}
