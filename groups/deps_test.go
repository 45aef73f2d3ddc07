package groups_test

import (
	"slices"
	"testing"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestProtocolWithoutCoordinator holds the split between the group protocol and the
// coordinator: the SDK (the root package) and this package compile without the
// server-side state machine.
func TestProtocolWithoutCoordinator(t *testing.T) {
	t.Parallel()
	const coordinator = "github.com/qxd-io/qxd/groups/coordinator"
	for _, pkg := range []string{"github.com/qxd-io/qxd", "github.com/qxd-io/qxd/groups"} {
		if slices.Contains(qxdtest.Deps(t, pkg), coordinator) {
			t.Errorf("%s depends on %s; it must need only the group protocol (package groups)", pkg, coordinator)
		}
	}
}
