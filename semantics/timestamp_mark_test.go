package semantics_test

import (
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

// Fold keeps the larger timestamp, and on a tie the batch earlier in the log.
func TestTimestampMarkFold(t *testing.T) {
	t.Parallel()
	a := semantics.TimestampMark{Timestamp: 5000, BaseOffset: 10, Seq: 3}
	b := semantics.TimestampMark{Timestamp: 5000, BaseOffset: 2, Seq: 1}
	c := semantics.TimestampMark{Timestamp: 7000, BaseOffset: 20, Seq: 5}
	none := semantics.NoTimestampMark
	for _, tc := range []struct {
		name      string
		m, o, out semantics.TimestampMark
	}{
		{"none and one", none, a, a},
		{"one and none", a, none, a},
		{"none and none", none, none, none},
		{"larger later", a, c, c},
		{"larger earlier", c, a, c},
		{"tie keeps the earlier batch", a, b, b},
		{"tie kept", b, a, b},
	} {
		if got := tc.m.Fold(tc.o); got != tc.out {
			t.Errorf("%s: %+v.Fold(%+v) = %+v, want %+v", tc.name, tc.m, tc.o, got, tc.out)
		}
	}
}
