package partitioner_test

import (
	"slices"
	"testing"

	"github.com/qxd-io/qxd/partitioner"
)

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    []int32 // partition count per record
		want []int32
	}{
		{"one partition", []int32{1, 1, 1}, []int32{0, 0, 0}},
		{"three partitions", []int32{3, 3, 3, 3, 3, 3, 3}, []int32{0, 1, 2, 0, 1, 2, 0}},
		{"count grows", []int32{2, 2, 4, 4, 4}, []int32{0, 1, 2, 3, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := partitioner.NewRoundRobin()
			var got []int32
			for i, n := range tc.n {
				key := []byte("same key")
				if i%2 == 0 {
					key = nil
				}
				got = append(got, r.Partition(key, n))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("partitions = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestManual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    int32
		key  []byte
		n    int32
	}{
		{"first", 0, nil, 3},
		{"keyed", 2, []byte("user-1"), 3},
		{"out of range is the producer's business", 7, []byte("k"), 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := partitioner.NewManual(tc.p).Partition(tc.key, tc.n); got != tc.p {
				t.Errorf("Partition = %d, want %d", got, tc.p)
			}
		})
	}
}

func TestFunc(t *testing.T) {
	t.Parallel()
	var p partitioner.Partitioner = partitioner.Func(func(key []byte, n int32) int32 {
		return int32(len(key)) % n
	})
	if got := p.Partition([]byte("abcde"), 3); got != 2 {
		t.Errorf("Partition = %d, want 2", got)
	}
}
