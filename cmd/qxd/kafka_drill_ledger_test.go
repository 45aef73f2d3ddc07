package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Kafka fault drills' bounds (TestKafkaFaultDrill).
const (
	// A partition whose leader fails waits for JetStream's election (4–9 s),
	// then a second for the client to find the new leader.
	kafkaDrillBound = 10 * time.Second
	// A partition a healthy node leads waits for nothing but the load.
	kafkaDrillHealthyBound = 3 * time.Second
)

// kafkaAck is one acknowledged record: where it was stored and how long its
// acknowledgement took.
type kafkaAck struct {
	partition int32
	offset    int64
	began     time.Time
	took      time.Duration
}

// kafkaDrillLedger keeps what a Kafka drill handed its producer, what the
// producer acknowledged and what the group member consumed, by record value
// ("<key>/<sequence>").
type kafkaDrillLedger struct {
	mu       sync.Mutex
	sent     map[string]time.Time // value → when it was handed to the producer
	acked    map[string]kafkaAck
	failed   map[string]bool // delivery failed
	consumed map[string]int
}

func newKafkaDrillLedger() *kafkaDrillLedger {
	return &kafkaDrillLedger{sent: map[string]time.Time{}, acked: map[string]kafkaAck{}, failed: map[string]bool{},
		consumed: map[string]int{}}
}

// send records that value was handed to the producer at at.
func (d *kafkaDrillLedger) send(value string, at time.Time) {
	d.mu.Lock()
	d.sent[value] = at
	d.mu.Unlock()
}

// ack records value's acknowledgement (it was handed to the producer at began,
// if send did not say so).
func (d *kafkaDrillLedger) ack(value string, partition int32, offset int64, began, at time.Time) {
	d.mu.Lock()
	d.acked[value] = kafkaAck{partition, offset, began, at.Sub(began)}
	if _, ok := d.sent[value]; !ok {
		d.sent[value] = began
	}
	d.mu.Unlock()
}

// firstAck is when the first record acknowledged was sent.
func (d *kafkaDrillLedger) firstAck() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first time.Time
	for _, a := range d.acked {
		if first.IsZero() || a.began.Before(first) {
			first = a.began
		}
	}
	return first
}

// fail records that value's delivery failed.
func (d *kafkaDrillLedger) fail(value string) {
	d.mu.Lock()
	d.failed[value] = true
	d.mu.Unlock()
}

func (d *kafkaDrillLedger) failedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.failed)
}

func (d *kafkaDrillLedger) consume(value string) {
	d.mu.Lock()
	d.consumed[value]++
	d.mu.Unlock()
}

func (d *kafkaDrillLedger) consumedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.consumed)
}

func (d *kafkaDrillLedger) ackedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.acked)
}

// missing is how many acknowledged records the member has not consumed.
func (d *kafkaDrillLedger) missing() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for v := range d.acked {
		if d.consumed[v] == 0 {
			n++
		}
	}
	return n
}

// readAgain is how many records the member consumed more than once (a group
// reads at least once: those it read again after a rebalance).
func (d *kafkaDrillLedger) readAgain() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.consumed {
		if c > 1 {
			n++
		}
	}
	return n
}

// kafkaDrillJudgement is what a drill's ledger says of the run: per partition the
// producer was given records for, the longest wait of a record in flight
// between the fault and the run's end, the longest of them on the partitions
// the faulty node led and on the others, and what fails the run.
type kafkaDrillJudgement struct {
	longest           map[int32]time.Duration
	began             map[int32]time.Time
	faulty, healthy   time.Duration
	faultyP, healthyP int32
	unacked, missing  int // records handed to the producer never acknowledged; acknowledged, never consumed
	problems          []string
}

// judge reads the ledger at the run's end (to). Every partition the producer was
// given records for is judged, whether or not the client reported on them: a
// record never acknowledged (nor failed) waited from when it was handed to the
// producer until to, and fails the run; so does one acknowledged and never
// consumed. A key's partition is the one its acknowledged records went to (a
// key none of whose records was acknowledged fails the run on its own). A wait
// counts when it overlapped from..to; led names the partitions the faulty node
// led, whose bound applies when bounded.
func (d *kafkaDrillLedger) judge(led map[int32]bool, bounded bool, from, to time.Time) kafkaDrillJudgement {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := kafkaDrillJudgement{longest: map[int32]time.Duration{}, began: map[int32]time.Time{}, faultyP: -1, healthyP: -1}
	wait := func(p int32, began time.Time, took time.Duration) {
		if began.Add(took).After(from) && began.Before(to) && took > v.longest[p] {
			v.longest[p], v.began[p] = took, began
		}
	}
	keyPartition := map[string]int32{}
	for value, a := range d.acked {
		key, _, _ := strings.Cut(value, "/")
		keyPartition[key] = a.partition
		wait(a.partition, a.began, a.took)
	}
	unacked := map[int32]int{}      // partition → records never acknowledged
	oldest := map[int32]time.Time{} // partition → the oldest of them
	orphans := map[string]int{}     // key with no record acknowledged → records handed over
	missing := map[int32]int{}      // partition → acknowledged, never consumed
	for value, at := range d.sent {
		if _, ok := d.acked[value]; ok || d.failed[value] {
			continue
		}
		v.unacked++
		key, _, _ := strings.Cut(value, "/")
		p, ok := keyPartition[key]
		if !ok {
			orphans[key]++
			continue
		}
		unacked[p]++
		if o, ok := oldest[p]; !ok || at.Before(o) {
			oldest[p] = at
		}
		wait(p, at, to.Sub(at))
	}
	for value, a := range d.acked {
		if d.consumed[value] == 0 {
			v.missing++
			missing[a.partition]++
		}
	}
	for p, w := range v.longest {
		switch {
		case led[p] && w > v.faulty:
			v.faulty, v.faultyP = w, p
		case !led[p] && w > v.healthy:
			v.healthy, v.healthyP = w, p
		}
	}
	stall := func(p int32) string {
		if unacked[p] > 0 && v.began[p].Equal(oldest[p]) {
			return " (never acknowledged: waited until the run's end)"
		}
		return ""
	}
	if bounded && v.faulty > kafkaDrillBound {
		v.problems = append(v.problems, fmt.Sprintf("a record to p%d, which the faulty node led, waited %v for its acknowledgement%s, want at most %v",
			v.faultyP, v.faulty.Round(time.Millisecond), stall(v.faultyP), kafkaDrillBound))
	}
	if v.healthy > kafkaDrillHealthyBound {
		v.problems = append(v.problems, fmt.Sprintf("a record to p%d, which a healthy node led, waited %v for its acknowledgement%s, want at most %v",
			v.healthyP, v.healthy.Round(time.Millisecond), stall(v.healthyP), kafkaDrillHealthyBound))
	}
	for _, p := range slices.Sorted(maps.Keys(unacked)) {
		v.problems = append(v.problems, fmt.Sprintf("p%d: %d records handed to the producer were never acknowledged (the oldest %v before the run's end)",
			p, unacked[p], to.Sub(oldest[p]).Round(time.Millisecond)))
	}
	for _, key := range slices.Sorted(maps.Keys(orphans)) {
		v.problems = append(v.problems, fmt.Sprintf("key %s: %d records handed to the producer, none acknowledged", key, orphans[key]))
	}
	if n := len(d.failed); n > 0 {
		v.problems = append(v.problems, fmt.Sprintf("%d records were not acknowledged (their delivery failed)", n))
	}
	for _, p := range slices.Sorted(maps.Keys(missing)) {
		v.problems = append(v.problems, fmt.Sprintf("p%d: %d acknowledged records never reached the group", p, missing[p]))
	}
	return v
}

// TestKafkaDrillJudge judges recorded drill runs: a partition whose records the
// client stopped reporting (one handed to the producer, never acknowledged) fails
// the run, with its stall measured to the run's end, though every record that
// was acknowledged came quickly and was consumed; the verdict once looked at the
// acknowledged records only, and a run passed with a partition stuck for over a
// minute.
func TestKafkaDrillJudge(t *testing.T) {
	t.Parallel()
	fault := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	end := fault.Add(90 * time.Second)
	led := map[int32]bool{0: true}
	// run records two keys' records, one every 100 ms from 10 s before the fault
	// to the end, each acknowledged 20 ms after it was sent and consumed, but
	// key-01's (on p1) from 5 s after the fault on: held in the client (stuck:
	// the key's producer waits for the first of them), failed, or acknowledged
	// and not consumed (unread).
	run := func(stuck, fail, unread bool) *kafkaDrillLedger {
		d := newKafkaDrillLedger()
		for k, p := range []int32{0, 1} {
			key := fmt.Sprintf("key-%02d", k)
			for i, at := 0, fault.Add(-10*time.Second); at.Before(end); i, at = i+1, at.Add(100*time.Millisecond) {
				value := fmt.Sprintf("%s/%09d", key, i)
				d.send(value, at)
				late := p == 1 && at.After(fault.Add(5*time.Second))
				if late && stuck {
					break
				}
				if late && fail {
					d.fail(value)
					break
				}
				d.ack(value, p, int64(i), at, at.Add(20*time.Millisecond))
				if !late || !unread {
					d.consume(value)
				}
			}
		}
		return d
	}
	for _, tc := range []struct {
		name                string
		stuck, fail, unread bool
		want                []string // in the problems, in this order
	}{
		{name: "all acknowledged and consumed"},
		{name: "a partition stuck in the client", stuck: true, want: []string{
			"a record to p1, which a healthy node led, waited 1m24.9s for its acknowledgement (never acknowledged: waited until the run's end)",
			"p1: 1 records handed to the producer were never acknowledged (the oldest 1m24.9s before the run's end)"}},
		{name: "a delivery failed", fail: true, want: []string{"1 records were not acknowledged (their delivery failed)"}},
		{name: "acknowledged, never consumed", unread: true, want: []string{"p1: 849 acknowledged records never reached the group"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := run(tc.stuck, tc.fail, tc.unread).judge(led, true, fault, end)
			if len(v.problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d: %q", v.problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(v.problems[i], w) {
					t.Errorf("problem %d: %q, want %q", i, v.problems[i], w)
				}
			}
		})
	}
}
