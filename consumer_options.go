// The consumer's options and their defaults, in one place: reading (reset policy,
// poll and fetch sizes) and group membership (timeouts, assignors, commits,
// rebalance callbacks).

package qxd

import (
	"context"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// The consumer's defaults.
const (
	DefaultMaxPollRecords     = 10000
	DefaultFetchMaxBytes      = 32 << 20
	DefaultSessionTimeout     = 10 * time.Second
	DefaultRebalanceTimeout   = 30 * time.Second
	DefaultAutoCommitInterval = 5 * time.Second
	DefaultMaxPollInterval    = 5 * time.Minute
	DefaultMetadataMaxAge     = 5 * time.Minute
)

func defaultConsumerConfig() consumerConfig {
	return consumerConfig{reset: ResetEarliest, maxPollRecords: DefaultMaxPollRecords, fetchMaxBytes: DefaultFetchMaxBytes,
		metadataMaxAge: DefaultMetadataMaxAge,
		group: groupConfig{sessionTimeout: DefaultSessionTimeout, rebalanceTimeout: DefaultRebalanceTimeout,
			autoCommit: true, autoCommitInterval: DefaultAutoCommitInterval, maxPollInterval: DefaultMaxPollInterval}}
}

type consumerConfig struct {
	reset          ResetPolicy
	maxPollRecords int
	fetchMaxBytes  int
	metadataMaxAge time.Duration
	group          groupConfig
	isolation      IsolationLevel // Isolation (consumer_txn.go)
}

// defaultStart is where a partition without a committed offset starts.
func (c consumerConfig) defaultStart() Offset {
	switch c.reset {
	case ResetLatest:
		return AtEnd()
	case ResetNone:
		return Offset{kind: offsetNone}
	}
	return AtStart()
}

// ConsumerOption configures a Consumer.
type ConsumerOption func(*consumerConfig)

// AutoOffsetReset sets what happens when a start offset is not stored. Default
// ResetEarliest.
func AutoOffsetReset(p ResetPolicy) ConsumerOption {
	return func(c *consumerConfig) { c.reset = p }
}

// MaxPollRecords caps the records one Poll returns (Kafka's max.poll.records).
// Default 10000 (DefaultMaxPollRecords).
func MaxPollRecords(n int) ConsumerOption { return func(c *consumerConfig) { c.maxPollRecords = n } }

// FetchMaxBytes caps the bytes the consumer fetches ahead of Poll, shared by its
// partitions; each partition may still fetch one batch of its topic's max message
// bytes. The client's consumers share ClientFetchMaxBytes besides. Default 32 MiB
// (DefaultFetchMaxBytes).
func FetchMaxBytes(n int) ConsumerOption { return func(c *consumerConfig) { c.fetchMaxBytes = n } }

// MetadataMaxAge is how often a regex subscription (SubscribeRegex) lists the
// topics again, to read topics created and partitions added since (Kafka's
// metadata.max.age.ms, kgo's MetadataMaxAge). Default 5 minutes
// (DefaultMetadataMaxAge).
func MetadataMaxAge(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.metadataMaxAge = d }
}

type groupConfig struct {
	id                 string
	instanceID         string
	sessionTimeout     time.Duration
	rebalanceTimeout   time.Duration
	heartbeatInterval  time.Duration
	assignors          []string
	autoCommit         bool
	autoCommitInterval time.Duration
	maxPollInterval    time.Duration
	autoCommitMarks    bool
	blockRebalance     bool
	onAssigned         RebalanceFunc
	onRevoked          RebalanceFunc
	onLost             RebalanceFunc
}

// Group makes the consumer a member of consumer group id: Subscribe shares the
// topics' partitions among the group's members, and commits go to the group.
func Group(id string) ConsumerOption { return func(c *consumerConfig) { c.group.id = id } }

// InstanceID makes the member static (Kafka's group.instance.id): restarted within
// its session timeout, it gets its partitions back without a rebalance.
func InstanceID(id string) ConsumerOption {
	return func(c *consumerConfig) { c.group.instanceID = id }
}

// SessionTimeout is how long the coordinator waits for a silent member before giving
// its partitions to others; the member itself stops delivering records a little
// before that. Default 10s.
func SessionTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.group.sessionTimeout = d }
}

// RebalanceTimeout is how long a rebalance waits for members to rejoin. Default 30s.
func RebalanceTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.group.rebalanceTimeout = d }
}

// HeartbeatInterval is how often the member heartbeats. Default a third of the
// session timeout.
func HeartbeatInterval(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.group.heartbeatInterval = d }
}

// MaxPollInterval is the longest the application may go between Poll calls and
// stay in the group (Kafka's max.poll.interval.ms): a member whose application
// stops polling (hung, gone, its loop ended) leaves the group after it, its
// partitions are lost (OnLost) and go to the other members, and its next Poll
// joins the group again. Default 5 minutes (DefaultMaxPollInterval).
func MaxPollInterval(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.group.maxPollInterval = d }
}

// Assignors lists the partition assignors the member supports, preferred first:
// "range" (default), "roundrobin", "sticky", "cooperative-sticky". The first three
// rebalance eagerly, as in Kafka: at every rebalance each member revokes all its
// partitions (OnRevoked) and gets its new assignment (OnAssigned); "sticky" gives
// back as many of them as balance allows. With "cooperative-sticky" alone (Kafka's
// CooperativeStickyAssignor, KIP-429) the member rebalances incrementally: it keeps
// reading its partitions while the group rebalances, OnRevoked names only the
// partitions it gives up and OnAssigned only those it gains (neither is called
// with none), and a partition moves to its new owner in the rebalance after its
// old owner revoked it. A list that mixes it with the others rebalances eagerly.
func Assignors(names ...string) ConsumerOption {
	return func(c *consumerConfig) { c.group.assignors = names }
}

// AutoCommit commits, every interval and before partitions are revoked, the
// positions the application is done with: everything returned by Polls before its
// latest Poll call, as Kafka's auto-commit does; Close commits everything Poll
// returned. Records are never committed before Poll returned them, so a crash can
// repeat records but not lose them. Default on, every 5s; AutoCommit(0) turns it off.
func AutoCommit(interval time.Duration) ConsumerOption {
	return func(c *consumerConfig) {
		c.group.autoCommit = interval > 0
		c.group.autoCommitInterval = interval
	}
}

// AutoCommitMarks makes auto-commit, the commit before a rebalance and Close
// commit only the positions after records marked with MarkCommitRecords, instead
// of what Poll returned (kgo's AutoCommitMarks): a record is committed only once
// the application says it is done with it. Default off.
func AutoCommitMarks() ConsumerOption {
	return func(c *consumerConfig) { c.group.autoCommitMarks = true }
}

// BlockRebalanceOnPoll holds a rebalance that would revoke the member's partitions
// from the moment Poll returns records until the application calls AllowRebalance
// (kgo's BlockRebalanceOnPoll), at most the rebalance timeout: commits and
// OnRevoked then never race the processing of what Poll returned. The member keeps
// heartbeating while it holds one. Default off.
func BlockRebalanceOnPoll() ConsumerOption {
	return func(c *consumerConfig) { c.group.blockRebalance = true }
}

// RebalanceFunc is a rebalance callback (OnAssigned, OnRevoked, OnLost): it gets
// the consumer whose partitions change, so that it can commit, seek or pause them
// (kgo's OnPartitionsAssigned and the like get the client), and the partitions.
type RebalanceFunc func(ctx context.Context, c *Consumer, tps []TopicPartition)

// OnAssigned is called with the partitions a new generation gives the member, before
// Poll returns any of their records (with "cooperative-sticky": only those new to
// it). It runs on the member's own goroutine.
func OnAssigned(f RebalanceFunc) ConsumerOption {
	return func(c *consumerConfig) { c.group.onAssigned = f }
}

// OnRevoked is called with the member's partitions before it gives them up in a
// rebalance, while it can still commit them (c.Commit and c.CommitRecords work
// inside the callback). It runs on the member's own goroutine, beside the
// application's Poll loop: guard state they share.
func OnRevoked(f RebalanceFunc) ConsumerOption {
	return func(c *consumerConfig) { c.group.onRevoked = f }
}

// OnLost is called when the member lost its partitions without a chance to commit
// (its session ran out, or it was removed from the group). Default: OnRevoked.
func OnLost(f RebalanceFunc) ConsumerOption {
	return func(c *consumerConfig) { c.group.onLost = f }
}

// validate checks the options and fills in the defaults that derive from others.
func (c *consumerConfig) validate() error {
	switch {
	case c.reset < ResetEarliest || c.reset > ResetNone:
		return semantics.Errorf(semantics.ErrInvalidConfig, "reset policy %d is not valid: use ResetEarliest, ResetLatest or ResetNone", c.reset)
	case c.maxPollRecords < 1:
		return semantics.Errorf(semantics.ErrInvalidConfig, "max poll records %d: give at least 1", c.maxPollRecords)
	case c.fetchMaxBytes < 1:
		return semantics.Errorf(semantics.ErrInvalidConfig, "fetch max bytes %d: give at least 1", c.fetchMaxBytes)
	case c.metadataMaxAge <= 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "metadata max age %v: give a positive duration", c.metadataMaxAge)
	}
	if c.group.id == "" {
		return nil
	}
	return c.group.validate()
}

func (g *groupConfig) validate() error {
	switch {
	case g.sessionTimeout <= 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "session timeout %v: give a positive duration", g.sessionTimeout)
	case g.rebalanceTimeout <= 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "rebalance timeout %v: give a positive duration", g.rebalanceTimeout)
	case g.heartbeatInterval < 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "heartbeat interval %v is negative", g.heartbeatInterval)
	case g.maxPollInterval <= 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "max poll interval %v: give a positive duration", g.maxPollInterval)
	case g.autoCommitInterval < 0:
		return semantics.Errorf(semantics.ErrInvalidConfig, "auto-commit interval %v is negative: give 0 to turn auto-commit off", g.autoCommitInterval)
	}
	if g.heartbeatInterval == 0 {
		g.heartbeatInterval = g.sessionTimeout / 3
	}
	if len(g.assignors) == 0 {
		g.assignors = []string{groups.DefaultAssignor}
	}
	if g.onLost == nil {
		g.onLost = g.onRevoked
	}
	for _, a := range g.assignors {
		if _, err := groups.AssignorByName(a); err != nil {
			return semantics.Errorf(semantics.ErrInvalidConfig, "%v", err)
		}
	}
	if g.heartbeatInterval >= g.sessionTimeout {
		return semantics.Errorf(semantics.ErrInvalidConfig, "heartbeat interval %v must be below the session timeout %v", g.heartbeatInterval, g.sessionTimeout)
	}
	return semantics.ValidateGroupID(g.id)
}
