package bench

import (
	"net"
	"strings"
	"testing"
)

// TestClusterEnvRetriesTakenPort: a cluster port taken between its pick and its
// node's bind (another process's, on a shared machine) does not fail the bench:
// the cluster starts again on new ports.
func TestClusterEnvRetriesTakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	picks := 0
	pickClusterAddr = func() (string, error) {
		picks++
		if picks == 3 { // the third node's first pick: a port this test holds
			return held.Addr().String(), nil
		}
		return freeAddr()
	}
	defer func() { pickClusterAddr = freeAddr }()
	e, err := NewClusterEnv(t.Context(), 3)
	if err != nil {
		t.Fatalf("a 3-node cluster whose first third port was taken: %v; want it started on new ports", err)
	}
	defer e.Close()
	if len(e.Nodes) != 3 || picks != 6 {
		t.Fatalf("%d nodes after %d port picks, want 3 nodes after 6 (one start again)", len(e.Nodes), picks)
	}
	for _, nd := range e.Nodes {
		if strings.Contains(nd.ClientURL(), held.Addr().String()) {
			t.Fatalf("node %s on the held port", nd.ClientURL())
		}
	}
}
