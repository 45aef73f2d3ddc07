// Package server runs a qxd node: an embedded nats-server with JetStream, alone or in a
// cluster, and qxd's services beside it — the partition writers (offsets, idempotent
// producers, appends fenced by expected sequence), topic admin, the host of the group
// coordinator and committed offsets, permissions, leader placement — plus the services
// an embedder adds through Config.Services (bridges), with start-up that waits for the
// cluster and a graceful, bounded stop. The services a front door calls are in-process
// Go APIs (Writers, Fetcher, GroupCoordinator, Admin, from Node or a Service's Host);
// the NATS request/reply handlers are thin adapters over them. It is the only package
// that imports nats-server.
package server
