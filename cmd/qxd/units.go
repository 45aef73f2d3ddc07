package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// parseRetention reads a duration flag: a Go duration ("12h", "90m"), days with a d
// suffix ("7d", "1d12h"), or "-1" / "forever" for no limit, which it returns as -1.
func parseRetention(flag, s string) (time.Duration, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "-1", "forever", "unlimited", "infinite":
		return -1, nil
	}
	d, err := parseDays(t)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s %q is not a duration: use e.g. 7d, 1d12h, 12h or 30m, or -1 (forever) for no limit", flag, s)
	}
	return d, nil
}

// parseDays is time.ParseDuration with a leading "<n>d" for days.
func parseDays(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseFloat(days, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || n > float64(math.MaxInt64/int64(day)) {
		return 0, fmt.Errorf("bad number of days %q", days)
	}
	d := time.Duration(n * float64(day))
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("bad duration %q after the days", rest)
		}
		d += r
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

var sizeUnits = []struct {
	suffix string
	n      int64
}{
	// Longest suffixes first, so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseSize reads a byte size flag: plain bytes, or a number with a suffix KiB, MiB,
// GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000), in any case. With
// unlimited, "-1" and "unlimited" give -1.
func parseSize(flag, s string, unlimited bool) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if unlimited {
		switch t {
		case "-1", "unlimited", "none":
			return -1, nil
		}
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.n
			break
		}
	}
	hint := "use bytes or a size such as 512KiB, 1MiB or 10GB"
	if unlimited {
		hint += ", or -1 for no limit"
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n <= 0 || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("--%s %q is out of range: %s", flag, s, hint)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("--%s %q is not a size: %s", flag, s, hint)
	}
	v := f * float64(mult)
	if v < 1 || v >= math.MaxInt64 || v != math.Trunc(v) {
		return 0, fmt.Errorf("--%s %q is not a whole positive number of bytes: %s", flag, s, hint)
	}
	return int64(v), nil
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
