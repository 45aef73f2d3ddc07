//go:build chaos

package qxd_test

// These in-process failover scenarios run with the chaos build tag (just faults):
// the leader-kill one has hung once in CI runs (the surviving nodes stopped answering
// admin and produce requests for minutes) and is being investigated; see
// docs/architecture.md.

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
