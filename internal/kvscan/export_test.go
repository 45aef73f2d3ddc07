package kvscan

import (
	"context"

	"github.com/nats-io/nats.go"
)

// LeaderWalk exposes leaderWalk to the tests: LeaderScan's read when its
// watcher did not reach the leader's last revision.
func LeaderWalk(ctx context.Context, nc *nats.Conn, bucket, filter string) ([]Entry, error) {
	return leaderWalk(ctx, nc, bucket, filter)
}
