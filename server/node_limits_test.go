package server_test

import (
	"testing"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// TestNodeMaxPending checks that the node's embedded NATS server cuts a client
// off at Config.MaxPending, not at NATS's own default of 64 MiB: consumers that
// fetch many partitions ahead over one connection need the room.
func TestNodeMaxPending(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  int64 // 0: the default
	}{
		{"default", 0},
		{"set", 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := qxdtest.NodeConfig(t, t.TempDir())
			want := server.DefaultConfig().MaxPending
			if tc.set != 0 {
				cfg.MaxPending, want = tc.set, tc.set
			}
			n := qxdtest.StartNodeWith(t, cfg)
			vz, err := n.NATSServer().Varz(nil)
			if err != nil {
				t.Fatal(err)
			}
			if vz.MaxPending != want {
				t.Fatalf("the node cuts clients off at %d bytes pending, want %d (Config.MaxPending)", vz.MaxPending, want)
			}
		})
	}
}
