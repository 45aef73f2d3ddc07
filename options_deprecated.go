// Options under their former names. Every option is named for what it sets,
// without a With prefix (as kgo's mostly are); these are kept so that code written
// before keeps compiling, and will go in a later release.

package qxd

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/partitioner"
)

// WithUserInfo is UserInfo.
//
// Deprecated: use UserInfo.
func WithUserInfo(user, password string) ClientOption { return UserInfo(user, password) }

// WithToken is Token.
//
// Deprecated: use Token.
func WithToken(token string) ClientOption { return Token(token) }

// WithCredsFile is CredsFile.
//
// Deprecated: use CredsFile.
func WithCredsFile(path string) ClientOption { return CredsFile(path) }

// WithTLS is TLS.
//
// Deprecated: use TLS.
func WithTLS(caFile, certFile, keyFile string) ClientOption { return TLS(caFile, certFile, keyFile) }

// WithHooks is Hooks.
//
// Deprecated: use Hooks.
func WithHooks(hs ...Hook) ClientOption { return Hooks(hs...) }

// WithName is ClientName.
//
// Deprecated: use ClientName.
func WithName(name string) ClientOption { return ClientName(name) }

// WithLogger is Logger.
//
// Deprecated: use Logger.
func WithLogger(l *slog.Logger) ClientOption { return Logger(l) }

// WithNATSOptions is NATSOptions.
//
// Deprecated: use NATSOptions.
func WithNATSOptions(opts ...nats.Option) ClientOption { return NATSOptions(opts...) }

// WithInProcess is InProcess.
//
// Deprecated: use InProcess.
func WithInProcess(p nats.InProcessConnProvider) ClientOption { return InProcess(p) }

// WithRequestTimeout is ClientRequestTimeout.
//
// Deprecated: use ClientRequestTimeout.
func WithRequestTimeout(d time.Duration) ClientOption { return ClientRequestTimeout(d) }

// WithPing is ClientPing.
//
// Deprecated: use ClientPing.
func WithPing(interval time.Duration, maxOut int) ClientOption { return ClientPing(interval, maxOut) }

// WithClientID is ClientID.
//
// Deprecated: use ClientID.
func WithClientID(id string) ClientOption { return ClientID(id) }

// WithAcks is RequiredAcks.
//
// Deprecated: use RequiredAcks.
func WithAcks(a Acks) ProducerOption { return RequiredAcks(a) }

// WithCompression is BatchCompression.
//
// Deprecated: use BatchCompression.
func WithCompression(codec Compression) ProducerOption { return BatchCompression(codec) }

// WithPartitioner is RecordPartitioner.
//
// Deprecated: use RecordPartitioner.
func WithPartitioner(newFn func() partitioner.Partitioner) ProducerOption {
	return RecordPartitioner(newFn)
}

// WithResetPolicy is AutoOffsetReset.
//
// Deprecated: use AutoOffsetReset.
func WithResetPolicy(p ResetPolicy) ConsumerOption { return AutoOffsetReset(p) }
