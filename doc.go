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
//	cons := c.NewConsumer(qxd.Group("billing"))
//	err = cons.Subscribe(ctx, "orders")
//	recs, err := cons.Poll(ctx)
//
// Errors wrap the sentinels of package semantics, re-exported here (ErrUnknownTopic,
// ErrOffsetOutOfRange, ...): compare with errors.Is.
package qxd
