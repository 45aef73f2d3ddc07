package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestParseRetention(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"7d", 7 * day, false},
		{"1d12h", 36 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"12h", 12 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"1s", time.Second, false},
		{"-1", -1, false},
		{"forever", -1, false},
		{"FOREVER", -1, false},
		{"0", 0, true},
		{"-5h", 0, true},
		{"7x", 0, true},
		{"d", 0, true},
		{"7dd", 0, true},
		{"", 0, true},
	}
	for _, tc := range cases {
		got, err := parseRetention("retention", tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v, error %t", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("parseRetention(%q): error %q does not name the input", tc.in, err)
		}
	}
	for _, d := range []time.Duration{-1, time.Second, 90 * time.Minute, 12 * time.Hour, 36 * time.Hour, 7 * day, 1500 * time.Millisecond} {
		s := formatRetention(d)
		back, err := parseRetention("retention", s)
		if err != nil || back != d {
			t.Errorf("formatRetention(%v) = %q, which reads back as %v, %v", d, s, back, err)
		}
	}
	if got := formatRetention(7 * day); got != "7d" {
		t.Errorf("formatRetention(7d) = %q", got)
	}
	if got := formatRetention(36 * time.Hour); got != "1d12h" {
		t.Errorf("formatRetention(36h) = %q", got)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in        string
		unlimited bool
		want      int64
		err       bool
	}{
		{"1024", false, 1024, false},
		{"1KiB", false, 1024, false},
		{"1kib", false, 1024, false},
		{"1 MiB", false, 1 << 20, false},
		{"1.5MiB", false, 3 << 19, false},
		{"2GiB", false, 2 << 30, false},
		{"1KB", false, 1000, false},
		{"10MB", false, 10e6, false},
		{"1GB", false, 1e9, false},
		{"100B", false, 100, false},
		{"-1", true, -1, false},
		{"unlimited", true, -1, false},
		{"-1", false, 0, true},
		{"0", false, 0, true},
		{"1.5B", false, 0, true},
		{"ten", false, 0, true},
		{"5q", true, 0, true},
		{"99999999999TiB", false, 0, true},
	}
	for _, tc := range cases {
		got, err := parseSize("size", tc.in, tc.unlimited)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseSize(%q, %t) = %d, %v; want %d, error %t", tc.in, tc.unlimited, got, err, tc.want, tc.err)
		}
	}
	for n, want := range map[int64]string{-1: "unlimited", 1 << 20: "1MiB", 1500: "1500B", 64 << 10: "64KiB", 3 << 30: "3GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	good := map[string][]formatPart{
		`%v\n`:          {{verb: 'v'}, {text: "\n"}},
		`%p %o %k %v\n`: {{verb: 'p'}, {text: " "}, {verb: 'o'}, {text: " "}, {verb: 'k'}, {text: " "}, {verb: 'v'}, {text: "\n"}},
		// Without a line break anywhere, one is added at the end.
		`100%%\t%T\\`: {{text: "100%\t"}, {verb: 'T'}, {text: "\\\n"}},
		`%t%h`:        {{verb: 't'}, {verb: 'h'}, {text: "\n"}},
		`%p %k %v`:    {{verb: 'p'}, {text: " "}, {verb: 'k'}, {text: " "}, {verb: 'v'}, {text: "\n"}},
		`%%v is %v`:   {{text: "%v is "}, {verb: 'v'}, {text: "\n"}},
		`a\nb%v`:      {{text: "a\nb"}, {verb: 'v'}},
		`%S %K\x1e\0`: {{verb: 'S'}, {text: " "}, {verb: 'K'}, {text: "\x1e\x00\n"}},
		// %R frames binary values: no line break is added.
		`%R%v`: {{verb: 'R'}, {verb: 'v'}},
	}
	for in, want := range good {
		f, err := parseFormat(in)
		if err != nil || !slices.Equal(f.parts, want) {
			t.Errorf("parseFormat(%q) = %+v, %v; want %+v", in, f, err, want)
		}
	}
	// A format without a verb would print the same text for every record.
	for _, in := range []string{`%`, `%x`, `abc%`, `\`, `\q`, `%v\`, `%v\x`, `%v\xg1`, "", "plain", "yaml", "real\nnewline", `%%v is literal`} {
		if _, err := parseFormat(in); err == nil || !strings.Contains(err.Error(), "--format") {
			t.Errorf("parseFormat(%q): err = %v, want a --format error", in, err)
		}
	}
	if f, err := parseFormat("json"); err != nil || !f.json {
		t.Errorf("parseFormat(json) = %+v, %v", f, err)
	}
}

func TestReorderArgs(t *testing.T) {
	t.Parallel()
	a := (&app{}).cli()
	cases := []struct{ in, want string }{
		{"qxd topic create orders --partitions 3", "qxd topic create --partitions 3 orders"},
		{"qxd topic create orders -p 3 --compact -s nats://x:1", "qxd -server nats://x:1 topic create -partitions 3 --compact orders"},
		{"qxd --server=nats://x:1 topic list --json", "qxd --server=nats://x:1 topic list --json"},
		{"qxd topic create --retention -1 t", "qxd topic create --retention -1 t"},
		{"qxd topic consume t -o 5 --exit-at-end -f %v", "qxd topic consume -offset 5 --exit-at-end -format %v t"},
		{"qxd topic produce t -H a=1 --header=b=2 -H=c=3", "qxd topic produce -header a=1 --header=b=2 -header=c=3 t"},
		{"qxd topic create -- -odd", "qxd topic create -- -odd"},
		{"qxd topic produce t -K -- --partition 1", "qxd topic produce -key-delim -- --partition 1 t"},
		{"qxd topic bogus --x", "qxd topic --x bogus"},
		{"qxd server --listen :0 --log-level debug", "qxd --log-level debug server --listen :0"},
		{"qxd", "qxd"},
	}
	for _, tc := range cases {
		got := strings.Join(reorderArgs(a, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var _ *cli.App = a
}
