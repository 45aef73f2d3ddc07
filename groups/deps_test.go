package groups_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestProtocolWithoutCoordinator holds the split between the group protocol and the
// coordinator: the SDK (the root package) and this package compile without the
// server-side state machine.
func TestProtocolWithoutCoordinator(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	const coordinator = "github.com/qxd-io/qxd/groups/coordinator"
	for _, pkg := range []string{"github.com/qxd-io/qxd", "github.com/qxd-io/qxd/groups"} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, pkg) {
			t.Fatalf("go list -deps %s does not list the package itself:\n%s", pkg, out)
		}
		if slices.Contains(deps, coordinator) {
			t.Errorf("%s depends on %s; it must need only the group protocol (package groups)", pkg, coordinator)
		}
	}
}
