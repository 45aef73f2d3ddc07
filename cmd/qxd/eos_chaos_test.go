//go:build chaos

package main

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// TestExactlyOnceChaos runs the exactly-once pipeline of TestExactlyOnceKills
// while the input is produced for QXD_EOS_DURATION (default 2m), and kills at
// random every 5 to 12 s: a member in the middle of a transaction, the node
// coordinating transactions, or the node leading a partition of the input or
// the output (SIGKILL, restarted after 2 to 4 s). `just eos` runs it.
func TestExactlyOnceChaos(t *testing.T) {
	d := 2 * time.Minute
	if s := os.Getenv("QXD_EOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("QXD_EOS_DURATION=%q: %v: give a duration such as 2m", s, err)
		}
	}
	deadline := time.Now().Add(d)
	plan := eosPlan{partitions: 6, members: 3, keys: 30, rate: 200, load: d,
		faults: func(int) (eosFault, time.Duration, bool) {
			pause := time.Duration(5+rand.IntN(8)) * time.Second
			if time.Now().Add(pause).After(deadline) {
				return 0, 0, false
			}
			return eosFault(rand.IntN(3)), pause, true
		}}
	runEOS(t, plan)
}
