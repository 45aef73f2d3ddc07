//go:build linux

package server

import (
	"maps"
	"slices"
	"testing"
)

// TestParseRetransmitting reads the connections with data retransmitted and
// unacknowledged out of /proc/net/tcp and tcp6 tables as Linux writes them.
func TestParseRetransmitting(t *testing.T) {
	t.Parallel()
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1A0E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1178 1 000000002e0f3b33 100 0 0 10 0
   1: 814D4D0A:C350 824D4D0A:1A0E 01 000001F4:00000000 01:00000030 00000002     0        0 2201 2 000000005ad6a6d5 80 4 30 10 -1
   2: 814D4D0A:1A0E 834D4D0A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2202 1 000000005ad6a6d6 20 4 30 10 -1
   3: 814D4D0A:1A0E 844D4D0A:9C41 01 00000000:00000000 00:00000000 00000001     0        0 2203 1 000000005ad6a6d7 20 4 30 10 -1
   4: 814D4D0A:C351 854D4D0A:1A0E 06 00000040:00000000 03:00000030 00000003     0        0 0 3 000000005ad6a6d8
`
	if got, want := slices.Sorted(maps.Keys(parseRetransmitting([]byte(tcp)))), []string{"10.77.77.130:6670"}; !slices.Equal(got, want) {
		t.Errorf("tcp: %v, want %v", got, want)
	}
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF0000814D4D0A:C350 0000000000000000FFFF0000824D4D0A:1A0E 01 00000010:00000000 01:00000014 00000001     0        0 3301 1 0000000011112222 40 4 30 10 -1
   1: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:B000 01 00000010:00000000 01:00000014 00000001     0        0 3302 1 0000000011113333 40 4 30 10 -1
`
	if got, want := slices.Sorted(maps.Keys(parseRetransmitting([]byte(tcp6)))), []string{"10.77.77.130:6670", "[::1]:45056"}; !slices.Equal(got, want) {
		t.Errorf("tcp6: %v, want %v", got, want)
	}
}
