//go:build chaos

package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
)

// This file holds what TestChaos measures per partition: a probe producer with one
// record in flight per partition, as TestFaultDrill's producer, and each
// disruption's window, so that the wait of partitions the disrupted node led is
// told apart from that of partitions healthy nodes led, and what the group read
// twice is told per disruption.

// partitionProbe produces one keyed record at a time to each partition of a topic,
// each partition on its own, and records how long each record waited for its
// acknowledgement. Its records go into a ledger too, so the log check covers them.
type partitionProbe struct {
	p    *qxd.Producer
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	waits []ackWait
}

// startPartitionProbe starts a probe of parts partitions of topic on c. Its values
// are "q<partition>-<sequence>", one key per partition.
func startPartitionProbe(ctx context.Context, t *testing.T, c *qxd.Client, topic string, parts int32, led *ledger) *partitionProbe {
	t.Helper()
	p, err := c.NewProducer(qxd.Linger(0), qxd.DeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatalf("new probe producer: %v", err)
	}
	pp := &partitionProbe{p: p, stop: make(chan struct{})}
	keys := partitionKeys(parts)
	for part := range parts {
		pp.wg.Add(1)
		go func() {
			defer pp.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-pp.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				began := time.Now()
				done := make(chan error, 1)
				r := &qxd.Record{Topic: topic, Key: keys[part], Value: fmt.Appendf(nil, "q%d-%09d", part, i)}
				if err := p.Produce(ctx, r, func(_ *qxd.Record, err error) { done <- err }); err != nil {
					done <- err
				} else {
					led.mu.Lock()
					led.produced++
					led.mu.Unlock()
				}
				err := <-done
				took := time.Since(began)
				pp.mu.Lock()
				pp.waits = append(pp.waits, ackWait{p: part, began: began, took: took})
				pp.mu.Unlock()
				led.mu.Lock()
				if err != nil {
					led.failed++
					led.lastErr = err
				} else {
					led.acked[string(r.Value)] = position{r.Partition, r.Offset}
				}
				led.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return pp
}

// halt stops the probe, waits for its records' results and closes its producer.
func (pp *partitionProbe) halt() {
	close(pp.stop)
	pp.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = pp.p.Close(ctx)
}

// disruption is one fault of TestChaos: its kind, the node, which node that was
// (the producer's, the groups bucket's leader, or one picked at random), whether
// the producers' client was connected to it, the partitions' leaders as it began,
// when it began, when the node came back (SIGCONT, heal, restart) and when the
// next disruption could begin.
type disruption struct {
	kind, node, target string
	viaNode            bool
	leaders            []string
	began, back, end   time.Time
}

// disruptionWaits is what a disruption, or every disruption of a kind, cost: the
// longest acknowledgement wait of the partitions the disrupted node led and of
// those healthy nodes led, each for records sent before the node came back and
// after, and the records the group read a second time meanwhile.
type disruptionWaits struct {
	faulty, faultyAfter, healthy, healthyAfter time.Duration
	readTwice                                  int
	n                                          int
}

func (w disruptionWaits) String() string {
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("faulty %s/%s healthy %s/%s read_twice %d", r(w.faulty), r(w.faultyAfter), r(w.healthy), r(w.healthyAfter), w.readTwice)
}

// merge takes the longer waits of w and o, and adds their re-reads.
func (w disruptionWaits) merge(o disruptionWaits) disruptionWaits {
	return disruptionWaits{
		faulty: max(w.faulty, o.faulty), faultyAfter: max(w.faultyAfter, o.faultyAfter),
		healthy: max(w.healthy, o.healthy), healthyAfter: max(w.healthyAfter, o.healthyAfter),
		readTwice: w.readTwice + o.readTwice, n: w.n + o.n,
	}
}

// measure attributes the probe's waits and the group's second reads to the
// disruptions: a record whose wait overlaps a disruption's window (from its
// beginning to the next one's) counts for it, as for the partitions the disrupted
// node led or those healthy nodes led, before or after the node came back; a
// record read again counts where its second read came.
func measure(ds []disruption, waits []ackWait, reads []readRec) []disruptionWaits {
	out := make([]disruptionWaits, len(ds))
	for i, d := range ds {
		w := &out[i]
		w.n = 1
		for _, a := range waits {
			if !a.began.Before(d.end) || a.began.Add(a.took).Before(d.began) {
				continue
			}
			faulty := int(a.p) < len(d.leaders) && d.leaders[a.p] == d.node
			after := !a.began.Before(d.back)
			switch {
			case faulty && after:
				w.faultyAfter = max(w.faultyAfter, a.took)
			case faulty:
				w.faulty = max(w.faulty, a.took)
			case after:
				w.healthyAfter = max(w.healthyAfter, a.took)
			default:
				w.healthy = max(w.healthy, a.took)
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range reads {
		if !seen[r.value] {
			seen[r.value] = true
			continue
		}
		for i, d := range ds {
			if !r.at.Before(d.began) && r.at.Before(d.end) {
				out[i].readTwice++
			}
		}
	}
	return out
}

// slowWaits lists, in order of their beginning, the probe's waits longer than
// over: each with its partition, its beginning and end, the disruption it
// overlaps (by number, from 1; 0 for none) and whether the disrupted node led the
// partition, so that a long wait can be set beside the node logs.
func slowWaits(ds []disruption, waits []ackWait, over time.Duration) []string {
	slow := append([]ackWait(nil), waits...)
	sort.SliceStable(slow, func(i, j int) bool { return slow[i].began.Before(slow[j].began) })
	var out []string
	for _, a := range slow {
		if a.took <= over {
			continue
		}
		in, led := 0, ""
		for i, d := range ds {
			if a.began.Before(d.end) && !a.began.Add(a.took).Before(d.began) {
				in, led = i+1, "a healthy node's"
				if int(a.p) < len(d.leaders) && d.leaders[a.p] == d.node {
					led = "the disrupted node's"
				}
			}
		}
		out = append(out, fmt.Sprintf("partition %d (%s) %s–%s waited %v, disruption %d", a.p, led,
			a.began.Format("15:04:05.000"), a.began.Add(a.took).Format("15:04:05.000"), a.took.Round(time.Millisecond), in))
	}
	return out
}

// readAgain lists the records the group read a second time, per member and
// partition: how many, the offsets, and when the first and the second reads came.
func readAgain(reads []readRec, acked map[string]position) []string {
	type key struct {
		first, second int
		p             int32
	}
	type span struct {
		n              int
		lo, hi         int64
		firstAt, at    time.Time
		firstTo, secTo time.Time
	}
	firstRead := map[string]readRec{}
	spans := map[key]*span{}
	var order []key
	for _, r := range reads {
		f, seen := firstRead[r.value]
		if !seen {
			firstRead[r.value] = r
			continue
		}
		pos := acked[r.value]
		k := key{f.member, r.member, pos.partition}
		sp := spans[k]
		if sp == nil {
			sp = &span{lo: pos.offset, hi: pos.offset, firstAt: f.at, at: r.at}
			spans[k] = sp
			order = append(order, k)
		}
		sp.n++
		sp.lo, sp.hi = min(sp.lo, pos.offset), max(sp.hi, pos.offset)
		sp.firstTo, sp.secTo = f.at, r.at
	}
	var out []string
	for _, k := range order {
		sp := spans[k]
		out = append(out, fmt.Sprintf("%d records of partition %d, offsets %d–%d: first read by member %d %s–%s, again by member %d %s–%s",
			sp.n, k.p, sp.lo, sp.hi, k.first, sp.firstAt.Format("15:04:05.000"), sp.firstTo.Format("15:04:05.000"),
			k.second, sp.at.Format("15:04:05.000"), sp.secTo.Format("15:04:05.000")))
	}
	return out
}

// byKind merges the disruptions' waits per kind, in the order of kinds, and
// formats them as "kind(n)=faulty a/b healthy c/d read_twice e", kinds that did
// not occur left out.
func byKind(kinds []string, ds []disruption, ws []disruptionWaits) string {
	m := map[string]disruptionWaits{}
	for i, d := range ds {
		m[d.kind] = m[d.kind].merge(ws[i])
	}
	var parts []string
	for _, k := range kinds {
		if w, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s(%d)=%v", k, w.n, w))
		}
	}
	return strings.Join(parts, "; ")
}

// partitionLeaders returns each partition's leader as describe reports it ("" for
// one without a leader, or all when describe fails).
func partitionLeaders(ctx context.Context, c *qxd.Client, topic string, parts int) []string {
	out := make([]string, parts)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := c.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		return out
	}
	for _, pi := range d.Partitions {
		if int(pi.Partition) < parts {
			out[pi.Partition] = pi.Leader
		}
	}
	return out
}

// sortedReads returns reads ordered by time (members append under one lock, so
// they are already; this keeps measure right if that changes).
func sortedReads(reads []readRec) []readRec {
	out := append([]readRec(nil), reads...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}
