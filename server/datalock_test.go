package server_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// A second node on the data dir of a running node refuses to start, with one line
// naming the directory and the process holding it; once the first node stops, the
// data dir is free again.
func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := qxdtest.StartNodeWith(t, qxdtest.NodeConfig(t, dir))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second, err := server.Start(ctx, qxdtest.NodeConfig(t, dir))
	if err == nil {
		second.Close(ctx)
		t.Fatal("a second node started on the data dir of a running node")
	}
	msg := err.Error()
	if !strings.Contains(msg, strconv.Quote(dir)) || !strings.Contains(msg, "process "+strconv.Itoa(os.Getpid())) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming the data dir %q and process %d", msg, dir, os.Getpid())
	}

	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := server.Start(ctx, qxdtest.NodeConfig(t, dir))
	if err != nil {
		t.Fatalf("start on the data dir of a stopped node: %v", err)
	}
	if err := again.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
