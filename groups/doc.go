// Package groups is Kafka's consumer-group protocol as Go types: the requests and
// responses of JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
// OffsetFetch, DescribeGroups, ListGroups and DeleteGroups (the one wire contract
// the SDK and qxd's NATS service share), the group states, the consumer protocol's
// member metadata and assignments, and the partition assignors (range, round-robin,
// sticky, cooperative-sticky) a group leader runs. It holds no coordinator: the state machine that
// answers these requests is groups/coordinator, which members and the SDK never
// import.
package groups
