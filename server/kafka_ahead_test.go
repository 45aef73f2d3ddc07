package server

import (
	"context"
	"testing"
)

// A read ahead holds the batch it loaded past its limit, for the read after it:
// its bytes are reserved with the read's own, within kafkaAheadBytes, until the
// read ahead is taken or dropped.
func TestReadAheadReservesBatchPastLimit(t *testing.T) {
	var k kafkaReads
	t.Cleanup(k.close)
	a := &readAhead{topicID: "id", offset: 5, maxBytes: 4000, end: 100}
	k.startAhead("s", a, func(context.Context) ([][]byte, [][]byte, batchEnd, directMsg, error) {
		return [][]byte{make([]byte, 3500)}, nil, batchEnd{offset: 9, seq: 3}, directMsg{seq: 3, data: make([]byte, 1000)}, nil
	})
	<-a.done
	k.mu.Lock()
	reserved := k.reserved
	k.mu.Unlock()
	if reserved != 5000 {
		t.Errorf("a read ahead of 4000 bytes holding 1000 more past them reserves %d bytes, want 5000", reserved)
	}
	if k.takeAhead("s", "id", 5, 4000, false) != a {
		t.Fatal("the read ahead was not taken")
	}
	k.mu.Lock()
	reserved = k.reserved
	k.mu.Unlock()
	if reserved != 0 {
		t.Errorf("%d bytes reserved once the read ahead was taken, want 0", reserved)
	}
}
