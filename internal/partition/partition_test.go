package partition_test

import (
	"testing"

	"github.com/qxd-io/qxd/internal/partition"
)

func TestStreamStateMissing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		st      partition.StreamState
		compact bool
		want    uint64
	}{
		{"empty", partition.StreamState{}, false, 0},
		{"aged out to empty", partition.StreamState{FirstSeq: 41, LastSeq: 40}, false, 0},
		{"whole", partition.StreamState{FirstSeq: 1, LastSeq: 40, Msgs: 40}, false, 0},
		{"trimmed from the head", partition.StreamState{FirstSeq: 11, LastSeq: 40, Msgs: 30}, false, 0},
		{"block cut short", partition.StreamState{FirstSeq: 1, LastSeq: 41, Msgs: 24}, false, 17},
		{"lost reported", partition.StreamState{FirstSeq: 1, LastSeq: 40, Msgs: 40, Lost: []uint64{14, 15}}, false, 2},
		{"lost and gaps", partition.StreamState{FirstSeq: 1, LastSeq: 40, Msgs: 35, Lost: []uint64{14}}, false, 5},
		{"compacted", partition.StreamState{FirstSeq: 1, LastSeq: 41, Msgs: 24}, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := c.st.Missing(c.compact); got != c.want {
				t.Errorf("Missing(%t) of %+v = %d, want %d", c.compact, c.st, got, c.want)
			}
		})
	}
}
