//go:build chaos

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// maxLeaderReads bounds the reads TestCorruptionLeaderThreeNodes makes until one
// of them is served by the damaged node: JetStream places each read's consumer
// on one of the three replicas at random, so 20 reads all miss it with
// probability (2/3)^20, about 3 in 10,000.
const maxLeaderReads = 20

// TestCorruptionLeaderThreeNodes flips bits in, or truncates, partition 0's
// block file on its leader, one node of three, restarts it and makes it lead
// again. Every
// acknowledged record must still be read back intact, whichever replica a read
// meets: reads are repeated until one was served by the damaged node's copy
// (where the batches fail their CRC-32C and must be fetched from a healthy
// replica). Afterwards "qxd topic describe" and "qxd cluster info" show the
// partition damaged on that node.
func TestCorruptionLeaderThreeNodes(t *testing.T) {
	bin := buildQxd(t)
	for _, d := range []blkDamage{flipBits, truncateBlk} {
		t.Run(string(d), func(t *testing.T) { leaderDamaged(t, bin, d) })
	}
}

func leaderDamaged(t *testing.T, bin string, d blkDamage) {
	type readResult struct {
		hosts   []string
		read    int
		wrong   int
		readErr error
	}
	var reads []readResult
	hitVictim, victimName := false, ""
	o := runCorruptionThen(t, bin, 3, d, func(ctx context.Context, c *qxd.Client, urls, victim string, acked map[int64]string) {
		nc, err := nats.Connect(urls)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		victimName = victim
		seen := map[string]bool{}                                    // read consumers already counted
		readHosts(ctx, js, semantics.StreamName("damaged", 0), seen) // the first read's
		for i := 0; i < maxLeaderReads && !hitVictim; i++ {
			var rr readResult
			cons := qxdtest.NewConsumer(t, c)
			if err := cons.Assign(ctx, qxd.Assignment{Topic: "damaged", Partition: 0, Offset: qxd.AtStart()}); err != nil {
				t.Fatal(err)
			}
			got := map[int64]bool{}
			pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
			for len(got) < len(acked) {
				recs, err := cons.Poll(pctx)
				for _, r := range recs {
					if want, ok := acked[r.Offset]; !ok || want != string(r.Value) || got[r.Offset] {
						rr.wrong++
						continue
					}
					got[r.Offset] = true
					rr.read++
				}
				if err != nil {
					rr.readErr = err
					break
				}
				if len(rr.hosts) == 0 {
					rr.hosts = readHosts(pctx, js, semantics.StreamName("damaged", 0), seen)
				}
			}
			pcancel()
			rr.hosts = append(rr.hosts, readHosts(ctx, js, semantics.StreamName("damaged", 0), seen)...)
			cons.Close(ctx)
			for _, h := range rr.hosts {
				hitVictim = hitVictim || h == victim
			}
			t.Logf("read %d, served by %v: %d of %d records read back intact, %d wrong, error %v",
				i+1, rr.hosts, rr.read, len(acked), rr.wrong, rr.readErr)
			reads = append(reads, rr)
		}
		if !hitVictim {
			t.Errorf("none of %d reads was served by node %s, the damaged one", len(reads), victim)
		}
		// A Kafka fetch reads the leader's copy: the damaged node's, every time.
		kread, kwrong, _, kerr := kafkaRead(ctx, t, c, victim, acked, 30*time.Second)
		t.Logf("Kafka read through node %s: %d of %d records read back intact, %d wrong, error %v", victim, kread, len(acked), kwrong, kerr)
		if kwrong > 0 || kread < len(acked) || kerr != nil {
			t.Errorf("the Kafka read through node %s, which leads partition 0 with the damaged copy, got %d of %d acknowledged records intact, %d wrong, and ended with %v; want all of them intact",
				victim, kread, len(acked), kwrong, kerr)
		}
	})
	checkNeverWrong(t, o)
	if o.read < o.acked || o.readErr != nil {
		t.Errorf("the first read got %d of %d acknowledged records and ended with %v; want all of them from the healthy replicas", o.read, o.acked, o.readErr)
	}
	for i, rr := range reads {
		if rr.wrong > 0 || rr.read < o.acked || rr.readErr != nil {
			t.Errorf("read %d (served by %v) got %d of %d acknowledged records intact, %d wrong, and ended with %v; want all of them intact",
				i+1, rr.hosts, rr.read, o.acked, rr.wrong, rr.readErr)
		}
	}
	if hitVictim {
		checkReadDamageShown(t, o, victimName)
	}
}

// readHosts returns the nodes serving the qxd read consumers of stream not in seen,
// and adds them to seen.
func readHosts(ctx context.Context, js jetstream.JetStream, stream string, seen map[string]bool) []string {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	var hosts []string
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if !strings.HasPrefix(ci.Name, "qxd_read_") || seen[ci.Name] || ci.Cluster == nil {
			continue
		}
		seen[ci.Name] = true
		hosts = append(hosts, ci.Cluster.Leader)
	}
	return hosts
}
