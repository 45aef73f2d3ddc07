// Package groups implements Kafka's consumer groups: the coordinator (Kafka's group
// state machine: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead, with
// member ids, generations, session and rebalance timeouts and static members), the
// partition assignors (range, round-robin, sticky), and the consumer protocol's
// metadata that members exchange. The coordinator speaks Go, not a wire format: qxd's
// NATS service and a Kafka-protocol listener can both drive it, since JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch map onto its methods
// one to one.
package groups
