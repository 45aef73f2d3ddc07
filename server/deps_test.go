package server_test

import (
	"testing"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestServerDoesNotImportSDKOrBridges: the node core reaches the SDK (the root
// package) only through the services its embedder adds, such as server/bridge.
func TestServerDoesNotImportSDKOrBridges(t *testing.T) {
	t.Parallel()
	for _, dep := range qxdtest.Deps(t, "github.com/qxd-io/qxd/server") {
		switch dep {
		case "github.com/qxd-io/qxd", "github.com/qxd-io/qxd/server/bridge":
			t.Errorf("package server depends on %s: bridges and the SDK must be added through Config.Services", dep)
		}
	}
}
