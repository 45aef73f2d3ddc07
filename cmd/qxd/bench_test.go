package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// benchJSON runs qxd with args (a bench with --json) and returns the JSON object it
// prints, failing the test if it does not print one and noting each of fields
// missing from it.
func benchJSON(t *testing.T, c *qxdCLI, args []string, fields ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.runCtx(ctx, "", args...)
	if err != nil {
		t.Fatalf("qxd %s: %v", strings.Join(args, " "), err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	for _, f := range fields {
		if _, ok := got[f]; !ok {
			t.Errorf("field %q missing: %s", f, out)
		}
	}
	return got
}

// TestBenchJSON runs every mode against a node with --compare-raw --json on a few
// records: the object has the fields a script reads, the counts match, and ratio is
// msgs_per_sec over raw_msgs_per_sec.
func TestBenchJSON(t *testing.T) {
	c := startCLI(t)
	for _, mode := range []string{"produce", "consume", "group", "e2e"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // each run makes topics of its own on the shared node
			args := []string{"bench", mode, "--records", "1500", "--partitions", "2", "--compare-raw", "--json", "--quiet"}
			if mode == "e2e" {
				args = append(args, "--rate", "10000", "--linger", "0")
			}
			got := benchJSON(t, c, args, "mode", "records", "size", "partitions", "msgs_per_sec", "mb_per_sec",
				"p50_ms", "p99_ms", "p999_ms", "raw_msgs_per_sec", "ratio", "series")
			if got["sync"] != "always" {
				t.Errorf("sync %v, want always, the node's mode", got["sync"])
			}
			if got["mode"] != mode || got["records"] != 1500.0 || got["size"] != 100.0 || got["partitions"] != 2.0 {
				t.Errorf("mode %v records %v size %v partitions %v", got["mode"], got["records"], got["size"], got["partitions"])
			}
			q, raw, ratio := got["msgs_per_sec"].(float64), got["raw_msgs_per_sec"].(float64), got["ratio"].(float64)
			// The ratio is printed to three decimals.
			if q <= 0 || raw <= 0 || math.Abs(ratio-q/raw) > 0.01*ratio+0.001 {
				t.Errorf("msgs_per_sec %v raw %v ratio %v", q, raw, ratio)
			}
			if mode == "produce" || mode == "e2e" {
				if p50, p99 := got["p50_ms"].(float64), got["p99_ms"].(float64); p50 <= 0 || p99 < p50 {
					t.Errorf("p50 %v p99 %v", p50, p99)
				}
			}
		})
	}
}

var numbers = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// TestBenchEmbedded runs without --server: the command starts its own node, prints
// the summary and progress, and writes a well-formed SVG chart.
func TestBenchEmbedded(t *testing.T) {
	t.Setenv("QXD_SERVER", "")
	os.Unsetenv("QXD_SERVER")
	chart := filepath.Join(t.TempDir(), "bench.svg")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"qxd", "--log-level", "warn", "bench", "produce", "--records", "2000", "--size", "1KiB",
		"--partitions", "2", "--compare-raw", "--chart", chart, "--linger", "1ms"}
	if err := run(ctx, args, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, errOut.String())
	}
	masked := strings.ReplaceAll(out.String(), chart, "CHART")
	masked = numbers.ReplaceAllString(masked, "N")
	masked = regexp.MustCompile(` +`).ReplaceAllString(masked, " ")
	golden(t, "bench_produce", masked)
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("chart is not well-formed XML: %v", err)
			}
			break
		}
	}
	for _, want := range []string{"<svg", "<polyline", "latency (ms, log scale)", "qxd: "} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

// TestBenchEmbeddedSync: --sync sets the embedded node's mode, and the summary says
// which mode both sides ran in.
func TestBenchEmbeddedSync(t *testing.T) {
	t.Setenv("QXD_SERVER", "")
	os.Unsetenv("QXD_SERVER")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"qxd", "--log-level", "error", "bench", "produce", "--records", "500", "--partitions", "1",
		"--compare-raw", "--warmup=false", "--quiet", "--json", "--sync", "1s"}
	if err := run(ctx, args, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	if got["sync"] != "1s" {
		t.Errorf("sync %v, want 1s", got["sync"])
	}
}

// TestBenchFlagErrors: bad flags are refused before anything runs, naming the flag.
func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "produce", "--records", "0"}, "--records 0 is not valid"},
		{[]string{"bench", "produce", "--records", "5", "--duration", "1s"}, "--records and --duration both set"},
		{[]string{"bench", "produce", "--size", "big"}, "size"},
		{[]string{"bench", "e2e", "--size", "4"}, "--size 4 is out of range"},
		{[]string{"bench", "produce", "--replicas", "2"}, "--replicas 2 is not valid"},
		{[]string{"bench", "produce", "--acks", "some"}, `--acks "some" is not valid`},
		{[]string{"bench", "produce", "--compression", "zip"}, `--compression "zip" is not valid`},
		{[]string{"bench", "produce", "--batch-size", "10"}, "--batch-size 10 is out of range"},
		{[]string{"bench", "produce", "--linger", "-1s"}, "--linger -1s is negative"},
		{[]string{"bench", "produce", "extra"}, "takes no arguments"},
		{[]string{"bench", "produce", "--sync", "0"}, `--sync "0" is neither always nor a positive interval`},
		{[]string{"bench", "produce", "--sync", "1s"}, "--sync applies to embedded nodes only"},
		{[]string{"bench", "consume", "--kafka-fetch-max-bytes", "1MiB"}, "--kafka-fetch-max-bytes applies to embedded nodes only"},
		{[]string{"bench", "consume", "--kafka-fetch-max-bytes", "0"}, `--kafka-fetch-max-bytes "0" is out of range`},
		{[]string{"bench", "consume", "--kafka-fetch-max-bytes", "lots"}, "--kafka-fetch-max-bytes"},
		{[]string{"bench", "nosuch"}, `unknown command "nosuch"`},
		{[]string{"bench", "produce", "--txn-records", "10"}, "--txn-records applies to transactional runs: add --transactional"},
		{[]string{"bench", "produce", "--transactional", "--txn-interval", "0s"}, "--txn-interval 0s is not valid"},
		{[]string{"bench", "produce", "--transactional", "--txn-records", "-1"}, "--txn-records -1 is not valid"},
		{[]string{"bench", "produce", "--transactional", "--acks", "leader"}, "--acks leader with --transactional"},
		{[]string{"bench", "consume", "--transactional"}, "flag provided but not defined: -transactional"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"qxd", "--server", "nats://127.0.0.1:1"}, tc.args...),
				strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestBenchTransactionalJSON: produce --transactional --json runs the plain and
// the transactional producers on the node and adds the transactional figures to
// the object: rate, ratio to plain, overhead and the commits' latency.
func TestBenchTransactionalJSON(t *testing.T) {
	c := startCLI(t)
	args := []string{"bench", "produce", "--records", "2000", "--partitions", "2", "--transactional",
		"--txn-records", "400", "--txn-interval", "1s", "--json", "--quiet", "--warmup=false"}
	got := benchJSON(t, c, args, "msgs_per_sec", "txn_msgs_per_sec", "txn_mb_per_sec", "txn_p50_ms", "txn_p99_ms",
		"txn_ratio", "txn_overhead_pct", "txn_commits", "txn_commit_p50_ms", "txn_commit_p99_ms", "txn_commit_max_ms")
	if got["txn_records"] != 400.0 || got["txn_interval_ms"] != 1000.0 {
		t.Errorf("txn_records %v txn_interval_ms %v, want 400 and 1000", got["txn_records"], got["txn_interval_ms"])
	}
	if n, _ := got["txn_commits"].(float64); n < 5 {
		t.Errorf("txn_commits %v: 2000 records every 400 at most make 5 commits", got["txn_commits"])
	}
	q, tx, ratio := got["msgs_per_sec"].(float64), got["txn_msgs_per_sec"].(float64), got["txn_ratio"].(float64)
	if q <= 0 || tx <= 0 || math.Abs(ratio-tx/q) > 0.01*ratio+0.001 {
		t.Errorf("msgs_per_sec %v txn_msgs_per_sec %v txn_ratio %v", q, tx, ratio)
	}
}
