package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config is the coordinator's configuration. Start from DefaultConfig.
type Config struct {
	// Clock is the time source. Default SystemClock.
	Clock Clock
	// Logger receives the coordinator's logs. Default: discard.
	Logger *slog.Logger
	// MinSessionTimeout and MaxSessionTimeout bound members' session timeouts
	// (Kafka's group.min/max.session.timeout.ms). Defaults 100ms and 30m.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long an empty group waits for more members before
	// its first generation (Kafka's group.initial.rebalance.delay.ms). Default 300ms.
	InitialRebalanceDelay time.Duration
	// StoreTimeout bounds each write of group state. Default 10s.
	StoreTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Clock:                 SystemClock{},
		MinSessionTimeout:     100 * time.Millisecond,
		MaxSessionTimeout:     30 * time.Minute,
		InitialRebalanceDelay: 300 * time.Millisecond,
		StoreTimeout:          10 * time.Second,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Clock == nil:
		return errors.New("groups: config has no clock")
	case c.MinSessionTimeout <= 0 || c.MaxSessionTimeout < c.MinSessionTimeout:
		return fmt.Errorf("groups: session timeout bounds %v..%v are not valid", c.MinSessionTimeout, c.MaxSessionTimeout)
	case c.InitialRebalanceDelay < 0:
		return fmt.Errorf("groups: initial rebalance delay %v is negative", c.InitialRebalanceDelay)
	case c.StoreTimeout <= 0:
		return fmt.Errorf("groups: store timeout %v must be positive", c.StoreTimeout)
	}
	return nil
}
