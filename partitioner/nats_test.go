package partitioner_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd/partitioner"
)

func TestNATSVectors(t *testing.T) {
	t.Parallel()
	// From nats-server's own TestSubjectTransforms, plus the FNV-1a offset basis for "".
	tests := []struct {
		name string
		key  string
		n    int32
		want int32
	}{
		{"foo", "foo", 10, 3},
		{"baz", "baz", 10, 0},
		{"qux", "qux", 10, 9},
		{"whole subject foo.bar", "foo.bar", 10, 6},
		{"whole subject foo.baz", "foo.baz", 10, 4},
		{"whole subject test.subject", "test.subject", 5, 0},
		{"empty", "", 10, 2166136261 % 10},
		{"one partition", "anything", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := partitioner.NewNATS().Partition([]byte(tc.key), tc.n); got != tc.want {
				t.Errorf("Partition(%q, %d) = %d, want %d", tc.key, tc.n, got, tc.want)
			}
		})
	}
}

// TestNATSMatchesServer checks NATS against nats-server's own subject transform: the
// partition token the server writes must be the partition NATS picks for the key the
// package documentation derives from the subject.
func TestNATSMatchesServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     string
		dest    string // partition is the second token of the result
		subject func(a, b string) string
		key     func(a, b string) string
		n       int32
	}{
		{
			name:    "one wildcard, 8 partitions",
			src:     "orders.*",
			dest:    "orders.{{partition(8,1)}}.{{wildcard(1)}}",
			subject: func(a, _ string) string { return "orders." + a },
			key:     func(a, _ string) string { return a },
			n:       8,
		},
		{
			name:    "one wildcard, 7 partitions",
			src:     "orders.*",
			dest:    "orders.{{partition(7,1)}}",
			subject: func(a, _ string) string { return "orders." + a },
			key:     func(a, _ string) string { return a },
			n:       7,
		},
		{
			name:    "one wildcard, MaxInt32 partitions (unsigned modulo)",
			src:     "orders.*",
			dest:    fmt.Sprintf("orders.{{partition(%d,1)}}", math.MaxInt32),
			subject: func(a, _ string) string { return "orders." + a },
			key:     func(a, _ string) string { return a },
			n:       math.MaxInt32,
		},
		{
			name:    "two wildcards concatenated without separator",
			src:     "orders.*.*",
			dest:    "orders.{{partition(16,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}",
			subject: func(a, b string) string { return "orders." + a + "." + b },
			key:     func(a, b string) string { return a + b },
			n:       16,
		},
		{
			name:    "two wildcards in reverse order",
			src:     "orders.*.*",
			dest:    "orders.{{partition(16,2,1)}}",
			subject: func(a, b string) string { return "orders." + a + "." + b },
			key:     func(a, b string) string { return b + a },
			n:       16,
		},
		{
			name:    "shorthand hashes the whole subject",
			src:     "orders.*",
			dest:    "orders.{{partition(10)}}",
			subject: func(a, _ string) string { return "orders." + a },
			key:     func(a, _ string) string { return "orders." + a },
			n:       10,
		},
	}
	keys := []string{"user-1", "a-little-bit-long-string", "ünïcødé", "\xff\x80", "0"}
	for i := range 300 {
		keys = append(keys, "k"+strconv.Itoa(i))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, err := server.NewSubjectTransform(tc.src, tc.dest)
			if err != nil {
				t.Fatalf("NewSubjectTransform(%q, %q): %v", tc.src, tc.dest, err)
			}
			for i, a := range keys {
				b := keys[(i*7+3)%len(keys)]
				subject := tc.subject(a, b)
				out, err := tr.Match(subject)
				if err != nil {
					t.Fatalf("Match(%q): %v", subject, err)
				}
				token := strings.Split(out, ".")[1]
				want, err := strconv.ParseInt(token, 10, 32)
				if err != nil {
					t.Fatalf("Match(%q) = %q: partition token: %v", subject, out, err)
				}
				key := tc.key(a, b)
				if got := partitioner.NewNATS().Partition([]byte(key), tc.n); int64(got) != want {
					t.Errorf("subject %q: Partition(%q, %d) = %d, nats-server says %d", subject, key, tc.n, got, want)
				}
			}
		})
	}
}
