package qxd

import (
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// The errors callers most often check, re-exported from semantics (which documents
// where each occurs). Compare with errors.Is.
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
	// Authorization and authentication failures: see docs/security.md.
	ErrTopicAuthorizationFailed   = semantics.ErrTopicAuthorizationFailed
	ErrGroupAuthorizationFailed   = semantics.ErrGroupAuthorizationFailed
	ErrClusterAuthorizationFailed = semantics.ErrClusterAuthorizationFailed
	ErrAuthenticationFailed       = semantics.ErrAuthenticationFailed
)

// GroupState is a consumer group's state.
type GroupState = groups.State

// Consumer group states, as Kafka names them.
const (
	GroupEmpty               = groups.Empty
	GroupPreparingRebalance  = groups.PreparingRebalance
	GroupCompletingRebalance = groups.CompletingRebalance
	GroupStable              = groups.Stable
	GroupDead                = groups.Dead
)
