package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// runErr runs args like run, and returns stderr of this run alone as well.
func (c *qxdCLI) runErr(stdin string, args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	all := append([]string{"qxd", "--server", c.node.ClientURL(), "--log-level", "warn"}, args...)
	err = run(ctx, all, strings.NewReader(stdin), &out, &errOut)
	c.stderr.Write(errOut.Bytes())
	return out.String(), errOut.String(), err
}

// TestConsumeFormatRejected checks that a --format that is neither a format name
// nor holds a verb is an error, not a literal printed for every record.
func TestConsumeFormatRejected(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "fmt")
	c.must("k:v\n", "topic", "produce", "fmt", "-K", ":")
	cases := []struct {
		name, format string
		want         []string
	}{
		{"yaml", "yaml", []string{`"yaml"`, "no verb", "%v", "json"}},
		{"plain", "plain", []string{`"plain"`, "no verb"}},
		{"empty", "", []string{`--format ""`, "empty", "json"}},
		{"only text", `value\n`, []string{"no verb"}},
		{"only a percent sign", "%%", []string{"no verb"}},
		{"lone backslash", `%v\`, []string{"backslash"}},
		{"short hex escape", `%v\x4`, []string{`\x`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := c.run("", "topic", "consume", "fmt", "-e", "--format", tc.format)
			if err == nil {
				t.Fatalf("--format %q: no error; stdout %q", tc.format, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("--format %q: error %q does not contain %q", tc.format, err, w)
				}
			}
		})
	}
	// A format name is matched without regard to case.
	var m map[string]any
	if err := json.Unmarshal([]byte(c.must("", "topic", "consume", "fmt", "-e", "--format", "JSON")), &m); err != nil || m["key"] != "k" {
		t.Errorf("--format JSON: %v %v", m, err)
	}
}

// TestConsumeOffsetReset checks that an --offset outside the stored range is
// reported on stderr when --reset moves it, and fails with --reset error.
func TestConsumeOffsetReset(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "rst", "-p", "2")
	c.must(lines(10), "topic", "produce", "rst", "-p", "0")
	c.must(lines(3), "topic", "produce", "rst", "-p", "1")

	out, stderr, err := c.runErr("", "topic", "consume", "rst", "-p", "0", "--offset", "1000", "-e", "-f", `%o`)
	if err != nil || out != "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n" {
		t.Fatalf("--offset 1000 with reset earliest: %q, %v", out, err)
	}
	for _, w := range []string{"rst/0", "offset 1000", "0 to 9", "starting at 0", "--reset earliest"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("--offset 1000: stderr %q does not contain %q", stderr, w)
		}
	}

	// Offset 5 is in range on partition 0, not on partition 1.
	out, stderr, err = c.runErr("", "topic", "consume", "rst", "--offset", "5", "--reset", "latest", "-e", "-f", `%p/%o`)
	if err != nil || out != "0/5\n0/6\n0/7\n0/8\n0/9\n" {
		t.Fatalf("--offset 5 --reset latest: %q, %v", out, err)
	}
	if strings.Contains(stderr, "rst/0") || !strings.Contains(stderr, "rst/1") || !strings.Contains(stderr, "starting at 3") {
		t.Errorf("--offset 5 --reset latest: stderr %q, want a line for rst/1 only, starting at 3", stderr)
	}
	// Nothing said when nothing was reset.
	if _, stderr, _ := c.runErr("", "topic", "consume", "rst", "--offset", "2", "-e"); stderr != "" {
		t.Errorf("--offset 2: stderr %q, want nothing", stderr)
	}

	for _, policy := range []string{"error", "none"} {
		out, err := c.run("", "topic", "consume", "rst", "-p", "0", "--offset", "1000", "--reset", policy, "-e")
		if err == nil {
			t.Fatalf("--reset %s: no error; stdout %q", policy, out)
		}
		for _, w := range []string{`"rst"`, "rst/0", "offset 1000", "0 to 9", "high watermark 10"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--reset %s: error %q does not contain %q", policy, err, w)
			}
		}
	}
}

// TestConsumeRelativeOffsets checks --offset -N (N before the end) and +N (N after
// the start), per partition, as kcat's -o -N and rpk's +N.
func TestConsumeRelativeOffsets(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "rel", "-p", "2")
	c.must(lines(10), "topic", "produce", "rel", "-p", "0")
	c.must(lines(3), "topic", "produce", "rel", "-p", "1")
	cases := []struct{ offset, want string }{
		{"-4", "0/6 0/7 0/8 0/9 1/0 1/1 1/2"}, // partition 1 has fewer: all of it
		{"-0", ""},
		{"+2", "0/2 0/3 0/4 0/5 0/6 0/7 0/8 0/9 1/2"},
		{"+8", "0/8 0/9"}, // partition 1 has fewer: none of it
		{"+0", "0/0 0/1 0/2 0/3 0/4 0/5 0/6 0/7 0/8 0/9 1/0 1/1 1/2"},
	}
	for _, tc := range cases {
		out, stderr, err := c.runErr("", "topic", "consume", "rel", "--offset", tc.offset, "-e", "-f", `%p/%o `)
		if err != nil {
			t.Errorf("--offset %s: %v", tc.offset, err)
			continue
		}
		if got := sortedFields(out); got != tc.want {
			t.Errorf("--offset %s: got %q, want %q", tc.offset, got, tc.want)
		}
		if stderr != "" {
			t.Errorf("--offset %s: stderr %q, want nothing", tc.offset, stderr)
		}
	}
	for _, bad := range []string{"-x", "+", "+-1", "--1"} {
		if _, err := c.run("", "topic", "consume", "rel", "--offset", bad, "-e"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("--offset %s: error %v, want one naming it", bad, err)
		}
	}
}

// sortedFields returns the "P/O" fields of s sorted by partition, then offset, and
// joined by one space: the order across partitions is not fixed.
func sortedFields(s string) string {
	f := strings.Fields(s)
	key := func(x string) (p, o int) {
		fmt.Sscanf(x, "%d/%d", &p, &o)
		return p, o
	}
	slices.SortFunc(f, func(x, y string) int {
		px, ox := key(x)
		py, oy := key(y)
		return cmp.Or(cmp.Compare(px, py), cmp.Compare(ox, oy))
	})
	return strings.Join(f, " ")
}

// TestConsumeSizeVerbs checks kcat's %S (value size), %K (key size), both -1 for
// null, and %R (value size as a 32-bit big-endian integer).
func TestConsumeSizeVerbs(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "sizes")
	c.must("key:hello\nnokey\nk2:\n", "topic", "produce", "sizes", "-K", ":")
	c.must("k3:\n", "topic", "produce", "sizes", "-K", ":", "--null-empty")
	got := c.must("", "topic", "consume", "sizes", "-e", "-f", `%K %S %k|%v\n`)
	if want := "3 5 key|hello\n-1 5 |nokey\n2 0 k2|\n2 -1 k3|\n"; got != want {
		t.Errorf("%%K %%S: got %q, want %q", got, want)
	}
	// %R%v frames each value by its length, for a reader of binary values.
	raw := []byte(c.must("", "topic", "consume", "sizes", "-e", "-f", `%R%v`))
	want := [][]byte{[]byte("hello"), []byte("nokey"), {}, nil}
	for i, w := range want {
		if len(raw) < 4 {
			t.Fatalf("record %d: %d bytes left, want a 4-byte length", i, len(raw))
		}
		n := int32(binary.BigEndian.Uint32(raw))
		raw = raw[4:]
		if w == nil {
			if n != -1 {
				t.Errorf("record %d: %%R %d, want -1 for a null value", i, n)
			}
			continue
		}
		if int(n) != len(w) || !bytes.Equal(raw[:n], w) {
			t.Errorf("record %d: %%R %d then %q, want %d then %q", i, n, raw[:min(int(n), len(raw))], len(w), w)
		}
		raw = raw[n:]
	}
	if len(raw) != 0 {
		t.Errorf("%d bytes after the last record: %q", len(raw), raw)
	}
}

// TestProduceBadRecordContinues checks that a record that cannot be produced is
// reported with its line number, the records after it are still produced, and the
// command fails after saying how many were stored.
func TestProduceBadRecordContinues(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "small", "--max-record-bytes", "1KiB")
	in := "ok-1\n" + strings.Repeat("x", 2000) + "\nok-3\n" + strings.Repeat("y", 3000) + "\nok-5\n"
	out, stderr, err := c.runErr(in, "topic", "produce", "small", "--print-offsets")
	if err == nil {
		t.Fatal("produce with over-size lines: no error")
	}
	for _, w := range []string{`"small"`, "2 of 5 records", "3 stored", "line 2"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	for _, w := range []string{"line 2", "line 4", "max message bytes"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not contain %q", stderr, w)
		}
	}
	if out != "0 0\n0 1\n0 2\n" {
		t.Errorf("--print-offsets: %q, want the offsets of the three stored records", out)
	}
	if got := c.must("", "topic", "consume", "small", "-e"); got != "ok-1\nok-3\nok-5\n" {
		t.Errorf("stored: %q, want the three short lines", got)
	}
}

// TestProduceFileAndDelim reads records from --file, split at --delim.
func TestProduceFileAndDelim(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "docs")
	path := filepath.Join(t.TempDir(), "docs.txt")
	doc := "a: 1\nb: 2\n---\nname: two\n\n---\nk|three\nlines\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("ignored stdin\n", "topic", "produce", "docs", "--file", path, "--delim", `\n---\n`, "-K", "|")
	got := c.must("", "topic", "consume", "docs", "-e", "-f", `[%k][%v]`)
	if want := "[][a: 1\nb: 2]\n[][name: two\n]\n[k][three\nlines\n]\n"; got != want {
		t.Errorf("--delim '\\n---\\n':\ngot  %q\nwant %q", got, want)
	}

	// NUL-separated values with line breaks inside, from stdin; a delimiter at the
	// end of input ends the last record.
	c.must("one\nline\x00two\r\n\x00\x00three\x00", "topic", "produce", "docs", "-D", `\0`)
	got = c.must("", "topic", "consume", "docs", "-o", "3", "-e", "-f", `<%v>`)
	if want := "<one\nline>\n<two\r\n>\n<>\n<three>\n"; got != want {
		t.Errorf("--delim '\\0': got %q, want %q", got, want)
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--file", filepath.Join(t.TempDir(), "nosuch")}, []string{"--file", "nosuch"}},
		{[]string{"--delim", ""}, []string{"--delim", "empty"}},
		{[]string{"--delim", `\q`}, []string{`\q`}},
		{[]string{"--value-format", "hex"}, []string{`"hex"`, "base64"}},
	} {
		if _, err := c.run("x\n", append([]string{"topic", "produce", "docs"}, tc.args...)...); err == nil {
			t.Errorf("produce %q: no error", tc.args)
		} else {
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("produce %q: error %q does not contain %q", tc.args, err, w)
				}
			}
		}
	}
}

// TestProduceConsumeBase64 round-trips random binary keys and values through
// produce --value-format base64 and consume --value-format base64 (and the same for
// keys), and through consume's raw %R%v framing.
func TestProduceConsumeBase64(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "bin")
	rng := rand.New(rand.NewPCG(1, 2))
	var keys, values [][]byte
	var in strings.Builder
	for i := range 200 {
		k := make([]byte, 1+rng.IntN(20))
		v := make([]byte, rng.IntN(300))
		for j := range k {
			k[j] = byte(rng.IntN(256))
		}
		for j := range v {
			v[j] = byte(rng.IntN(256))
		}
		if i%10 == 0 {
			v = append(v, '\n', 0, '\r', 0xff) // the bytes a text mode would mangle
		}
		keys, values = append(keys, k), append(values, v)
		fmt.Fprintf(&in, "%s %s\n", base64.StdEncoding.EncodeToString(k), base64.StdEncoding.EncodeToString(v))
	}
	c.must(in.String(), "topic", "produce", "bin", "-K", " ", "--key-format", "base64", "--value-format", "base64")

	// Printed as base64, one record a line.
	got := c.must("", "topic", "consume", "bin", "-e", "-f", `%k %v\n`, "--key-format", "base64", "--value-format", "base64")
	if got != in.String() {
		t.Errorf("base64 round trip differs:\ngot  %.200q\nwant %.200q", got, in.String())
	}
	// Raw, framed by %R (value) and %K.
	raw := []byte(c.must("", "topic", "consume", "bin", "-e", "-f", `%R%v`))
	for i, v := range values {
		n := int(binary.BigEndian.Uint32(raw))
		if n != len(v) || !bytes.Equal(raw[4:4+n], v) {
			t.Fatalf("record %d: raw value differs", i)
		}
		raw = raw[4+n:]
	}
	// JSON carries the bytes in key_b64 and value_b64 with base64 set.
	line := c.must("", "topic", "consume", "bin", "-e", "-n", "1", "-f", "json", "--value-format", "base64", "--key-format", "base64")
	var j jsonRecord
	if err := json.Unmarshal([]byte(line), &j); err != nil || j.ValueB64 == nil || j.KeyB64 == nil ||
		*j.ValueB64 != base64.StdEncoding.EncodeToString(values[0]) || *j.KeyB64 != base64.StdEncoding.EncodeToString(keys[0]) {
		t.Errorf("json with base64: %s (%v)", line, err)
	}

	// A value that is not base64 fails with its line; the others are produced.
	_, stderr, err := c.runErr("aGk=\nnot base64!\nYnll\n", "topic", "produce", "bin", "--value-format", "base64")
	if err == nil || !strings.Contains(err.Error(), "1 of 3") || !strings.Contains(stderr, "line 2") || !strings.Contains(stderr, "base64") {
		t.Errorf("bad base64: err %v, stderr %q", err, stderr)
	}
	if got := c.must("", "topic", "consume", "bin", "-o", "-2", "-e"); got != "hi\nbye\n" {
		t.Errorf("after a bad base64 line: %q, want hi and bye", got)
	}
	// --key is decoded too with --key-format base64.
	if _, err := c.run("x\n", "topic", "produce", "bin", "--key", "%%%", "--key-format", "base64"); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("--key not base64: %v", err)
	}
}

// TestSplitAt splits input at a delimiter that arrives a byte at a time, and a
// record larger than the scanner's first buffer.
func TestSplitAt(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("ab\n-", 50_000) // 200 KB, with near-misses of the delimiter
	cases := []struct {
		name, in, delim string
		want            []string
	}{
		{"multi-byte", "a\n---\nb\n---\n\n---\nc", "\n---\n", []string{"a", "b", "", "c"}},
		{"ends with delim", "a\x00b\x00", "\x00", []string{"a", "b"}},
		{"empty records", "\x00\x00x", "\x00", []string{"", "", "x"}},
		{"overlapping", "aaab", "aab", []string{"a"}},
		{"no delim", "just one", "||", []string{"just one"}},
		{"empty input", "", "||", nil},
		{"large", big + "||" + big, "||", []string{big, big}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				sc := bufio.NewScanner(r)
				sc.Buffer(make([]byte, 0, 16), maxLineBytes)
				sc.Split(splitAt([]byte(tc.delim)))
				var got []string
				for sc.Scan() {
					got = append(got, sc.Text())
				}
				if err := sc.Err(); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("split %.40q at %q: got %d records %.80q, want %d", tc.in, tc.delim, len(got), got, len(tc.want))
				}
			}
		})
	}
}
