package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestRun: with one transaction aborted and redone, a read-committed reader of
// the output sees every word exactly once, upper-cased; a read-uncommitted one
// also sees the aborted attempt.
func TestRun(t *testing.T) {
	t.Parallel()
	const words = 40
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	sum, err := run(ctx, &out, words)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	var want []string
	for i := range words {
		want = append(want, fmt.Sprintf("WORD-%d", i))
	}
	got := slices.Sorted(slices.Values(sum.Committed))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("read committed: %d records %q, want each of the %d words once", len(got), got, words)
	}
	if sum.Aborted == 0 || len(sum.Uncommitted) != words+sum.Aborted {
		t.Errorf("read uncommitted: %d records, want %d words and the %d aborted", len(sum.Uncommitted), words, sum.Aborted)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}
