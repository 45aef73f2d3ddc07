package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/partitioner"
)

// TestBridgeCLI: bridges made with the CLI; a plain nats.go publisher on
// orders.<key> feeds the topic, and 'topic consume' shows each key in the partition
// the SDK's partitioner gives it, in order.
func TestBridgeCLI(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "orders", "-p", "4")
	var out strings.Builder
	out.WriteString(c.must("", "bridge", "create", "orders-in", "--from", "orders.*", "--to-topic", "orders", "--key", "token:2"))
	out.WriteString(c.must("", "bridge", "create", "orders-out", "--from-topic", "orders", "--to", "legacy.orders.{key}"))
	out.WriteString(c.must("", "bridge", "create", "orders-tail", "--from-topic", "orders", "--to", "tail.p{partition}", "--mode", "fast"))
	golden(t, "bridge_create", out.String())
	golden(t, "bridge_list", c.must("", "bridge", "list"))

	nc, err := nats.Connect(c.node.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	legacy, err := nc.SubscribeSync("legacy.orders.*")
	if err != nil {
		t.Fatal(err)
	}
	const total = 40
	for i := range total {
		// Requests: each returns once its record is stored.
		if _, err := nc.Request(fmt.Sprintf("orders.k%d", i%8), []byte(fmt.Sprintf("v%d", i)), 5*time.Second); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	consumed := c.must("", "topic", "consume", "orders", "--exit-at-end", "--format", `%p %k %v\n`)
	checkKeyedLines(t, consumed, total, 4)
	for i := range total {
		m, err := legacy.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("legacy subscriber: message %d: %v", i, err)
		}
		if key := m.Header.Get("Qxd-Key"); m.Subject != "legacy.orders."+key {
			t.Errorf("legacy subscriber got %s with key %q", m.Subject, key)
		}
	}

	golden(t, "bridge_describe", mask(c.must("", "bridge", "describe", "orders-in"), c.node.Name()))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge", "create", "b", "--from", "qxd.t.>", "--to-topic", "orders"}, `pattern "qxd.t.>" overlaps qxd.>`},
		{[]string{"bridge", "create", "b", "--from", "pay.*", "--to-topic", "nope"}, `topic "nope" does not exist`},
		{[]string{"bridge", "create", "b", "--from", "pay.*", "--to-topic", "orders", "--key", "token:3"}, "token:3 is beyond the pattern"},
		{[]string{"bridge", "create", "b", "--from", "legacy.>", "--to-topic", "orders"}, "loop back"},
		{[]string{"bridge", "create", "b", "--from", "pay.*"}, "needs --from PATTERN and --to-topic TOPIC"},
		{[]string{"bridge", "create", "b", "--from-topic", "orders", "--to", "x.{key}", "--key", "token:1"}, "takes no --from, --key"},
		{[]string{"bridge", "create", "b", "--from", "x", "--to", "y"}, "not both"},
		{[]string{"bridge", "describe", "nope"}, `bridge "nope" does not exist`},
	} {
		if _, err := c.run("", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("qxd %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if got := c.must("", "bridge", "delete", "orders-out"); got != "deleted bridge orders-out\n" {
		t.Errorf("delete printed %q", got)
	}
	if got := c.must("", "bridge", "list"); strings.Contains(got, "orders-out") {
		t.Errorf("list after delete:\n%s", got)
	}
}

// TestBridgeStreamCLI: a capture bridge and a stream bridge made with the CLI; a
// nats.go JetStream publisher feeds the topic through the capture stream, and
// 'topic consume' shows each key in the partition the SDK's partitioner gives it, in
// order. Describe shows the source and the counters; bad flags are refused.
func TestBridgeStreamCLI(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "payments", "-p", "3")
	js := connectJetStream(t, c.node.ClientURL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LEDGER", Subjects: []string{"ledger.>"}}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	out.WriteString(c.must("", "bridge", "create", "pay-js", "--from", "pay.*", "--capture", "--to-topic", "payments", "--key", "token:2"))
	out.WriteString(c.must("", "bridge", "create", "ledger-in", "--from-stream", "LEDGER", "--filter", "ledger.eu.>", "--to-topic", "payments", "--start", "end"))
	golden(t, "bridge_stream_create", out.String())
	golden(t, "bridge_stream_list", c.must("", "bridge", "list"))

	const total = 30
	for i := range total {
		if _, err := js.Publish(ctx, fmt.Sprintf("pay.k%d", i%4), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatalf("js.Publish %d: %v", i, err)
		}
	}
	var consumed string
	deadline := time.Now().Add(10 * time.Second)
	for {
		consumed = c.must("", "topic", "consume", "payments", "--exit-at-end", "--format", `%p %k %v\n`)
		if strings.Count(consumed, "\n") >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkKeyedLines(t, consumed, total, 3)
	describe := c.must("", "bridge", "describe", "pay-js")
	for !strings.Contains(describe, fmt.Sprintf("stored:          %d\n", total)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the counter follows the record's storage
		describe = c.must("", "bridge", "describe", "pay-js")
	}
	golden(t, "bridge_stream_describe", mask(describe, c.node.Name()))
	golden(t, "bridge_stream_describe_filter", mask(c.must("", "bridge", "describe", "ledger-in"), c.node.Name()))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge", "create", "b", "--from-stream", "NOPE", "--to-topic", "payments"}, `stream "NOPE" does not exist`},
		{[]string{"bridge", "create", "b", "--from-stream", "LEDGER", "--filter", "pay.*", "--to-topic", "payments"}, "matches none of stream"},
		{[]string{"bridge", "create", "b", "--from", "ledger.us", "--capture", "--to-topic", "payments"}, "overlaps the subjects"},
		{[]string{"bridge", "create", "b", "--from", "x.*", "--from-stream", "LEDGER", "--to-topic", "payments"}, "not both"},
		{[]string{"bridge", "create", "b", "--from-stream", "LEDGER"}, "(or --from-stream STREAM instead of --from)"},
		{[]string{"bridge", "create", "b", "--from", "x.*", "--to-topic", "payments", "--start", "end"}, "--start applies to"},
	} {
		if _, err := c.run("", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("qxd %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	c.must("", "bridge", "delete", "pay-js")
	if _, err := js.Stream(ctx, "QXD_CAPTURE_pay-js"); err == nil {
		t.Errorf("capture stream still there after 'bridge delete'")
	}
}

// checkKeyedLines checks the output of consume --format '%p %k %v\n' for records
// "v<N>": total lines, each key on the partition the SDK's partitioner picks among
// partitions, and each key's values in increasing order.
func checkKeyedLines(t *testing.T, consumed string, total int, partitions int32) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(consumed, "\n"), "\n")
	if len(lines) != total {
		t.Fatalf("consume printed %d lines, want %d:\n%s", len(lines), total, consumed)
	}
	last := map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		p, _ := strconv.Atoi(f[0])
		v, _ := strconv.Atoi(strings.TrimPrefix(f[2], "v"))
		if want := partitioner.KafkaPartition([]byte(f[1]), partitions); int32(p) != want {
			t.Errorf("%s: key %s in partition %d, the SDK puts it in %d", l, f[1], p, want)
		}
		if prev, ok := last[f[1]]; ok && v < prev {
			t.Errorf("key %s: v%d after v%d", f[1], v, prev)
		}
		last[f[1]] = v
	}
}
