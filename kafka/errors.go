package kafka

import (
	"context"
	"errors"

	"github.com/qxd-io/qxd/semantics"
)

// Kafka error codes the listener answers that qxd's error set does not carry.
const (
	codeUnsupportedVersion      int16 = 35
	codeUnsupportedForMsgFormat int16 = 43
	codeUnknownTopicID          int16 = 100
	codeInconsistentTopicID     int16 = 103
	codeReplicaNotAvailable     int16 = 9
	codeKafkaStorageError       int16 = 56
	codeOffsetNotAvailable      int16 = 78
	codeFencedLeaderEpoch       int16 = 74
	codeUnknownLeaderEpoch      int16 = 75
	codeRebootstrapRequired     int16 = 129
)

// checkLeaderEpoch compares the leader epoch a client believes current (-1: it
// does not say) with the partition's, as Kafka's leader does (KIP-320): older is
// FENCED_LEADER_EPOCH (the client's metadata is stale), newer
// UNKNOWN_LEADER_EPOCH (this node's is). An epoch this node does not know passes.
func checkLeaderEpoch(ctx context.Context, b Backend, topic string, p, clientEpoch int32) int16 {
	if clientEpoch < 0 {
		return 0
	}
	current := b.LeaderEpoch(ctx, topic, p)
	switch {
	case current < 0:
		return 0
	case clientEpoch < current:
		return codeFencedLeaderEpoch
	case clientEpoch > current:
		return codeUnknownLeaderEpoch
	}
	return 0
}

// code is the Kafka error code of err: semantics errors carry theirs, a context
// that ended is REQUEST_TIMED_OUT, anything else UNKNOWN_SERVER_ERROR.
func code(err error) int16 {
	if err == nil {
		return 0
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return semantics.ErrTimeout.Code
	}
	return semantics.CodeOf(err)
}

// message is err's text for the error message fields of newer versions; nil
// without an error.
func message(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// codeError is a Kafka error code qxd's error set has no kind for.
type codeError struct {
	code int16
	msg  string
}

func (e *codeError) Error() string { return e.msg }
