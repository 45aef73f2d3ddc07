package qxd_test

// The in-process failover scenarios of the conformance suite: a partition leader
// killed under load, and a rolling restart of all three nodes, each with a keyed
// producer and a three-member group running.

import (
	"testing"

	"github.com/qxd-io/qxd/internal/conformance"
)

func TestLeaderKilledUnderLoad(t *testing.T) {
	t.Parallel()
	fd := newFailoverFrontDoor(t)
	conformance.RunFailover(t, fd, "LeaderKilledUnderLoad")
}

func TestRollingRestart(t *testing.T) {
	t.Parallel()
	fd := newFailoverFrontDoor(t)
	conformance.RunFailover(t, fd, "RollingRestart")
}
