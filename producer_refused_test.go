package qxd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// TestRefusedPastDeliveryTimeout: a batch whose last request the writer refused
// UNKNOWN_PRODUCER_ID, past its delivery timeout, fails as not stored only when
// every earlier request of it was refused too; after one that ended otherwise (the
// writer failed the append in flight, no answer came) that request may still be
// stored, and the batch may or may not be. The answers go through finish, as
// writers' answers do, and sortOut decides (TestProducerRefusedPastDeliveryTimeout
// drives the first case through a node).
func TestRefusedPastDeliveryTimeout(t *testing.T) {
	t.Parallel()
	unknown := semantics.Errorf(semantics.ErrUnknownProducerID, "partition t/0: producer 7 is unknown here")
	for _, tc := range []struct {
		name      string
		earlier   []error // answers to the batch's earlier requests
		notStored bool
	}{
		{name: "only request", notStored: true},
		{name: "after refusals", earlier: []error{
			semantics.Errorf(semantics.ErrOutOfOrderSequence, "partition t/0: producer 7 sent sequence 3, expected 1"), unknown,
		}, notStored: true},
		{name: "after an append the writer failed", earlier: []error{
			semantics.Errorf(semantics.ErrNotLeader, "partition t/0: this node stopped leading it while the append was in flight; retry"),
		}},
		{name: "after a timeout", earlier: []error{semantics.Errorf(semantics.ErrTimeout, "partition t/0: no answer within 1s")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &Producer{cfg: defaultProducerConfig()}
			p.cfg.deliveryTimeout = time.Second
			pp := &partProducer{p: p, name: "t/0", notify: make(chan struct{}, 1), pid: 7}
			b := &batch{part: pp, created: time.Now().Add(-2 * time.Second), seq: 3}
			for _, err := range append(tc.earlier, unknown) {
				pp.finish(b, -1, err)
			}
			pp.inflight = []*batch{b}
			done, failed, retry := pp.sortOut(nil)
			if len(done) != 0 || len(retry) != 0 || len(failed) != 1 {
				t.Fatalf("%d done, %d failed, %d to resend; want the batch failed", len(done), len(failed), len(retry))
			}
			err := failed[0].err
			if !errors.Is(err, ErrRecordTimeout) {
				t.Fatalf("%v, want a delivery timeout", err)
			}
			if got := errors.Is(err, semantics.ErrUnknownProducerID) && strings.Contains(err.Error(), "not stored") &&
				!strings.Contains(err.Error(), "may or may not"); got != tc.notStored {
				t.Fatalf("not stored: %v, want %v (%v)", got, tc.notStored, err)
			}
		})
	}
}
