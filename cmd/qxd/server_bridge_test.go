package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestServerHostsBridges: 'qxd server' hosts bridges (the node core does not; the
// command adds them), so README's "Coming from NATS" steps work against it.
func TestServerHostsBridges(t *testing.T) {
	t.Parallel()
	addr := qxdtest.FreeAddr(t)
	startServer(t, "--listen", addr, "--data", t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	qxd := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		all := append([]string{"qxd", "--server", "nats://" + addr, "--log-level", "warn"}, args...)
		if err := run(ctx, all, strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("qxd %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	qxd("topic", "create", "orders", "-p", "2")
	qxd("bridge", "create", "orders-in", "--from", "orders.*", "--to-topic", "orders", "--key", "token:2")
	if out := qxd("bridge", "list"); !strings.Contains(out, "orders-in") {
		t.Errorf("qxd bridge list:\n%s\nwant orders-in", out)
	}
}
