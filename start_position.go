// Start positions: where a consumer starts reading a partition (Offset) and what it
// does when that position is not stored (ResetPolicy). Committed group offsets are
// in package offsets.

package qxd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

type offsetKind int8

const (
	offsetStart offsetKind = iota
	offsetEnd
	offsetAt
	offsetTime
	offsetNone // no start: a group partition without commit under ResetNone
)

// Offset says where a consumer starts reading a partition.
type Offset struct {
	kind offsetKind
	at   int64 // offset, or Unix ms for offsetTime
}

// AtStart starts at the first stored record (the log start offset).
func AtStart() Offset { return Offset{kind: offsetStart} }

// AtEnd starts after the last record: only records produced from now on.
func AtEnd() Offset { return Offset{kind: offsetEnd} }

// At starts at offset n, which may be in the middle of a stored batch. An offset
// outside the stored range is handled by the consumer's ResetPolicy.
func At(n int64) Offset { return Offset{kind: offsetAt, at: n} }

// AtTime starts at the first record whose timestamp is at or after t, as Kafka's
// offsetsForTimes; at the end when there is none.
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, at: t.UnixMilli()} }

func (o Offset) String() string {
	switch o.kind {
	case offsetStart:
		return "start"
	case offsetEnd:
		return "end"
	case offsetTime:
		return "@" + strconv.FormatInt(o.at, 10)
	}
	return strconv.FormatInt(o.at, 10)
}

// ParseOffset reads "start" (or "earliest", "beginning"), "end" (or "latest"), an
// offset number, or "@<unix ms>".
func ParseOffset(s string) (Offset, error) {
	switch strings.ToLower(s) {
	case "start", "earliest", "beginning", "oldest":
		return AtStart(), nil
	case "end", "latest", "newest":
		return AtEnd(), nil
	}
	if ms, ok := strings.CutPrefix(s, "@"); ok {
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n < 0 {
			return Offset{}, semantics.Errorf(semantics.ErrInvalidRequest, "offset %q: after @ give a time in Unix milliseconds, e.g. @%d", s, time.Now().UnixMilli())
		}
		return AtTime(time.UnixMilli(n)), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return Offset{}, semantics.Errorf(semantics.ErrInvalidRequest, "offset %q is not valid: use start, end, a number from 0, or @<unix ms>", s)
	}
	return At(n), nil
}

// ResetPolicy says what a consumer does when its start offset is not stored (aged
// out, or beyond the end), as Kafka's auto.offset.reset.
type ResetPolicy int8

const (
	// ResetEarliest moves to the log start offset.
	ResetEarliest ResetPolicy = iota
	// ResetLatest moves to the high watermark.
	ResetLatest
	// ResetNone fails with semantics.ErrOffsetOutOfRange, naming the valid range.
	ResetNone
)

// ParseResetPolicy reads "earliest", "latest" or "none" (also "error").
func ParseResetPolicy(s string) (ResetPolicy, error) {
	switch strings.ToLower(s) {
	case "earliest":
		return ResetEarliest, nil
	case "latest":
		return ResetLatest, nil
	case "none", "error":
		return ResetNone, nil
	}
	return 0, fmt.Errorf("reset policy %q is not valid: use earliest, latest or none", s)
}
