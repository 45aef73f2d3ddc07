package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerDoesNotImportSDKOrBridges: the node core reaches the SDK (the root
// package) only through the services its embedder adds, such as server/bridge.
func TestServerDoesNotImportSDKOrBridges(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/qxd-io/qxd/server").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/qxd-io/qxd", "github.com/qxd-io/qxd/server/bridge":
			t.Errorf("package server depends on %s: bridges and the SDK must be added through Config.Services", dep)
		}
	}
}
