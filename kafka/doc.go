// Package kafka is the Kafka wire protocol front door: a TCP listener that speaks
// Apache Kafka's protocol to any Kafka client and answers each request from a node's
// in-process services through Backend. Requests and responses are encoded with
// franz-go's kmsg; record batches pass through unchanged, in both directions.
//
// One file per API, named by its key (00_produce.go, 01_fetch.go, …), each a thin
// adapter onto Backend. ApiVersions advertises exactly the versions in versions.go.
package kafka
