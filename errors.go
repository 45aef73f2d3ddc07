// Every error the SDK's callers check, in one place: the SDK's own sentinels, and
// Kafka's error codes re-exported from semantics.

package qxd

import (
	"errors"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// The SDK's own errors. Compare with errors.Is.
var (
	// ErrProducerClosed fails Produce after Close, and the records still unsent
	// when Close's context ends.
	ErrProducerClosed = errors.New("qxd: producer is closed")
	// ErrConsumerClosed is returned by Poll, Assign and Subscribe of a closed
	// consumer.
	ErrConsumerClosed = errors.New("qxd: consumer is closed")
	// ErrNotInGroup is returned by Subscribe and the commits of a consumer made
	// without Group.
	ErrNotInGroup = errors.New("qxd: the consumer has no group: create it with qxd.Group(id)")
	// ErrRecordTimeout fails a record whose delivery timeout (DeliveryTimeout)
	// passed before the producer knew its outcome: it was not sent; or the
	// partition's writer refused it as from a producer it no longer knows, and
	// the timeout passed before it could be sent again, so it is not stored (the
	// error matches ErrUnknownProducerID too); or it was sent and no answer came,
	// so it may or may not be stored (a node that comes back may store it after
	// this error). It is not retriable as such: producing the record again may
	// store it twice. A caller that must not lose it produces it
	// again and lets its readers drop duplicates (by key, or an id in a header);
	// one that must not duplicate it reads the partition to see whether it is
	// there. The error's text says which of the two it was, and the last cause.
	ErrRecordTimeout = errors.New("qxd: record delivery timed out")
	// ErrMaxBuffered is returned by TryProduce when Produce would wait for room.
	ErrMaxBuffered = errors.New("qxd: the producer's buffer is full")
	// ErrPurged fails the records PurgeBuffered removed: they were not sent.
	ErrPurged = errors.New("qxd: record purged before it was sent")
)

// Kafka's errors, as the node and the SDK report them; each is a
// *semantics.Error with Kafka's code and name, and semantics documents where each
// occurs. Compare with errors.Is; IsRetriable says whether trying again may
// succeed.
var (
	ErrUnknownTopic             = semantics.ErrUnknownTopic
	ErrTopicExists              = semantics.ErrTopicExists
	ErrInvalidTopic             = semantics.ErrInvalidTopic
	ErrTopicNotReady            = semantics.ErrTopicNotReady
	ErrOffsetOutOfRange         = semantics.ErrOffsetOutOfRange
	ErrMessageTooLarge          = semantics.ErrMessageTooLarge
	ErrInvalidRecord            = semantics.ErrInvalidRecord
	ErrInvalidConfig            = semantics.ErrInvalidConfig
	ErrGroupIDNotFound          = semantics.ErrGroupIDNotFound
	ErrNonEmptyGroup            = semantics.ErrNonEmptyGroup
	ErrRebalanceInProgress      = semantics.ErrRebalanceInProgress
	ErrIllegalGeneration        = semantics.ErrIllegalGeneration
	ErrFencedInstanceID         = semantics.ErrFencedInstanceID
	ErrCoordinatorNotAvailable  = semantics.ErrCoordinatorNotAvailable
	ErrInvalidReplicationFactor = semantics.ErrInvalidReplicationFactor
	ErrInvalidRequest           = semantics.ErrInvalidRequest
	ErrUnknownMemberID          = semantics.ErrUnknownMemberID
	ErrNotCoordinator           = semantics.ErrNotCoordinator
	ErrInvalidGroupID           = semantics.ErrInvalidGroupID
	ErrCorruptMessage           = semantics.ErrCorruptMessage
	// ErrUnknownProducerID: a partition's writer refused a batch of an idempotent
	// producer it does not know (it forgot it after the node's producer id
	// expiration, or the producer's earlier batches are not stored yet). The
	// producer sends the batch again; a record that fails with it (within an
	// ErrRecordTimeout) is not stored.
	ErrUnknownProducerID = semantics.ErrUnknownProducerID
	// Retriable: no node answered in time, or a partition is between leaders.
	ErrUnavailable = semantics.ErrUnavailable
	ErrTimeout     = semantics.ErrTimeout
	ErrNotLeader   = semantics.ErrNotLeader
	// Authorization and authentication failures: see docs/security.md.
	ErrTopicAuthorizationFailed   = semantics.ErrTopicAuthorizationFailed
	ErrGroupAuthorizationFailed   = semantics.ErrGroupAuthorizationFailed
	ErrClusterAuthorizationFailed = semantics.ErrClusterAuthorizationFailed
	ErrAuthenticationFailed       = semantics.ErrAuthenticationFailed
)

// IsRetriable reports whether err is a Kafka error that may succeed if the same
// request is sent again (a node between leaders, a request that timed out).
func IsRetriable(err error) bool { return semantics.IsRetriable(err) }

// GroupState is a consumer group's state, as the coordinator reports it (part of
// the group wire contract, package groups).
type GroupState = groups.State

// Consumer group states, as Kafka names them.
const (
	GroupEmpty               = groups.Empty
	GroupPreparingRebalance  = groups.PreparingRebalance
	GroupCompletingRebalance = groups.CompletingRebalance
	GroupStable              = groups.Stable
	GroupDead                = groups.Dead
)
