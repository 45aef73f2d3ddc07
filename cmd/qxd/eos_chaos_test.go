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
// the output (SIGKILL, restarted after 2 to 4 s). QXD_EOS_CLIENT=franz-go runs
// franz-go GroupTransactSession members on the Kafka listeners instead of SDK
// members; QXD_EOS_CLIENT=librdkafka runs each member as a Python process
// with confluent-kafka (librdkafka) on them, "member dies" then being a
// SIGKILL of that process in the middle of a transaction. `just eos` runs it.
func TestExactlyOnceChaos(t *testing.T) {
	d := 2 * time.Minute
	if s := os.Getenv("QXD_EOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("QXD_EOS_DURATION=%q: %v: give a duration such as 2m", s, err)
		}
	}
	client := os.Getenv("QXD_EOS_CLIENT")
	switch client {
	case "", "sdk", "franz-go":
	case "librdkafka":
		needConfluentKafka(t)
	default:
		t.Fatalf("QXD_EOS_CLIENT=%q: use sdk, franz-go or librdkafka", client)
	}
	var deadline time.Time // the input's end: faults come while it is produced
	plan := eosPlan{client: client, partitions: 6, members: 3, keys: 30, rate: 200, load: d,
		faults: func(i int) (eosFault, time.Duration, bool) {
			if i == 0 {
				deadline = time.Now().Add(d)
			}
			pause := time.Duration(5+rand.IntN(8)) * time.Second
			if time.Now().Add(pause).After(deadline) {
				return 0, 0, false
			}
			return eosFault(rand.IntN(3)), pause, true
		}}
	runEOS(t, plan)
}

// TestKafkaExactlyOnceKills runs the pipeline with franz-go GroupTransactSession
// members on the nodes' Kafka listeners: while the input is produced, the node
// coordinating transactions and then the node leading a partition are
// SIGKILLed and restarted, and a member dies in a transaction.
func TestKafkaExactlyOnceKills(t *testing.T) {
	plan := eosPlan{client: "franz-go", partitions: 6, members: 3, keys: 30, rate: 200, load: 20 * time.Second,
		faults: func(i int) (eosFault, time.Duration, bool) {
			switch i {
			case 0:
				return faultCoordinator, 2 * time.Second, true
			case 1:
				return faultLeader, 2 * time.Second, true
			case 2:
				return faultMember, time.Second, true
			}
			return 0, 0, false
		}}
	runEOS(t, plan)
}
