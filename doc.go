// Package qxd is the Go SDK of qxd, Kafka's model on NATS JetStream: a Client
// connects to one or more qxd nodes; Admin manages topics and consumer groups;
// Producer sends records in batches to partition writers, idempotently; Consumer
// reads partitions by offset, assigned by hand or shared with the other members of a
// consumer group.
//
//	c, err := qxd.Connect(ctx, "nats://127.0.0.1:4222")
//	p, err := c.NewProducer()
//	err = p.ProduceSync(ctx, &qxd.Record{Topic: "orders", Key: []byte("k"), Value: []byte("v")})
//
//	cons, err := c.NewConsumer(qxd.Group("billing"))
//	err = cons.Subscribe(ctx, "orders")
//	recs, err := cons.Poll(ctx)
//
// Errors wrap the sentinels in errors.go: the SDK's own (ErrProducerClosed, ...)
// and Kafka's error codes re-exported from package semantics (ErrUnknownTopic,
// ErrOffsetOutOfRange, ...): compare with errors.Is, and ask IsRetriable whether
// trying again may help.
//
// Options are functions named for what they set, without a With prefix, as kgo's
// mostly are: ClientID, Linger, MaxPollRecords. Where the plain name is a type, the
// option takes Kafka's or kgo's name (RequiredAcks, BatchCompression,
// AutoOffsetReset); client settings that a producer or consumer setting would
// otherwise share a name with say Client (ClientRequestTimeout, ClientName). Each
// option's doc states its default, and the Default… constants hold them. The names
// used before (WithAcks, WithTLS, ...) still work and are deprecated
// (options_deprecated.go).
//
// Hooks (Hooks, hooks.go) report connections, batches written and batches read,
// for metrics (package qxdprom) and tracing; trace context travels in record
// headers (SetTraceParent, HeaderCarrier).
//
// The SDK's files by role: client*.go (connection, options, credentials,
// authorization), producer.go and producer_options.go (API, buffer, options) over
// producer_partition.go (the per-partition sink), consumer.go and
// consumer_options.go (API, options) over consumer_source.go (the per-partition
// source: start positions and fetching), consumer_group.go (group membership) with
// consumer_cooperative.go (incremental rebalances) and consumer_regex.go
// (SubscribeRegex), admin*.go, and start_position.go (Offset, ResetPolicy).
package qxd
