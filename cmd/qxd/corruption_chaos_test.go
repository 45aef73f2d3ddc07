//go:build chaos

package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
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

// TestCorruptionRepairThreeNodes flips bits in, or truncates, partition 0's block
// file on its leader, one node of three (no node to spare), restarts it, lets a
// read find the damage, and runs "qxd topic repair": the node's copy must be
// rebuilt from the two healthy ones. Afterwards each node in turn leads the
// partition and "qxd topic describe --verify" must read its copy back intact, a
// Kafka fetch through it must return every acknowledged record, and describe
// and cluster info must show nothing damaged.
func TestCorruptionRepairThreeNodes(t *testing.T) {
	bin := buildQxd(t)
	for _, d := range []blkDamage{flipBits, truncateBlk} {
		t.Run(string(d), func(t *testing.T) { repairDamaged(t, bin, d) })
	}
}

func repairDamaged(t *testing.T, bin string, d blkDamage) {
	var repaired bool
	var verified []string
	o := runCorruptionThen(t, bin, 3, d, func(ctx context.Context, c *qxd.Client, urls, victim string, acked map[int64]string) {
		// A Kafka fetch reads the leader's copy, the damaged one.
		kread, kwrong, _, kerr := kafkaRead(ctx, t, c, victim, acked, 30*time.Second)
		t.Logf("Kafka read through node %s before the repair: %d of %d intact, %d wrong, error %v", victim, kread, len(acked), kwrong, kerr)
		// A verify reads the leader's copy with no fallback: it records what it
		// finds damaged whatever the reads above found.
		var out bytes.Buffer
		verr := run(ctx, []string{"qxd", "--server", urls, "--log-level", "warn", "topic", "describe", "damaged", "--verify"}, strings.NewReader(""), &out, io.Discard)
		t.Logf("qxd topic describe --verify before the repair (error %v):\n%s", verr, out.String())
		out.Reset()
		began := time.Now()
		err := run(ctx, []string{"qxd", "--server", urls, "--log-level", "warn", "topic", "repair", "damaged"}, strings.NewReader(""), &out, io.Discard)
		t.Logf("qxd topic repair damaged (took %v, error %v):\n%s", time.Since(began).Round(time.Millisecond), err, out.String())
		if err != nil || !strings.Contains(out.String(), "partition 0: the copy on node "+victim+" was rebuilt on the same node") {
			t.Errorf("qxd topic repair ended with %v and printed %q; want partition 0's copy on node %s rebuilt", err, out.String(), victim)
			return
		}
		repaired = true
		for _, node := range []string{"n1", "n2", "n3"} {
			lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
			err := preferLeader(lctx, urls, semantics.StreamName("damaged", 0), node)
			lcancel()
			if err != nil {
				t.Errorf("make node %s lead partition 0: %v", node, err)
				continue
			}
			out.Reset()
			verr := run(ctx, []string{"qxd", "--server", urls, "--log-level", "warn", "topic", "describe", "damaged", "--verify"}, strings.NewReader(""), &out, io.Discard)
			if want := regexp.MustCompile(`verify: partition 0 on node ` + node + `: \d+ batches, \d+ records, \d+ bytes read back; intact`); verr != nil || !want.MatchString(out.String()) {
				t.Errorf("qxd topic describe --verify while node %s leads (error %v) does not match %s:\n%s", node, verr, want, out.String())
			} else {
				verified = append(verified, node)
			}
			kread, kwrong, _, kerr := kafkaRead(ctx, t, c, node, acked, 30*time.Second)
			t.Logf("Kafka read while node %s leads: %d of %d intact, %d wrong, error %v", node, kread, len(acked), kwrong, kerr)
			if kwrong > 0 || kread < len(acked) || kerr != nil {
				t.Errorf("the Kafka read while node %s leads got %d of %d acknowledged records intact, %d wrong, error %v; want all of them",
					node, kread, len(acked), kwrong, kerr)
			}
		}
	})
	checkNeverWrong(t, o)
	if !repaired {
		return
	}
	t.Logf("RESULT repair after %s: copies verified intact on %v", d, verified)
	if regexp.MustCompile(`(?m)^0\s.*DAMAGED`).MatchString(o.describeAfter) || !regexp.MustCompile(`damaged:\s+0\n`).MatchString(o.clusterAfter) {
		t.Errorf("after the repair and the reads, describe or cluster info still show damage:\n%s\n%s", o.describeAfter, o.clusterAfter)
	}
	if o.verifyErr != nil {
		t.Errorf("qxd topic describe --verify after the repair failed: %v\n%s", o.verifyErr, o.verify)
	}
}
