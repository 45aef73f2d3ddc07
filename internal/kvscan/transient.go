package kvscan

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Transient reports whether a bucket request may succeed if sent again: it
// timed out, nothing answered (the bucket between leaders), the connection was
// moving to another node (its node told it to, or a check found it silent), or
// JetStream answered that it is between leaders itself: 10008 ("JetStream
// system temporarily unavailable": its meta group has none, as for a moment
// after a node dies), 10009 (not the cluster's leader) or 10118 (the stream
// offline).
func Transient(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case 10008, 10009, 10118:
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}
