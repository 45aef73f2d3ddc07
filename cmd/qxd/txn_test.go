package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestTxnCommandsAndIsolation: with an aborted transaction, a committed one and
// an open one in a partition, consume --isolation read-committed prints only the
// committed records and stops at the last stable offset; read-uncommitted prints
// every record; topic describe shows the last stable offset; txn list and
// describe show the transactional id and its open transaction.
func TestTxnCommandsAndIsolation(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "etl", "-p", "1")
	cl := qxdtest.Connect(t, c.node)
	ctx := qxdtest.Context(t, time.Minute)
	p, err := cl.NewProducer(qxd.TransactionalID("etl-1"), qxd.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	txn := func(end func(context.Context) error, values ...string) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := p.Produce(ctx, &qxd.Record{Topic: "etl", Value: []byte(v)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if end != nil {
			if err := end(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn(p.AbortTransaction, "dropped")           // offsets 0, marker 1
	txn(p.CommitTransaction, "kept-1", "kept-2") // offsets 2-3, marker 4
	txn(nil, "open")                             // offset 5, still open

	if got := c.must("", "topic", "consume", "etl", "-e", "--isolation", "read-committed"); got != "kept-1\nkept-2\n" {
		t.Errorf("consume --isolation read-committed:\n%s\nwant kept-1 and kept-2", got)
	}
	if got := c.must("", "topic", "consume", "etl", "-e"); got != "dropped\nkept-1\nkept-2\nopen\n" {
		t.Errorf("consume (read-uncommitted):\n%s\nwant every record", got)
	}
	if _, err := c.run("", "topic", "consume", "etl", "-e", "--isolation", "committed"); err == nil ||
		!strings.Contains(err.Error(), `"committed"`) || !strings.Contains(err.Error(), "read-committed") {
		t.Errorf("consume --isolation committed: %v, want an error naming the value and the valid ones", err)
	}

	var desc struct {
		Partitions []struct {
			HighWatermark int64 `json:"high_watermark"`
			LastStable    int64 `json:"last_stable_offset"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(c.must("", "topic", "describe", "etl", "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	if len(desc.Partitions) != 1 || desc.Partitions[0].HighWatermark != 6 || desc.Partitions[0].LastStable != 5 {
		t.Errorf("describe: %+v, want high watermark 6, last stable offset 5", desc.Partitions)
	}

	// The group read up to the committed transaction's marker (offset 4): read
	// committed, nothing is readable before the open transaction at 5.
	c.must("", "group", "seek", "etl-readers", "--topic", "etl", "--to", "5")
	plainLag := c.must("", "group", "describe", "etl-readers")
	if !strings.Contains(plainLag, "HIGH-WATERMARK  LAG") || !regexp.MustCompile(`etl +0 +- +5 +0 +6 +1\n`).MatchString(plainLag) {
		t.Errorf("group describe:\n%s\nwant lag 1 to the high watermark 6", plainLag)
	}
	rcLag := c.must("", "group", "describe", "etl-readers", "--isolation", "read-committed")
	if !strings.Contains(rcLag, "LAST-STABLE") || !regexp.MustCompile(`etl +0 +- +5 +0 +6 +5 +0\n`).MatchString(rcLag) {
		t.Errorf("group describe --isolation read-committed:\n%s\nwant last stable offset 5 and lag 0", rcLag)
	}
	if _, err := c.run("", "group", "describe", "etl-readers", "--isolation", "committed"); err == nil ||
		!strings.Contains(err.Error(), `"committed"`) || !strings.Contains(err.Error(), "--isolation") {
		t.Errorf("group describe --isolation committed: %v, want an error naming the flag and value", err)
	}

	list := c.must("", "txn", "list")
	if !strings.Contains(list, "TRANSACTIONAL-ID") || !strings.Contains(list, "etl-1") || !strings.Contains(list, "Ongoing") {
		t.Errorf("txn list:\n%s\nwant etl-1, Ongoing", list)
	}
	d := c.must("", "txn", "describe", "etl-1")
	for _, want := range []string{"etl-1", "Ongoing", "etl/0"} {
		if !strings.Contains(d, want) {
			t.Errorf("txn describe etl-1:\n%s\nwant %q in it", d, want)
		}
	}
	if _, err := c.run("", "txn", "describe", "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("txn describe nope: %v, want an error naming it", err)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.must("", "topic", "consume", "etl", "-e", "--isolation", "read-committed"); got != "kept-1\nkept-2\nopen\n" {
		t.Errorf("consume --isolation read-committed after the last commit:\n%s\nwant kept-1, kept-2, open", got)
	}
}
