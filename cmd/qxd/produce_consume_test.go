package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/partitioner"
)

func TestConsumeFormatGolden(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "events")
	c.must("user-1:signed up\nuser-2:logged in\nno key here\nuser-1:100% done\n\nuser-3:a\ttab\r\n",
		"topic", "produce", "events", "--key-delim", ":")
	golden(t, "consume_format", c.must("", "topic", "consume", "events", "--format", `%p %o %k %v\n`, "--exit-at-end"))
	// The same with kcat's escapes and the topic: a format without a line break
	// ends each record with one; a format with one is printed as written.
	got := c.must("", "topic", "consume", "events", "-f", `%t/%p@%o[%k]%%\t`, "-e", "-n", "2")
	if want := "events/0@0[user-1]%\t\nevents/0@1[user-2]%\t\n"; got != want {
		t.Errorf("format without a line break: got %q, want %q", got, want)
	}
	got = c.must("", "topic", "consume", "events", "-f", `%k\n%v|`, "-e", "-n", "2")
	if want := "user-1\nsigned up|user-2\nlogged in|"; got != want {
		t.Errorf("format with a line break: got %q, want %q", got, want)
	}
	// The default format prints values, one per line.
	if got := c.must("", "topic", "consume", "events", "-e", "-o", "2", "-n", "1"); got != "no key here\n" {
		t.Errorf("default format: got %q", got)
	}
}

// TestProduceConsumeKeyed produces 2000 keyed lines and reads them back: every
// record once, offsets dense from 0 per partition, each key on Kafka's partition for
// it, and the order of each key's records kept.
func TestProduceConsumeKeyed(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	const parts, records, keys = 4, 2000, 37
	c.must("", "topic", "create", "keyed", "--partitions", strconv.Itoa(parts))
	var in strings.Builder
	for i := range records {
		fmt.Fprintf(&in, "key-%d:value-%d\r\n", i%keys, i)
	}
	out := c.must(in.String(), "topic", "produce", "keyed", "--key-delim", ":", "--print-offsets", "--linger", "1ms")

	// --print-offsets: one "partition offset" line per input line, in input order.
	offsets := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(offsets) != records {
		t.Fatalf("--print-offsets printed %d lines, want %d", len(offsets), records)
	}
	type pos struct{ p, o int64 }
	at := map[pos]int{} // position → input line
	for i, line := range offsets {
		var p, o int64
		if _, err := fmt.Sscanf(line, "%d %d", &p, &o); err != nil {
			t.Fatalf("--print-offsets line %d %q: %v", i, line, err)
		}
		key := fmt.Sprintf("key-%d", i%keys)
		if want := int64(partitioner.KafkaPartition([]byte(key), parts)); p != want {
			t.Errorf("line %d (key %s) went to partition %d, want %d", i, key, p, want)
		}
		if prev, dup := at[pos{p, o}]; dup {
			t.Errorf("lines %d and %d both printed %d %d", prev, i, p, o)
		}
		at[pos{p, o}] = i
	}

	got := c.must("", "topic", "consume", "keyed", "--format", `%p %o %k %v\n`, "--exit-at-end")
	next := map[int64]int64{}     // partition → next offset expected
	lastOfKey := map[string]int{} // key → last value index seen
	seen := map[int]bool{}
	sc := bufio.NewScanner(strings.NewReader(got))
	for sc.Scan() {
		var p, o int64
		var key, value string
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %s %s", &p, &o, &key, &value); err != nil {
			t.Fatalf("consume line %q: %v", sc.Text(), err)
		}
		if o != next[p] {
			t.Fatalf("partition %d: offset %d after %d: offsets must be dense from 0", p, o, next[p]-1)
		}
		next[p]++
		i, err := strconv.Atoi(strings.TrimPrefix(value, "value-"))
		if err != nil || strings.HasSuffix(value, "\r") {
			t.Fatalf("value %q: want value-N with the \\r stripped", value)
		}
		if seen[i] {
			t.Errorf("value %d read twice", i)
		}
		seen[i] = true
		if key != fmt.Sprintf("key-%d", i%keys) {
			t.Errorf("value %d has key %s", i, key)
		}
		if want := int64(partitioner.KafkaPartition([]byte(key), parts)); p != want {
			t.Errorf("key %s on partition %d, want %d", key, p, want)
		}
		if last, ok := lastOfKey[key]; ok && i < last {
			t.Errorf("key %s: value %d read after value %d", key, i, last)
		}
		lastOfKey[key] = i
		if line, ok := at[pos{p, o}]; !ok || line != i {
			t.Errorf("%d %d holds line %d, --print-offsets said line %d", p, o, i, line)
		}
	}
	if len(seen) != records {
		t.Errorf("read %d distinct records, want %d", len(seen), records)
	}
}

func TestConsumeNum(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "nums", "-p", "2")
	c.must(lines(10), "topic", "produce", "nums")
	// --num without --exit-at-end stops after N records, even while following.
	got := c.must("", "topic", "consume", "nums", "--num", "3")
	if n := strings.Count(got, "\n"); n != 3 {
		t.Errorf("--num 3 printed %d records:\n%s", n, got)
	}
	// --num larger than the topic, with --exit-at-end: the end comes first.
	got = c.must("", "topic", "consume", "nums", "--num", "50", "-e")
	if n := strings.Count(got, "\n"); n != 10 {
		t.Errorf("--num 50 -e printed %d records, want 10", n)
	}
}

func TestConsumeOffsets(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "offs")
	c.must(lines(10), "topic", "produce", "offs") // one batch: offset 5 is inside it
	if got := c.must("", "topic", "consume", "offs", "--offset", "5", "-e", "-f", `%o=%v`); got != "5=line-5\n6=line-6\n7=line-7\n8=line-8\n9=line-9\n" {
		t.Errorf("--offset 5: %q", got)
	}
	if got := c.must("", "topic", "consume", "offs", "--offset", "end", "-e"); got != "" {
		t.Errorf("--offset end -e: %q, want nothing", got)
	}
	// Out of range with the default reset (earliest) starts at the log start.
	if got := c.must("", "topic", "consume", "offs", "--offset", "99", "-e", "-n", "1", "-f", `%o`); got != "0\n" {
		t.Errorf("--offset 99 with reset earliest: %q, want 0", got)
	}
	if got := c.must("", "topic", "consume", "offs", "--offset", "99", "--reset", "latest", "-e"); got != "" {
		t.Errorf("--offset 99 --reset latest -e: %q, want nothing", got)
	}

	// @<unix ms>: the first record at or after that time.
	time.Sleep(5 * time.Millisecond)
	mark := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	c.must("late-1\nlate-2\n", "topic", "produce", "offs")
	got := c.must("", "topic", "consume", "offs", "--offset", "@"+strconv.FormatInt(mark, 10), "-e", "-f", `%o %v %T\n`)
	var recs []string
	for line := range strings.Lines(got) {
		f := strings.Fields(line)
		if ts, _ := strconv.ParseInt(f[2], 10, 64); ts < mark {
			t.Errorf("record %q is before @%d", line, mark)
		}
		recs = append(recs, f[0]+" "+f[1])
	}
	if strings.Join(recs, ",") != "10 late-1,11 late-2" {
		t.Errorf("--offset @%d: %v, want offsets 10 and 11", mark, recs)
	}
	if got := c.must("", "topic", "consume", "offs", "--offset", "@"+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), "-e"); got != "" {
		t.Errorf("--offset in the future: %q, want nothing", got)
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "hdrs")
	c.must("k1|one\nk2|two\n", "topic", "produce", "hdrs", "-K", "|",
		"--header", "trace=abc", "-H", "pair=a=b", "--header", "list=x,y", "--header", "trace=def", "--header", "empty=")
	got := c.must("", "topic", "consume", "hdrs", "-e", "-f", `%k %h %v\n`)
	want := "k1 trace=abc,pair=a=b,list=x,y,trace=def,empty= one\nk2 trace=abc,pair=a=b,list=x,y,trace=def,empty= two\n"
	if got != want {
		t.Errorf("headers:\ngot  %q\nwant %q", got, want)
	}
}

func TestProduceOptions(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "opts", "-p", "3")
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		out := c.must("a\nb\n", "topic", "produce", "opts", "--partition", "2", "--compression", codec, "--key", codec, "--print-offsets")
		if !strings.HasPrefix(out, "2 ") || strings.Count(out, "\n") != 2 {
			t.Errorf("--compression %s --partition 2 printed %q", codec, out)
		}
	}
	if out := c.must("", "topic", "produce", "opts", "--print-offsets"); out != "" {
		t.Errorf("produce of empty input printed %q", out)
	}
	c.must("fire\nforget\n", "topic", "produce", "opts", "--acks", "none", "-p", "1", "--linger", "0s")
	got := c.must("", "topic", "consume", "opts", "-p", "2", "-e", "-f", `%k:%v`)
	if got != "none:a\nnone:b\ngzip:a\ngzip:b\nsnappy:a\nsnappy:b\nlz4:a\nlz4:b\nzstd:a\nzstd:b\n" {
		t.Errorf("partition 2: %q", got)
	}
	// acks=none is not confirmed: wait until both records are stored.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var d describeJSON
		if err := json.Unmarshal([]byte(c.must("", "topic", "describe", "opts", "--json")), &d); err != nil {
			t.Fatal(err)
		}
		if d.Partitions[1].HighWatermark == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acks=none records not stored: partition 1 is %+v", d.Partitions[1])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProduceTooLarge(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "small", "--max-record-bytes", "1KiB")
	in := "ok-1\n" + strings.Repeat("x", 2000) + "\nok-3\n"
	out, err := c.run(in, "topic", "produce", "small", "--print-offsets")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "max message bytes") {
		t.Fatalf("err = %v, want a line 2 too-large error", err)
	}
	if out != "0 0\n0 1\n" {
		t.Errorf("stdout %q: want the offsets of lines 1 and 3, around the failure", out)
	}
}

func TestConsumeJSON(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "js")
	c.must("k:<b>&\"quoted\"\nno delimiter\nbin:\xff\xfe\n", "topic", "produce", "js", "-K", ":", "-H", "h=1")
	got := c.must("", "topic", "consume", "js", "-e", "--format", "json")
	if !strings.Contains(got, `"value":"<b>&\"quoted\""`) {
		t.Errorf("json escapes HTML or drops quotes:\n%s", got)
	}
	var recs []map[string]any
	for line := range strings.Lines(got) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not one JSON object: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d JSON records, want 3:\n%s", len(recs), got)
	}
	r := recs[0]
	if r["topic"] != "js" || r["partition"] != 0.0 || r["offset"] != 0.0 || r["key"] != "k" || r["value"] != `<b>&"quoted"` {
		t.Errorf("record 0: %v", r)
	}
	if ts, _ := r["timestamp"].(float64); ts < float64(time.Now().Add(-time.Hour).UnixMilli()) {
		t.Errorf("record 0 timestamp %v", r["timestamp"])
	}
	if h, _ := r["headers"].([]any); len(h) != 1 || h[0].(map[string]any)["key"] != "h" || h[0].(map[string]any)["value"] != "1" {
		t.Errorf("record 0 headers: %v", r["headers"])
	}
	if k, ok := recs[1]["key"]; !ok || k != nil || recs[1]["value"] != "no delimiter" {
		t.Errorf("record 1 (no key): %v", recs[1])
	}
	if recs[2]["value"] != nil || recs[2]["value_b64"] != base64.StdEncoding.EncodeToString([]byte("\xff\xfe")) {
		t.Errorf("record 2 (not UTF-8): %v", recs[2])
	}

	// An empty value is "" unless --null-empty makes it null.
	c.must("k1:\nk2:\n", "topic", "produce", "js", "-K", ":")
	c.must("k3:\n", "topic", "produce", "js", "-K", ":", "--null-empty")
	got = c.must("", "topic", "consume", "js", "-o", "3", "-e", "--format", "json")
	if n := strings.Count(got, `"value":"",`); n != 2 || !strings.Contains(got, `"key":"k3","value":null,`) {
		t.Errorf("empty and null values:\n%s", got)
	}
}

// TestConsumeFollow checks that consume without --exit-at-end follows new records
// and exits cleanly when interrupted.
func TestConsumeFollow(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "follow", "-p", "2")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		all := []string{"qxd", "--server", c.node.ClientURL(), "topic", "consume", "follow", "-o", "end"}
		done <- run(ctx, all, strings.NewReader(""), out, c.stderr)
	}()
	// The consumer starts at the end: produce until it has seen a record.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; !strings.Contains(out.String(), "\n"); i++ {
		if time.Now().After(deadline) {
			t.Fatal("consume printed nothing")
		}
		c.must(fmt.Sprintf("tick-%d\n", i), "topic", "produce", "follow")
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interrupted consume returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume did not stop when interrupted")
	}
	if !strings.HasPrefix(out.String(), "tick-") {
		t.Errorf("output %q", out.String())
	}
}

// lines returns "line-0\n" to "line-(n-1)\n".
func lines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line-%d\n", i)
	}
	return b.String()
}

// TestProduceInterrupted interrupts a produce whose stdin stays open: the lines read
// so far are stored and the error says it was interrupted.
func TestProduceInterrupted(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "intr")
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		all := []string{"qxd", "--server", c.node.ClientURL(), "topic", "produce", "intr"}
		done <- run(ctx, all, pr, io.Discard, c.stderr)
	}()
	if _, err := io.WriteString(pw, "one\ntwo\nthree\n"); err != nil {
		t.Fatal(err)
	}
	// Wait until the three lines are stored, then interrupt while stdin is still open.
	deadline := time.Now().Add(20 * time.Second)
	for c.must("", "topic", "consume", "intr", "-e") != "one\ntwo\nthree\n" {
		if time.Now().After(deadline) {
			t.Fatal("the lines were not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupted after 3 lines") {
			t.Errorf("interrupted produce returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("produce did not stop when interrupted")
	}
}
