package server

import (
	"context"
	"slices"
	"testing"
)

func TestPeerRoutesLeaveOutSelf(t *testing.T) {
	t.Parallel()
	peers := []string{"nats://127.0.0.1:6222", "nats://localhost:6222", "nats://127.0.0.1:6223", "nats://no-such-host.invalid:6222"}
	tests := []struct {
		name       string
		host, port string
		self       []string
	}{
		{"listen host", "127.0.0.1", "6222", []string{"nats://127.0.0.1:6222", "nats://localhost:6222"}},
		{"wildcard", "0.0.0.0", "6222", []string{"nats://127.0.0.1:6222", "nats://localhost:6222"}},
		{"other port", "127.0.0.1", "6224", nil},
		{"random port", "127.0.0.1", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			routes, self := peerRoutes(context.Background(), peers, tt.host, tt.port)
			if !slices.Equal(self, tt.self) {
				t.Errorf("self = %q, want %q", self, tt.self)
			}
			if len(routes)+len(self) != len(peers) {
				t.Errorf("%d routes and %d self of %d peers", len(routes), len(self), len(peers))
			}
		})
	}
}
