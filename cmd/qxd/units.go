package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

const day = 24 * time.Hour

// parseRetention reads a duration flag as semantics.ParseDuration does: a Go
// duration ("12h", "90m"), days with a d suffix ("7d", "1d12h"), or "-1" / "forever"
// for no limit, which it returns as -1.
func parseRetention(flag, s string) (time.Duration, error) {
	d, err := semantics.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %w", flag, err)
	}
	return d, nil
}

// formatRetention writes d as parseRetention reads it: "forever" when negative,
// else days then a Go duration without zero units ("7d", "1d12h", "90m").
func formatRetention(d time.Duration) string {
	if d < 0 {
		return "forever"
	}
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if days := d / day; days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		d -= days * day
	}
	if d > 0 {
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		b.WriteString(s)
	}
	return b.String()
}

// parseSize reads a byte size flag as semantics.ParseSize does: plain bytes, or a
// number with a suffix KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers
// of 1000), in any case. With unlimited, "-1" and "unlimited" give -1.
func parseSize(flag, s string, unlimited bool) (int64, error) {
	n, err := semantics.ParseSize(s, unlimited)
	if err != nil {
		return 0, fmt.Errorf("--%s %w", flag, err)
	}
	return n, nil
}

// formatSize writes n in the largest binary unit that holds it exactly ("1MiB",
// "1500B"), and "unlimited" when negative.
func formatSize(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
