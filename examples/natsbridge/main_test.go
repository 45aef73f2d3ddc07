package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/qxd-io/qxd/partitioner"
)

func TestRun(t *testing.T) {
	t.Parallel()
	const n, returns = 20, 6
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	sum, err := run(ctx, &out, n, returns)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	for i, a := range sum.Acks {
		if want := partitioner.KafkaPartition([]byte(customer(i)), 3); a.Partition != want {
			t.Errorf("order-%d of %s stored in partition %d; the SDK would choose %d", i, customer(i), a.Partition, want)
		}
	}
	for name, seen := range map[string][]delivery{"shipping": sum.Shipping, "billing": sum.Billing} {
		if len(seen) != n+returns {
			t.Errorf("%s saw %d orders and returns, want %d", name, len(seen), n+returns)
		}
		last := map[string]int{}
		for _, d := range seen {
			off, _ := strconv.Atoi(d.Offset)
			if prev, ok := last[d.Customer]; ok && off <= prev {
				t.Errorf("%s: %s's orders out of order: offset %d after %d", name, d.Customer, off, prev)
			}
			last[d.Customer] = off
		}
	}
	for i, a := range sum.Returns {
		if a.Stream != "QXD_CAPTURE_returns-in" || a.Sequence != uint64(i+1) {
			t.Errorf("return-%d acknowledged by %s at %d", i, a.Stream, a.Sequence)
		}
	}
	if len(sum.Shipping) > 0 && sum.Shipping[0].Subject != "shipping.orders."+sum.Shipping[0].Customer {
		t.Errorf("shipping got %+v", sum.Shipping[0])
	}
	if len(sum.Billing) > 0 && sum.Billing[0].Subject != fmt.Sprintf("orders.created.%s", sum.Billing[0].Customer) {
		t.Errorf("billing's handler got subject %q, want the subject the order was published on", sum.Billing[0].Subject)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}
