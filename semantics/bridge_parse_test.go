package semantics_test

import (
	"strings"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

func TestKeySpecExtract(t *testing.T) {
	t.Parallel()
	h := map[string][]string{"Order-Id": {"o-7", "o-8"}}
	tests := []struct {
		spec, subject string
		want          []byte
	}{
		{"token:2", "orders.alice", []byte("alice")},
		{"token:1", "orders.alice", []byte("orders")},
		{"token:3", "orders.eu.alice.x", []byte("alice")},
		{"token:3", "orders.eu", nil},
		{"header:Order-Id", "x", []byte("o-7")},
		{"header:order-id", "x", []byte("o-7")},
		{"header:Missing", "x", nil},
		{"subject", "orders.eu.1", []byte("orders.eu.1")},
		{"none", "orders.eu", nil},
	}
	for _, tc := range tests {
		k, err := semantics.ParseKeySpec(tc.spec)
		if err != nil {
			t.Fatalf("ParseKeySpec(%q): %v", tc.spec, err)
		}
		if k.String() != tc.spec && !strings.EqualFold(k.String(), tc.spec) {
			t.Errorf("ParseKeySpec(%q).String() = %q", tc.spec, k.String())
		}
		got := k.Extract(tc.subject, h)
		if string(got) != string(tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s of %s = %q, want %q", tc.spec, tc.subject, got, tc.want)
		}
	}
}

func TestSubjectTemplate(t *testing.T) {
	t.Parallel()
	tm, err := semantics.ParseSubjectTemplate("orders.p{partition}.{key}")
	if err != nil {
		t.Fatal(err)
	}
	if got := tm.Pattern(); got != "orders.*.*" {
		t.Errorf("Pattern() = %q", got)
	}
	if got := tm.String(); got != "orders.p{partition}.{key}" {
		t.Errorf("String() = %q", got)
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{[]byte("alice"), "orders.p3.alice"},
		{[]byte("a.b"), "orders.p3.=YS5i"},
		{nil, "orders.p3.="},
		{[]byte("=x"), "orders.p3.=PXg"},
	} {
		if got := tm.Subject(tc.key, 3, 9); got != tc.want {
			t.Errorf("Subject(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestSubjectsOverlap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders.eu.x", false},
		{"orders.>", "orders.eu.x", true},
		{"orders.>", "orders", false},
		{"*.*", "a.>", true},
		{"a.b", "a.c", false},
		{"*", "qxd.>", false},
		{">", "qxd.>", true},
	} {
		if got := semantics.SubjectsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := semantics.SubjectsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// FuzzBridgeParse checks the bridge parsers never panic and keep their promises: a
// valid pattern round-trips and overlaps itself; a template renders subjects its
// pattern matches, without wildcards or empty tokens, for any key; a key spec
// round-trips.
func FuzzBridgeParse(f *testing.F) {
	f.Add("orders.*", "orders.{key}", "token:2", []byte("alice"))
	f.Add("orders.>", "o.p{partition}.{offset}", "header:X", []byte("a.b c"))
	f.Add("a..b", "{key", "token:0", []byte{})
	f.Add(">", "x.{key}.{key}", "subject", []byte{0xff, '.'})
	f.Fuzz(func(t *testing.T, pattern, template, key string, k []byte) {
		if p, err := semantics.ParseSubjectPattern(pattern); err == nil {
			if p.String() != pattern {
				t.Fatalf("pattern %q round-trips to %q", pattern, p.String())
			}
			if !semantics.SubjectsOverlap(pattern, pattern) {
				t.Fatalf("pattern %q does not overlap itself", pattern)
			}
		}
		if tm, err := semantics.ParseSubjectTemplate(template); err == nil {
			subj := tm.Subject(k, 7, 42)
			p, err := semantics.ParseSubjectPattern(subj)
			if err != nil {
				t.Fatalf("template %q rendered %q for key %q: %v", template, subj, k, err)
			}
			for _, tok := range p.Tokens {
				if tok == "*" || tok == ">" {
					t.Fatalf("template %q rendered the wildcard subject %q", template, subj)
				}
			}
			tp, err := semantics.ParseSubjectPattern(tm.Pattern())
			if err != nil {
				t.Fatalf("template %q has the invalid pattern %q: %v", template, tm.Pattern(), err)
			}
			if !tp.Matches(subj) {
				t.Fatalf("template %q: pattern %q does not match its subject %q", template, tm.Pattern(), subj)
			}
		}
		if ks, err := semantics.ParseKeySpec(key); err == nil {
			if ks.String() != key {
				t.Fatalf("key spec %q round-trips to %q", key, ks.String())
			}
		}
	})
}
