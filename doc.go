// Package qxd is the Go SDK of qxd, Kafka's model on NATS JetStream: a Client
// connects to one or more qxd nodes; Admin manages topics; Producer sends records in
// batches to partition writers, idempotently; Consumer reads partitions by offset.
//
//	c, err := qxd.Connect(ctx, "nats://127.0.0.1:4222")
//	p := c.NewProducer()
//	res, err := p.ProduceSync(ctx, &qxd.Record{Topic: "orders", Key: []byte("k"), Value: []byte("v")})
//	cons := c.NewConsumer()
//	err = cons.Assign(ctx, qxd.Assignment{Topic: "orders", Partition: 0, Offset: qxd.AtStart()})
//	recs, err := cons.Poll(ctx)
package qxd
