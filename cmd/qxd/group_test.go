package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
)

// keyedRecords returns n lines "k<i%50>:v<i>" for produce --key-delim :.
func keyedRecords(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "k%d:v%d\n", i%50, i)
	}
	return b.String()
}

// groupTopic creates a topic of 6 partitions holding the 600 records keyedRecords
// gives.
func groupTopic(c *qxdCLI, topic string) {
	c.t.Helper()
	c.must("", "topic", "create", topic, "--partitions", "6")
	c.must(keyedRecords(0, 600), "topic", "produce", topic, "--key-delim", ":", "--linger", "5ms")
}

// recordLine matches what consume prints with --format '%p %o %v\n'.
var recordLine = regexp.MustCompile(`^(\d+) (\d+) v(\d+)$`)

// values parses consume output in the format '%p %o %v\n' and returns how many times
// each value number was printed.
func values(t *testing.T, out string) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for line := range strings.Lines(out) {
		m := recordLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
		if m == nil {
			t.Fatalf("consume printed %q, want 'PARTITION OFFSET vN'", line)
		}
		v, _ := strconv.Atoi(m[3])
		seen[v]++
	}
	return seen
}

// checkOnce fails unless out holds each of the values from to to-1 once, and no
// other.
func checkOnce(t *testing.T, out string, from, to int) {
	t.Helper()
	seen := values(t, out)
	for v := from; v < to; v++ {
		if seen[v] != 1 {
			t.Errorf("value v%d printed %d times, want once", v, seen[v])
		}
	}
	if n := len(seen); n != to-from {
		t.Errorf("%d distinct values printed, want %d (v%d to v%d)", n, to-from, from, to-1)
	}
}

func describeGroup(t *testing.T, c *qxdCLI, group string) qxd.GroupDescription {
	t.Helper()
	var d qxd.GroupDescription
	out := c.must("", "group", "describe", group, "--json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("group describe --json: %v\n%s", err, out)
	}
	return d
}

// checkCaughtUp fails unless group committed the high watermark of each of topic's 6
// partitions.
func checkCaughtUp(t *testing.T, d qxd.GroupDescription, topic string) {
	t.Helper()
	if d.State != groups.Empty || len(d.Members) != 0 {
		t.Errorf("group %s is %s with %d members, want Empty with none", d.Group, d.State, len(d.Members))
	}
	if len(d.Partitions) != 6 {
		t.Fatalf("group %s has %d partitions, want 6: %+v", d.Group, len(d.Partitions), d.Partitions)
	}
	for _, p := range d.Partitions {
		if p.Topic != topic || p.Committed != p.HighWatermark || p.Lag != 0 || p.HighWatermark == 0 {
			t.Errorf("group %s partition %+v: want committed == high watermark > 0 and lag 0", d.Group, p)
		}
	}
}

// TestGroupConsumeExitAtEnd reads a topic with a group to its end: every record
// once, then the group is Empty with everything committed.
func TestGroupConsumeExitAtEnd(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	groupTopic(c, "orders")
	if got := c.must("", "group", "list"); got != "GROUP  STATE  MEMBERS\n" {
		t.Errorf("group list without groups: %q, want the header alone", got)
	}
	if got := c.must("", "group", "list", "--json"); got != "[]\n" {
		t.Errorf("group list --json without groups: %q, want []", got)
	}

	out := c.must("", "topic", "consume", "orders", "--group", "g", "--exit-at-end", "--format", `%p %o %v\n`,
		"--session-timeout", "2s", "--log-level", "info")
	checkOnce(t, out, 0, 600)
	if log := c.stderr.String(); !regexp.MustCompile(`msg="group partitions assigned" group=g member=\S+ generation=1 partitions=orders:0,1,2,3,4,5\n`).MatchString(log) {
		t.Errorf("no info log of the assignment:\n%s", log)
	}

	golden(t, "group_describe_empty", c.must("", "group", "describe", "g"))
	checkCaughtUp(t, describeGroup(t, c, "g"), "orders")
	golden(t, "group_list", c.must("", "group", "list"))
	var list []qxd.GroupSummary
	if err := json.Unmarshal([]byte(c.must("", "group", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != (qxd.GroupSummary{Group: "g", State: groups.Empty}) {
		t.Errorf("group list --json: %+v", list)
	}

	// The group is at the end: consuming again prints nothing, and returns.
	if out := c.must("", "topic", "consume", "orders", "--group", "g", "-e"); out != "" {
		t.Errorf("second consume of a caught-up group printed %q", out)
	}
	// New records: only they are printed.
	c.must(keyedRecords(600, 30), "topic", "produce", "orders", "--key-delim", ":")
	checkOnce(t, c.must("", "topic", "consume", "orders", "--group", "g", "-e", "-f", `%p %o %v\n`), 600, 630)
}

// TestGroupConsumeNum checks that --num commits only the records printed: the next
// member goes on from there, without a gap or a repeat.
func TestGroupConsumeNum(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	groupTopic(c, "nums")
	first := c.must("", "topic", "consume", "nums", "--group", "n", "--num", "10", "-f", `%p %o %v\n`)
	if n := strings.Count(first, "\n"); n != 10 {
		t.Fatalf("--num 10 printed %d records", n)
	}
	var committed int64
	for _, p := range describeGroup(t, c, "n").Partitions {
		committed += max(p.Committed, 0)
	}
	if committed != 10 {
		t.Errorf("after --num 10 the group committed %d records, want 10", committed)
	}
	rest := c.must("", "topic", "consume", "nums", "--group", "n", "-e", "-f", `%p %o %v\n`)
	checkOnce(t, first+rest, 0, 600)
	checkCaughtUp(t, describeGroup(t, c, "n"), "nums")
}

// member is a consume --group run in the background.
type member struct {
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startMember(t *testing.T, c *qxdCLI, args ...string) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	m := &member{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	all := append([]string{"qxd", "--server", c.node.ClientURL(), "--log-level", "warn", "topic", "consume"}, args...)
	go func() { m.done <- run(ctx, all, strings.NewReader(""), m.out, c.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-m.done
	})
	return m
}

// stop interrupts the member and fails the test unless it exits cleanly.
func (m *member) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup
		if err != nil {
			t.Errorf("interrupted consume --group returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("consume --group did not stop when interrupted")
	}
}

// waitFor polls cond every 50ms until it holds, failing the test after 20s with
// what the last try said.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s; last: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGroupTwoMembers runs two members of a group at once: the group is Stable with
// both, each partition assigned once, and together they print every record.
func TestGroupTwoMembers(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	groupTopic(c, "shared")
	args := []string{"shared", "--group", "g2", "--session-timeout", "2s", "-f", `%p %o %v\n`}
	m1, m2 := startMember(t, c, args...), startMember(t, c, args...)

	waitFor(t, "two members sharing the 6 partitions", func() (bool, string) {
		out, err := c.run("", "group", "describe", "g2", "--json")
		if err != nil {
			return false, err.Error() // not created yet
		}
		var d qxd.GroupDescription
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("group describe --json: %v\n%s", err, out)
		}
		state := fmt.Sprintf("%+v", d)
		if d.State != groups.Stable || len(d.Members) != 2 {
			return false, state
		}
		owner := map[int32]string{}
		for _, m := range d.Members {
			if len(m.Partitions) == 0 {
				return false, state
			}
			for _, tp := range m.Partitions {
				if _, dup := owner[tp.Partition]; dup || tp.Topic != "shared" {
					t.Fatalf("partition %v assigned twice: %s", tp, state)
				}
				owner[tp.Partition] = m.MemberID
			}
		}
		return len(owner) == 6, state
	})
	// The table shows both members and who owns what.
	desc := c.must("", "group", "describe", "g2")
	if !strings.Contains(desc, "state:       Stable\n") || !strings.Contains(desc, "members:     2\n") ||
		!regexp.MustCompile(`(?m)^qxd-\S+ +- +qxd-\S+ +shared:\d(,\d)*$`).MatchString(desc) {
		t.Errorf("group describe of a stable group:\n%s", desc)
	}

	waitFor(t, "every record printed", func() (bool, string) {
		seen := values(t, m1.out.String()+m2.out.String())
		return len(seen) == 600, fmt.Sprintf("%d distinct records", len(seen))
	})
	m1.stop(t)
	m2.stop(t)
	if m1.out.String() == "" || m2.out.String() == "" {
		t.Logf("one member printed nothing: the other read the topic before the rebalance")
	}
	checkCaughtUp(t, describeGroup(t, c, "g2"), "shared")
}

// TestGroupSeek moves a group's committed offsets and checks that the next member
// starts there.
func TestGroupSeek(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	groupTopic(c, "s")
	const consumeFmt = `%p %o %v\n`
	checkOnce(t, c.must("", "topic", "consume", "s", "-g", "g", "-e", "-f", consumeFmt), 0, 600)
	before := describeGroup(t, c, "g")
	checkCaughtUp(t, before, "s")

	// To the start: every record again.
	golden(t, "group_seek_start", c.must("", "group", "seek", "g", "--topic", "s", "--to", "start"))
	checkOnce(t, c.must("", "topic", "consume", "s", "-g", "g", "-e", "-f", consumeFmt), 0, 600)

	// One partition to offset 5: its records from there.
	if got, want := c.must("", "group", "seek", "g", "--topic", "s", "--to", "5", "--partition", "0"),
		seekTable([]string{"s", "0", fmt.Sprint(before.Partitions[0].HighWatermark), "5"}); got != want {
		t.Errorf("seek --to 5 --partition 0 printed %q, want %q", got, want)
	}
	out := c.must("", "topic", "consume", "s", "-g", "g", "-e", "-f", consumeFmt)
	if n, want := strings.Count(out, "\n"), int(before.Partitions[0].HighWatermark-5); n != want || !strings.HasPrefix(out, "0 5 ") {
		t.Errorf("after seek --to 5 --partition 0: %d records, want %d from 0 5:\n%s", n, want, out)
	}

	// To a time: the first records produced at or after it.
	time.Sleep(5 * time.Millisecond)
	mark := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	c.must(keyedRecords(600, 60), "topic", "produce", "s", "--key-delim", ":")
	got := c.must("", "group", "seek", "g", "--topic", "s", "--to", "@"+strconv.FormatInt(mark, 10))
	var rows [][]string
	for _, p := range before.Partitions {
		hw := fmt.Sprint(p.HighWatermark)
		rows = append(rows, []string{"s", fmt.Sprint(p.Partition), hw, hw})
	}
	if want := seekTable(rows...); got != want {
		t.Errorf("seek --to @%d printed\n%s\nwant the high watermarks before the new records:\n%s", mark, got, want)
	}
	checkOnce(t, c.must("", "topic", "consume", "s", "-g", "g", "-e", "-f", consumeFmt), 600, 660)

	// While a member is active, seek and delete wait for its session timeout, then
	// are refused.
	// A session timeout of 4 s: long enough that a loaded machine does not drop the
	// member between the checks, short enough for the waits below.
	m := startMember(t, c, "s", "-g", "g", "--session-timeout", "4s")
	waitFor(t, "the member to join", func() (bool, string) {
		d := describeGroup(t, c, "g")
		return d.State == groups.Stable && len(d.Members) == 1, fmt.Sprintf("%+v", d)
	})
	// The generation depends on how often the member joined: on a loaded machine
	// it can miss its session and join again. The golden file has it masked; it
	// must have grown since the consumes above.
	stable := describeGroup(t, c, "g")
	if stable.Generation <= before.Generation {
		t.Errorf("generation %d with the member, want above %d (before the seeks)", stable.Generation, before.Generation)
	}
	golden(t, "group_describe_stable", generationLine.ReplaceAllString(maskMembers(c.must("", "group", "describe", "g"), stable), "generation:  <GEN>"))
	for _, op := range [][]string{{"group", "seek", "g", "--topic", "s", "--to", "start"}, {"group", "delete", "g"}} {
		_, err := c.run("", op...)
		if err == nil || !strings.Contains(err.Error(), `group "g": it still has 1 member after `) ||
			!strings.Contains(err.Error(), "session timeout 4s") || !strings.Contains(err.Error(), "stop them first") {
			t.Errorf("%s with an active member: err = %v, want one saying to stop the member first", op[1], err)
		}
	}
	m.stop(t)

	// An offset out of range names the range.
	_, err := c.run("", "group", "seek", "g", "--topic", "s", "--to", "100000", "-p", "0")
	if err == nil || !strings.Contains(err.Error(), "offset 100000 is out of range: stored offsets are 0 to ") {
		t.Errorf("seek out of range: err = %v, want one naming the stored range", err)
	}

	if got := c.must("", "group", "delete", "g"); got != "deleted group g\n" {
		t.Errorf("group delete printed %q", got)
	}
	if _, err := c.run("", "group", "describe", "g"); err == nil || !strings.Contains(err.Error(), `group "g" does not exist`) {
		t.Errorf("describe after delete: err = %v, want not found", err)
	}
	if got := c.must("", "group", "list"); got != "GROUP  STATE  MEMBERS\n" {
		t.Errorf("group list after delete:\n%s", got)
	}
}

func TestGroupErrors(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "t", "-p", "2")
	c.must("a\nb\n", "topic", "produce", "t", "-p", "1")
	cases := []struct {
		name string
		args []string
		want []string // each must be in the error text
	}{
		{"delete unknown group", []string{"group", "delete", "nosuch"}, []string{`"nosuch"`, "does not exist", "qxd group list"}},
		{"describe unknown group", []string{"group", "describe", "nosuch"}, []string{`"nosuch"`, "does not exist"}},
		{"seek unknown group", []string{"group", "seek", "fresh", "--topic", "t", "--to", "end"}, nil}, // allowed: creates the commits
		{"empty group id on describe", []string{"group", "describe", ""}, []string{"group id is empty"}},
		{"empty group id on delete", []string{"group", "delete", ""}, []string{"group id is empty"}},
		{"empty group id on seek", []string{"group", "seek", "", "--topic", "t", "--to", "start"}, []string{"group id is empty"}},
		{"empty group id on consume", []string{"topic", "consume", "t", "--group", ""}, []string{"--group", "group id is empty"}},
		{"group with offset", []string{"topic", "consume", "t", "--group", "g", "--offset", "3"}, []string{"--offset", "--group", "group seek"}},
		{"group with partition", []string{"topic", "consume", "t", "-g", "g", "-p", "1"}, []string{"--partition", "--group"}},
		{"instance id without group", []string{"topic", "consume", "t", "--instance-id", "a"}, []string{"--instance-id", "--group"}},
		{"session timeout without group", []string{"topic", "consume", "t", "--session-timeout", "3s"}, []string{"--session-timeout", "--group"}},
		{"session timeout too short", []string{"topic", "consume", "t", "-g", "g", "--session-timeout", "10ms"}, []string{"session timeout 10ms", "100ms"}},
		{"group on unknown topic", []string{"topic", "consume", "nosuch", "-g", "g"}, []string{`"nosuch"`, "does not exist"}},
		{"reset none without commits", []string{"topic", "consume", "t", "-g", "g", "--reset", "none"}, []string{"no committed offset", "t:0,1", "group seek g"}},
		{"seek without topic", []string{"group", "seek", "g", "--to", "start"}, []string{"--topic"}},
		{"seek without to", []string{"group", "seek", "g", "--topic", "t"}, []string{"--to"}},
		{"seek bad to", []string{"group", "seek", "g", "--topic", "t", "--to", "soon"}, []string{`"soon"`, "start, end"}},
		{"seek unknown topic", []string{"group", "seek", "g", "--topic", "nosuch", "--to", "start"}, []string{`"nosuch"`}},
		{"seek unknown partition", []string{"group", "seek", "g", "--topic", "t", "--to", "start", "-p", "7"}, []string{"partition 7", "0 to 1"}},
		{"seek out of range", []string{"group", "seek", "g", "--topic", "t", "--to", "3", "-p", "1"}, []string{"offset 3 is out of range", "0 to 1"}},
		{"seek to and shift", []string{"group", "seek", "g", "--topic", "t", "--to", "start", "--shift-by", "1"}, []string{"--to", "--shift-by", "together"}},
		{"seek topic and all topics", []string{"group", "seek", "g", "--topic", "t", "--all-topics", "--to", "start"}, []string{"--topic", "--all-topics"}},
		{"seek partition of all topics", []string{"group", "seek", "g", "--all-topics", "-p", "0", "--to", "start"}, []string{"--partition", "one --topic"}},
		{"seek partition of two topics", []string{"group", "seek", "g", "--topic", "t,u", "-p", "0", "--to", "start"}, []string{"--partition", "one --topic"}},
		{"seek bad date-time", []string{"group", "seek", "g", "--topic", "t", "--to", "2026-02-30T10:00:00Z"}, []string{`"2026-02-30T10:00:00Z"`, "RFC 3339"}},
		{"seek duration without minus", []string{"group", "seek", "g", "--topic", "t", "--to", "1h"}, []string{`"1h"`, "-1h"}},
		{"seek all topics without commits", []string{"group", "seek", "nocommits", "--all-topics", "--to", "start"}, []string{`"nocommits"`, "no committed offsets"}},
		{"shift without commits", []string{"group", "seek", "nocommits", "--topic", "t", "--shift-by", "-1"}, []string{"t/0, t/1 have no committed offset", "--to"}},
		{"list with argument", []string{"group", "list", "g"}, []string{"group describe"}},
		{"describe without group", []string{"group", "describe"}, []string{"GROUP"}},
		{"unknown group command", []string{"group", "frobnicate"}, []string{`"frobnicate"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := c.run("", tc.args...)
			if tc.want == nil {
				if err != nil {
					t.Errorf("qxd %q: %v", tc.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("qxd %q: no error; stdout %q", tc.args, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("qxd %q: error %q does not contain %q", tc.args, err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("qxd %q: error is more than one line: %q", tc.args, err)
			}
		})
	}
}

// TestGroupEnv checks that only the command line joins a group or moves its
// offsets: QXD_GROUP, QXD_TOPIC, QXD_TO and QXD_PARTITION, which earlier versions
// read, change nothing, while consume's own QXD_CONSUME_* variables still apply.
func TestGroupEnv(t *testing.T) {
	c := startCLI(t)
	c.must("", "topic", "create", "env", "-p", "2")
	c.must("a\nb\nc\n", "topic", "produce", "env", "-p", "1")
	c.must("", "topic", "consume", "env", "--group", "g", "-e") // commits the end of partition 1
	t.Setenv("QXD_GROUP", "g")
	t.Setenv("QXD_CONSUME_EXIT_AT_END", "true")
	if got := c.must("", "topic", "consume", "env"); got != "a\nb\nc\n" {
		t.Errorf("consume with QXD_GROUP=g and no --group: %q, want every record (read alone, not as a member of g)", got)
	}
	t.Setenv("QXD_TOPIC", "env")
	t.Setenv("QXD_TO", "1")
	t.Setenv("QXD_PARTITION", "1")
	if _, err := c.run("", "group", "seek", "g"); err == nil || !strings.Contains(err.Error(), "needs --topic TOPIC") {
		t.Errorf("seek with QXD_TOPIC, QXD_TO and QXD_PARTITION and no flags: err = %v, want one asking for --topic", err)
	}
	if got := c.must("", "topic", "consume", "env", "--group", "g"); got != "" {
		t.Errorf("group g after the refused seek read %q, want nothing (its offsets unchanged)", got)
	}
	c.must("", "group", "seek", "g", "--topic", "env", "--to", "1", "--partition", "1")
	if got := c.must("", "topic", "consume", "env", "--group", "g"); got != "b\nc\n" {
		t.Errorf("consume after the seek: %q", got)
	}
}

// seekTable is the table group seek prints for rows of topic, partition, old and
// new offset.
func seekTable(rows ...[]string) string {
	var b strings.Builder
	tw := newTable(&b)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD-OFFSET\tNEW-OFFSET")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	return b.String()
}

// generationLine is the generation line of `group describe`.
var generationLine = regexp.MustCompile(`(?m)^generation:\s+\d+`)

// maskMembers replaces the member ids of d in s with member-1, member-2… (in d's
// order) and their client ids, which hold the host name, with <CLIENT>, then
// aligns the tables again, so that the text is the same on every machine.
func maskMembers(s string, d qxd.GroupDescription) string {
	for i, m := range d.Members {
		s = strings.ReplaceAll(s, m.MemberID, fmt.Sprintf("member-%d", i+1))
	}
	for _, m := range d.Members {
		if m.ClientID != "" {
			s = strings.ReplaceAll(s, m.ClientID, "<CLIENT>")
		}
	}
	var out strings.Builder
	tw := newTable(&out)
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, " \n")
		if line == "" {
			tw.Flush()
			out.WriteString("\n")
			continue
		}
		fmt.Fprintln(tw, strings.Join(columnGap.Split(line, -1), "\t"))
	}
	tw.Flush()
	return out.String()
}

// columnGap is the space between two columns of a table (or a label and its value).
var columnGap = regexp.MustCompile(`\s{2,}`)

func TestGroupHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"qxd", "group"}, "seek"},
		{[]string{"qxd", "--help"}, "group"},
		{[]string{"qxd", "group", "seek", "--help"}, "no active members"},
		{[]string{"qxd", "topic", "consume", "--help"}, "reached the high watermark it had when it was\n   assigned"},
	} {
		var out, errOut syncBuffer
		if err := run(t.Context(), tc.args, strings.NewReader(""), &out, &errOut); err != nil {
			t.Errorf("%q: %v", tc.args, err)
		}
		if !strings.Contains(out.String(), "USAGE:") || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%q printed no help or not %q:\n%s", tc.args, tc.want, out.String())
		}
	}
}
