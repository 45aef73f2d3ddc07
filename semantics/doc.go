// Package semantics holds Kafka's model as Go types and rules: topic names and their
// mapping onto JetStream streams and subjects (every subject qxd uses is named in
// subjects.go), topic configuration, records and the RecordBatch codec, the offset
// rules, the wire messages between the SDK and a node, and the error set (mirroring
// Kafka's error codes). It imports no NATS server code.
package semantics
