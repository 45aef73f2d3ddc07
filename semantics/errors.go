package semantics

import (
	"errors"
	"fmt"
)

// Error is one of qxd's error kinds. Where Kafka has an error code for the same
// condition, Code is Kafka's and Name is Kafka's name for it, so a Kafka-protocol
// front door can pass it through unchanged. Compare with errors.Is against the
// sentinels below; errors carrying detail wrap one of them.
type Error struct {
	Code      int16
	Name      string
	Retriable bool
	Message   string
}

func (e *Error) Error() string { return e.Message + " (" + e.Name + ")" }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// The error set. The comment on each says where it occurs.
var (
	// ErrUnknown is any failure without a better code.
	ErrUnknown = &Error{Code: -1, Name: "UNKNOWN_SERVER_ERROR", Message: "unexpected server error"}
	// ErrOffsetOutOfRange: a fetch or seek to an offset outside [log start, high watermark].
	ErrOffsetOutOfRange = &Error{Code: 1, Name: "OFFSET_OUT_OF_RANGE", Message: "offset out of range"}
	// ErrCorruptMessage: a record batch failed its CRC or format checks.
	ErrCorruptMessage = &Error{Code: 2, Name: "CORRUPT_MESSAGE", Message: "corrupt record batch"}
	// ErrUnknownTopic: the topic or partition does not exist.
	ErrUnknownTopic = &Error{Code: 3, Name: "UNKNOWN_TOPIC_OR_PARTITION", Message: "unknown topic or partition"}
	// ErrNotLeader: the partition's writer is not on this node (leadership moved); retry.
	ErrNotLeader = &Error{Code: 6, Name: "NOT_LEADER_OR_FOLLOWER", Retriable: true, Message: "not the partition leader"}
	// ErrTimeout: the request did not complete in time; retry.
	ErrTimeout = &Error{Code: 7, Name: "REQUEST_TIMED_OUT", Retriable: true, Message: "request timed out"}
	// ErrMessageTooLarge: a record or batch is over the topic's max message bytes.
	ErrMessageTooLarge = &Error{Code: 10, Name: "MESSAGE_TOO_LARGE", Message: "record or batch too large"}
	// ErrInvalidTopic: a topic name breaks Kafka's naming rules.
	ErrInvalidTopic = &Error{Code: 17, Name: "INVALID_TOPIC_EXCEPTION", Message: "invalid topic name"}
	// ErrTopicExists: create of a topic that already exists.
	ErrTopicExists = &Error{Code: 36, Name: "TOPIC_ALREADY_EXISTS", Message: "topic already exists"}
	// ErrInvalidPartitions: a partition count of zero or less, above MaxPartitions, or a decrease.
	ErrInvalidPartitions = &Error{Code: 37, Name: "INVALID_PARTITIONS", Message: "invalid partition count"}
	// ErrInvalidReplicationFactor: a replica count the cluster cannot place.
	ErrInvalidReplicationFactor = &Error{Code: 38, Name: "INVALID_REPLICATION_FACTOR", Message: "invalid replication factor"}
	// ErrInvalidConfig: a topic or client setting out of its range.
	ErrInvalidConfig = &Error{Code: 40, Name: "INVALID_CONFIG", Message: "invalid configuration"}
	// ErrInvalidRequest: a malformed request.
	ErrInvalidRequest = &Error{Code: 42, Name: "INVALID_REQUEST", Message: "invalid request"}
	// ErrPolicyViolation: a request the topic's policy forbids, such as trimming a
	// compacted topic (Admin.DeleteRecords).
	ErrPolicyViolation = &Error{Code: 44, Name: "POLICY_VIOLATION", Message: "request violates the topic's policy"}
	// ErrOutOfOrderSequence: an idempotent producer skipped a sequence number.
	ErrOutOfOrderSequence = &Error{Code: 45, Name: "OUT_OF_ORDER_SEQUENCE_NUMBER", Message: "out of order sequence number"}
	// ErrDuplicateSequence: an idempotent producer resent a batch that is already stored
	// but no longer remembered with its offset; the producer treats it as stored.
	ErrDuplicateSequence = &Error{Code: 46, Name: "DUPLICATE_SEQUENCE_NUMBER", Message: "duplicate sequence number"}
	// ErrUnknownProducerID: a batch from an idempotent producer the partition's writer
	// does not know (never seen, or forgotten after a time without a write: the
	// node's producer id expiration, 24 hours by default) that
	// does not begin at sequence 0; nothing is stored. While earlier batches of the
	// producer are unanswered they may still land first (resend it); on the oldest one
	// the producer starts over (a new producer id, or sequence 0).
	ErrUnknownProducerID = &Error{Code: 59, Name: "UNKNOWN_PRODUCER_ID", Message: "unknown producer id"}
	// ErrInvalidProducerEpoch: a producer with an older epoch than the partition has seen.
	ErrInvalidProducerEpoch = &Error{Code: 47, Name: "INVALID_PRODUCER_EPOCH", Message: "producer fenced by a newer epoch"}
	// ErrInvalidRecord: a record the topic cannot take (e.g. no key on a compacted topic).
	ErrInvalidRecord = &Error{Code: 87, Name: "INVALID_RECORD", Message: "invalid record"}
	// ErrUnavailable: no node serves the request right now (no writer, no quorum); retry.
	ErrUnavailable = &Error{Code: 8, Name: "NETWORK_EXCEPTION", Retriable: true, Message: "no node answered"}
	// ErrCoordinatorNotAvailable: no node coordinates groups right now (failover); retry.
	ErrCoordinatorNotAvailable = &Error{Code: 15, Name: "COORDINATOR_NOT_AVAILABLE", Retriable: true, Message: "group coordinator not available"}
	// ErrNotCoordinator: the node asked no longer coordinates groups; retry.
	ErrNotCoordinator = &Error{Code: 16, Name: "NOT_COORDINATOR", Retriable: true, Message: "not the group coordinator"}
	// ErrIllegalGeneration: a request from a member of an older generation of its group.
	ErrIllegalGeneration = &Error{Code: 22, Name: "ILLEGAL_GENERATION", Message: "illegal generation"}
	// ErrInconsistentGroupProtocol: a member's assignor does not match the group's.
	ErrInconsistentGroupProtocol = &Error{Code: 23, Name: "INCONSISTENT_GROUP_PROTOCOL", Message: "inconsistent group protocol"}
	// ErrInvalidGroupID: an empty or malformed group id.
	ErrInvalidGroupID = &Error{Code: 24, Name: "INVALID_GROUP_ID", Message: "invalid group id"}
	// ErrUnknownMemberID: a request from a member the group does not know (evicted).
	ErrUnknownMemberID = &Error{Code: 25, Name: "UNKNOWN_MEMBER_ID", Message: "unknown member id"}
	// ErrInvalidSessionTimeout: a session timeout outside the coordinator's range.
	ErrInvalidSessionTimeout = &Error{Code: 26, Name: "INVALID_SESSION_TIMEOUT", Message: "invalid session timeout"}
	// ErrRebalanceInProgress: the group is rebalancing; the member must rejoin.
	ErrRebalanceInProgress = &Error{Code: 27, Name: "REBALANCE_IN_PROGRESS", Message: "rebalance in progress"}
	// ErrNonEmptyGroup: an operation that needs a group without active members.
	ErrNonEmptyGroup = &Error{Code: 68, Name: "NON_EMPTY_GROUP", Message: "group has active members"}
	// ErrGroupIDNotFound: the group does not exist.
	ErrGroupIDNotFound = &Error{Code: 69, Name: "GROUP_ID_NOT_FOUND", Message: "group not found"}
	// ErrGroupSubscribedToTopic: offsets of a topic a group's members consume cannot
	// be deleted (Kafka's OffsetDelete).
	ErrGroupSubscribedToTopic = &Error{Code: 86, Name: "GROUP_SUBSCRIBED_TO_TOPIC", Message: "the group is subscribed to the topic"}
	// ErrFencedInstanceID: a static member replaced by a newer member with its instance id.
	ErrFencedInstanceID = &Error{Code: 82, Name: "FENCED_INSTANCE_ID", Message: "fenced instance id"}
	// ErrTopicAuthorizationFailed: the identity may not do this with the topic (produce,
	// consume, admin); nothing changed.
	ErrTopicAuthorizationFailed = &Error{Code: 29, Name: "TOPIC_AUTHORIZATION_FAILED", Message: "not authorized for the topic"}
	// ErrGroupAuthorizationFailed: the identity may not use the consumer group; nothing changed.
	ErrGroupAuthorizationFailed = &Error{Code: 30, Name: "GROUP_AUTHORIZATION_FAILED", Message: "not authorized for the group"}
	// ErrClusterAuthorizationFailed: the identity may not do a cluster-wide operation
	// (bridges, rebalancing every topic); nothing changed.
	ErrClusterAuthorizationFailed = &Error{Code: 31, Name: "CLUSTER_AUTHORIZATION_FAILED", Message: "not authorized for the cluster"}
	// ErrAuthenticationFailed: the node refused the client's credentials (wrong
	// password, unknown or expired credentials, a certificate it does not trust).
	ErrAuthenticationFailed = &Error{Code: 58, Name: "SASL_AUTHENTICATION_FAILED", Message: "authentication failed"}
	// ErrProducerFenced: a transactional producer whose transactional id was taken over
	// by a newer incarnation (InitProducerId bumped the epoch); it must stop.
	ErrProducerFenced = &Error{Code: 90, Name: "PRODUCER_FENCED", Message: "producer fenced by a newer incarnation of its transactional id"}
	// ErrInvalidTxnState: a transaction request that the transaction's state does not allow.
	ErrInvalidTxnState = &Error{Code: 48, Name: "INVALID_TXN_STATE", Message: "invalid transaction state"}
	// ErrInvalidProducerIDMapping: a transaction request whose producer id is not the
	// transactional id's.
	ErrInvalidProducerIDMapping = &Error{Code: 49, Name: "INVALID_PRODUCER_ID_MAPPING", Message: "producer id does not match the transactional id"}
	// ErrInvalidTransactionTimeout: a transaction timeout outside the coordinator's range.
	ErrInvalidTransactionTimeout = &Error{Code: 50, Name: "INVALID_TRANSACTION_TIMEOUT", Message: "invalid transaction timeout"}
	// ErrConcurrentTransactions: the transaction is still being completed; retry.
	ErrConcurrentTransactions = &Error{Code: 51, Name: "CONCURRENT_TRANSACTIONS", Retriable: true, Message: "the previous transaction is still being completed"}
	// ErrUnstableOffsetCommit: an offset fetch that asked for stable offsets only
	// (Kafka's require_stable) of a partition whose offset a transaction not yet
	// completed holds; retry.
	ErrUnstableOffsetCommit = &Error{Code: 88, Name: "UNSTABLE_OFFSET_COMMIT", Retriable: true, Message: "a transaction holding the offset has not completed"}
	// ErrTransactionalIDNotFound: describe of a transactional id the coordinator does not know.
	ErrTransactionalIDNotFound = &Error{Code: 105, Name: "TRANSACTIONAL_ID_NOT_FOUND", Message: "transactional id not found"}
	// ErrTopicNotReady: the topic's creation or deletion is incomplete; retry create to repair it.
	ErrTopicNotReady = &Error{Code: 5, Name: "LEADER_NOT_AVAILABLE", Retriable: true, Message: "topic is not ready"}
)

var byCode = func() map[int16]*Error {
	m := map[int16]*Error{}
	for _, e := range []*Error{ErrUnknown, ErrOffsetOutOfRange, ErrCorruptMessage, ErrUnknownTopic,
		ErrNotLeader, ErrTimeout, ErrMessageTooLarge, ErrInvalidTopic, ErrTopicExists,
		ErrInvalidPartitions, ErrInvalidReplicationFactor, ErrInvalidConfig, ErrInvalidRequest,
		ErrOutOfOrderSequence, ErrDuplicateSequence, ErrUnknownProducerID, ErrInvalidProducerEpoch, ErrInvalidRecord, ErrUnavailable, ErrTopicNotReady, ErrCoordinatorNotAvailable,
		ErrNotCoordinator, ErrIllegalGeneration, ErrInconsistentGroupProtocol, ErrInvalidGroupID,
		ErrPolicyViolation,
		ErrUnknownMemberID, ErrInvalidSessionTimeout, ErrRebalanceInProgress, ErrNonEmptyGroup,
		ErrGroupIDNotFound, ErrGroupSubscribedToTopic, ErrFencedInstanceID, ErrTopicAuthorizationFailed, ErrGroupAuthorizationFailed,
		ErrClusterAuthorizationFailed, ErrAuthenticationFailed, ErrProducerFenced, ErrInvalidTxnState,
		ErrInvalidProducerIDMapping, ErrInvalidTransactionTimeout, ErrConcurrentTransactions, ErrTransactionalIDNotFound, ErrUnstableOffsetCommit} {
		m[e.Code] = e
	}
	return m
}()

// DetailError is an error kind with a message about this occurrence. Its text is the
// detail alone, which already says what failed and what to do; Unwrap gives the kind.
type DetailError struct {
	Kind   *Error
	Detail string
}

func (e *DetailError) Error() string { return e.Detail }
func (e *DetailError) Unwrap() error { return e.Kind }

// Errorf returns a DetailError of kind with a formatted detail.
func Errorf(kind *Error, format string, args ...any) error {
	return &DetailError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the error code of err: 0 for nil, ErrUnknown's for errors that are
// not qxd errors.
func CodeOf(err error) int16 {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ErrUnknown.Code
}

// FromCode rebuilds an error received over the wire. code 0 gives nil.
func FromCode(code int16, detail string) error {
	if code == 0 {
		return nil
	}
	kind, ok := byCode[code]
	if !ok {
		kind = ErrUnknown
	}
	if detail == "" {
		return kind
	}
	return &DetailError{Kind: kind, Detail: detail}
}

// IsRetriable reports whether err is a qxd error worth retrying.
func IsRetriable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retriable
}
