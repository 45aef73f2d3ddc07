package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// produceAt produces one record per value to partition 0 of topic (a topic of one
// partition), each with the timestamp given.
func produceAt(t *testing.T, c *qxdCLI, topic string, recs map[string]time.Time) {
	t.Helper()
	cl := qxdtest.Connect(t, c.node)
	p, err := cl.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := qxdtest.Context(t, 30*time.Second)
	defer p.Close(ctx)
	var rs []*qxd.Record
	for v, ts := range recs {
		rs = append(rs, &qxd.Record{Topic: topic, Value: []byte(v), Timestamp: ts})
	}
	// In time order, so that offsets follow timestamps.
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			if rs[j].Timestamp.Before(rs[i].Timestamp) {
				rs[i], rs[j] = rs[j], rs[i]
			}
		}
	}
	if err := p.ProduceSync(ctx, rs...); err != nil {
		t.Fatal(err)
	}
}

// committedOf returns group's committed offset of topic/p, -1 when none.
func committedOf(t *testing.T, c *qxdCLI, group, topic string, p int32) int64 {
	t.Helper()
	for _, r := range describeGroup(t, c, group).Partitions {
		if r.Topic == topic && r.Partition == p {
			return r.Committed
		}
	}
	return -1
}

// TestGroupSeekPositions: seek by date-time, by time ago, by shifting, over all the
// group's topics, and as a dry run.
func TestGroupSeekPositions(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	now := time.Now()
	c.must("", "topic", "create", "p")
	c.must("", "topic", "create", "q")
	c.must("", "topic", "create", "r")
	// Offsets 0 and 1 three hours ago, 2 ninety minutes ago, 3 and 4 ten minutes ago.
	produceAt(t, c, "p", map[string]time.Time{
		"a": now.Add(-3 * time.Hour), "b": now.Add(-3*time.Hour + time.Second),
		"c": now.Add(-90 * time.Minute),
		"d": now.Add(-10 * time.Minute), "e": now.Add(-10*time.Minute + time.Second),
	})
	c.must("x\ny\n", "topic", "produce", "q")
	c.must("z\n", "topic", "produce", "r")
	c.must("", "topic", "consume", "p", "-g", "g", "-e")
	c.must("", "topic", "consume", "q", "-g", "g", "-e")

	seek := func(want string, args ...string) {
		t.Helper()
		got := c.must("", append([]string{"group", "seek", "g"}, args...)...)
		if got != want {
			t.Errorf("group seek %s printed\n%s\nwant\n%s", strings.Join(args, " "), got, want)
		}
	}

	// A dry run prints the change and makes none.
	seek(seekTable([]string{"p", "0", "5", "3"}), "--topic", "p", "--to", "-1h", "--dry-run")
	if !strings.Contains(c.stderr.String(), "dry run: group g not changed") {
		t.Errorf("dry run said nothing on stderr: %q", c.stderr.String())
	}
	if got := committedOf(t, c, "g", "p", 0); got != 5 {
		t.Errorf("after a dry run the committed offset is %d, want 5 still", got)
	}

	// A time ago: the first record at or after it.
	seek(seekTable([]string{"p", "0", "5", "3"}), "--topic", "p", "--to", "-1h")
	if got := c.must("", "topic", "consume", "p", "-g", "g", "-e"); got != "d\ne\n" {
		t.Errorf("consume after seek --to -1h printed %q, want d and e", got)
	}
	seek(seekTable([]string{"p", "0", "5", "0"}), "--topic", "p", "--to", "-1d")

	// A date-time, in UTC and with a zone offset.
	at := now.Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	seek(seekTable([]string{"p", "0", "0", "2"}), "--topic", "p", "--to", at)
	at = now.Add(-30 * time.Minute).In(time.FixedZone("", 3600)).Format(time.RFC3339)
	seek(seekTable([]string{"p", "0", "2", "3"}), "--topic", "p", "--to", at)
	// After the last record: the high watermark.
	seek(seekTable([]string{"p", "0", "3", "5"}), "--topic", "p", "--to", now.Add(time.Hour).UTC().Format(time.RFC3339Nano))

	// Shifts, clamped to the log.
	seek(seekTable([]string{"p", "0", "5", "3"}), "--topic", "p", "--shift-by", "-2")
	seek(seekTable([]string{"p", "0", "3", "4"}), "--topic", "p", "--shift-by", "1")
	seek(seekTable([]string{"p", "0", "4", "5"}), "--topic", "p", "--shift-by", "100")
	seek(seekTable([]string{"p", "0", "5", "0"}), "--topic", "p", "--shift-by", "-100")

	// Every topic the group has committed offsets on (not r).
	seek(seekTable([]string{"p", "0", "0", "5"}, []string{"q", "0", "2", "2"}), "--all-topics", "--to", "end")
	seek(seekTable([]string{"p", "0", "5", "4"}, []string{"q", "0", "2", "1"}), "--all-topics", "--shift-by", "-1")
	// Several topics by name, one without a committed offset.
	seek(seekTable([]string{"q", "0", "1", "0"}, []string{"r", "0", "-", "0"}), "--topic", "r,q", "--to", "start")

	// A shift needs a committed offset; nothing changes when one is missing.
	c.must("", "topic", "create", "s", "-p", "2")
	_, err := c.run("", "group", "seek", "g", "--topic", "p,s", "--shift-by", "1")
	if err == nil || !strings.Contains(err.Error(), "s/0, s/1 have no committed offset") {
		t.Errorf("shift of partitions without commits: err = %v, want one naming them", err)
	}
	if got := committedOf(t, c, "g", "p", 0); got != 4 {
		t.Errorf("a refused shift changed p/0 to %d, want 4 still", got)
	}
}

// TestGroupSeekWaitsForStoppedStaticMember: a static member that stopped stays in
// the group until its session timeout; seek waits for it, saying so, then seeks.
func TestGroupSeekWaitsForStoppedStaticMember(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "w")
	c.must("a\nb\n", "topic", "produce", "w")
	const session = 5 * time.Second
	m := startMember(t, c, "w", "-g", "sg", "--instance-id", "i1", "--session-timeout", session.String())
	waitFor(t, "the static member to join", func() (bool, string) {
		out, err := c.run("", "group", "describe", "sg", "--json")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, `"state": "Stable"`) && strings.Contains(out, `"instance_id": "i1"`), out
	})
	waitFor(t, "the member to commit", func() (bool, string) {
		got := committedOf(t, c, "sg", "w", 0)
		return got == 2, fmt.Sprint(got)
	})
	m.stop(t)
	if d := describeGroup(t, c, "sg"); len(d.Members) != 1 {
		t.Fatalf("right after it stopped the static member should still be in the group: %+v", d)
	}

	start := time.Now()
	if got, want := c.must("", "group", "seek", "sg", "--topic", "w", "--to", "start"), seekTable([]string{"w", "0", "2", "0"}); got != want {
		t.Errorf("seek printed\n%s\nwant\n%s", got, want)
	}
	took := time.Since(start)
	if took > session+leaveMargin+5*time.Second {
		t.Errorf("seek took %s, over the session timeout %s and the margin", took, session)
	}
	log := c.stderr.String()
	if !strings.Contains(log, "waiting up to") || !strings.Contains(log, "instance i1, session timeout 5s") {
		t.Errorf("seek waited %s without saying what for on stderr:\n%s", took, log)
	}
	d := describeGroup(t, c, "sg")
	if d.State != groups.Empty || committedOf(t, c, "sg", "w", 0) != 0 {
		t.Errorf("after the seek: %+v, want Empty with w/0 at 0", d)
	}
	t.Logf("seek waited %s for a static member with a %s session timeout", took, session)
}

func TestParseSeekTo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want qxd.Offset
		err  string
	}{
		{in: "start", want: qxd.AtStart()},
		{in: "end", want: qxd.AtEnd()},
		{in: "0", want: qxd.At(0)},
		{in: "42", want: qxd.At(42)},
		{in: "@1000", want: qxd.AtTime(time.UnixMilli(1000))},
		{in: "2026-12-05T10:00:00Z", want: qxd.AtTime(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))},
		{in: "2026-12-05T10:00:00.250+01:00", want: qxd.AtTime(time.Date(2026, 12, 5, 9, 0, 0, 250e6, time.UTC))},
		{in: "2026-12-05T10:00:00", want: qxd.AtTime(time.Date(2026, 12, 5, 10, 0, 0, 0, time.Local))},
		{in: "2026-12-05", want: qxd.AtTime(time.Date(2026, 12, 5, 0, 0, 0, 0, time.Local))},
		{in: "-1h", want: qxd.AtTime(now.Add(-time.Hour))},
		{in: "-90s", want: qxd.AtTime(now.Add(-90 * time.Second))},
		{in: "-2d", want: qxd.AtTime(now.Add(-48 * time.Hour))},
		{in: "1h", err: "a time ago takes a minus, e.g. -1h"},
		{in: "-1x", err: "is not a time ago"},
		{in: "-0s", err: "is not a time ago"},
		{in: "2026-13-05T10:00:00Z", err: "is not a date-time"},
		{in: "soon", err: `position "soon" is not valid`},
		{in: "", err: "is not valid"},
	} {
		got, err := parseSeekTo(tc.in, now)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseSeekTo(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseSeekTo(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
