// Package coordinator runs Kafka's consumer-group state machine: Empty,
// PreparingRebalance, CompletingRebalance, Stable and Dead, with member ids,
// generations, session and rebalance timeouts, static members and the leases that
// keep a partition with one member at a time. It takes the groups package's requests
// and answers them in Go, with no wire format: one file per Kafka request (join.go,
// sync.go, heartbeat.go, leave.go, offsets.go for OffsetCommit and OffsetFetch,
// admin.go for DescribeGroups, ListGroups, DeleteGroups and offset resets), so qxd's
// NATS service and a Kafka-protocol listener drive it alike, in process. Its
// collaborators come by interface: a StateStore for group states (KVStateStore on
// the qxd_groups bucket), an OffsetStore for committed offsets (*offsets.Store) and
// a Clock.
package coordinator
