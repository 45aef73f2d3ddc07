//go:build chaos

package qxd_test

import (
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestReadRightAfterLeaderLoss reads a partition assigned right after its leader's
// node died. Behind the chaos tag: in one full -race run of the suite the read
// delivered nothing for 45 s after such an Assign, not reproduced since (see
// docs/architecture.md, known gaps).
func TestReadRightAfterLeaderLoss(t *testing.T) {
	t.Parallel()
	cons, want := assignAfterLeaderLoss(t)
	ctx := qxdtest.Context(t, 45*time.Second)
	got := 0
	for got < want {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("read %d of %d: %v", got, want, err)
		}
		got += len(rs)
	}
}
