package semantics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

func TestParseDurability(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"sync", semantics.DurabilitySync}, {"async", semantics.DurabilityAsync},
		{"ASYNC", semantics.DurabilityAsync}, {" Sync ", semantics.DurabilitySync},
		{"always", semantics.DurabilitySync}, {"Always", semantics.DurabilitySync},
	} {
		if got, err := semantics.ParseDurability(c.in); err != nil || got != c.want {
			t.Errorf("ParseDurability(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "sometimes", "lazy", "never"} {
		_, err := semantics.ParseDurability(in)
		if err == nil || !strings.Contains(err.Error(), `"`+in+`" is not known: use sync`) {
			t.Errorf("ParseDurability(%q): %v, want an error naming it and the choices", in, err)
		}
	}
}

func TestTopicConfigDurability(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  semantics.TopicConfig
		want string // durability after WithDefaults; "" with err
		err  string
	}{
		{"default", semantics.TopicConfig{}, "sync", ""},
		{"sync", semantics.TopicConfig{Durability: "sync"}, "sync", ""},
		{"async, any case", semantics.TopicConfig{Durability: "Async"}, "async", ""},
		{"async on one replica", semantics.TopicConfig{Durability: "async", Replicas: 1}, "async", ""},
		{"async replicated", semantics.TopicConfig{Durability: "async", Replicas: 3}, "",
			"durability async needs 1 replica, not 3"},
		{"unknown", semantics.TopicConfig{Durability: "lazy"}, "", `durability "lazy" is not known`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg.WithDefaults()
			err := cfg.Validate()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, semantics.ErrInvalidConfig) {
					t.Fatalf("validate %+v: %v, want an invalid-config error containing %q", c.cfg, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.DurabilityOrDefault(); got != c.want {
				t.Errorf("durability %q, want %q", got, c.want)
			}
			if cfg.Async() != (c.want == "async") {
				t.Errorf("Async() = %t for %q", cfg.Async(), c.want)
			}
		})
	}
}

// Durability is altered both ways, deleting it goes back to sync, it is not an
// override of ConfigKeys, and async is refused on a replicated topic in one line
// that names the topic.
func TestAlterDurability(t *testing.T) {
	t.Parallel()
	async := semantics.TopicMeta{Name: "metrics", Config: semantics.TopicConfig{Durability: "async"}.WithDefaults()}
	plain := semantics.TopicMeta{Name: "orders", Config: semantics.TopicConfig{}.WithDefaults()}
	r3 := semantics.TopicMeta{Name: "r3", Config: semantics.TopicConfig{Replicas: 3}.WithDefaults()}
	for _, tc := range []struct {
		name string
		t    semantics.TopicMeta
		set  map[string]string
		del  []string
		want string
		err  string
	}{
		{name: "to sync", t: async, set: map[string]string{"durability": "sync"}, want: "sync"},
		{name: "to always", t: async, set: map[string]string{"Durability": "ALWAYS"}, want: "sync"},
		{name: "to async", t: plain, set: map[string]string{"durability": "async"}, want: "async"},
		{name: "deleted", t: async, del: []string{"durability"}, want: "sync"},
		{name: "unknown value", t: plain, set: map[string]string{"durability": "lazy"}, err: `config durability=lazy: durability "lazy" is not known`},
		{name: "replicated", t: r3, set: map[string]string{"durability": "async"}, err: `config durability=async: topic "r3" has 3 replicas, and async needs 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, over, err := semantics.AlterConfig(tc.t, tc.set, tc.del)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") || !errors.Is(err, semantics.ErrInvalidConfig) {
					t.Fatalf("%v, want one line containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.DurabilityOrDefault() != tc.want || len(over) != 0 {
				t.Errorf("durability %q, overrides %v; want %q and none", c.DurabilityOrDefault(), over, tc.want)
			}
		})
	}
}

// A create's config map sets durability, in any case of its key, and it counts as
// no override.
func TestWithConfigDurability(t *testing.T) {
	t.Parallel()
	c, err := semantics.WithConfig("metrics", semantics.TopicConfig{}, map[string]string{"Durability": "async"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Durability != semantics.DurabilityAsync || len(semantics.ConfigOverrides(c)) != 0 {
		t.Errorf("WithConfig = %+v, overrides %v; want durability async and none", c, semantics.ConfigOverrides(c))
	}
	_, err = semantics.WithConfig("metrics", semantics.TopicConfig{Replicas: 3}, map[string]string{"durability": "async"})
	if err == nil || !strings.Contains(err.Error(), "async needs 1") {
		t.Errorf("WithConfig of async on three replicas: %v, want it refused", err)
	}
}
