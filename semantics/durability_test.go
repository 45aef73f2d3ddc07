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
	} {
		if got, err := semantics.ParseDurability(c.in); err != nil || got != c.want {
			t.Errorf("ParseDurability(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "sometimes", "lazy", "always"} {
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

// Durability is fixed at creation: altering it is refused with what to do.
func TestAlterDurabilityRefused(t *testing.T) {
	t.Parallel()
	tm := semantics.TopicMeta{Name: "metrics", Config: semantics.TopicConfig{Durability: "async"}.WithDefaults()}
	_, _, err := semantics.AlterConfig(tm, map[string]string{"durability": "sync"}, nil)
	if err == nil || !strings.Contains(err.Error(), `config key "durability" cannot be changed: durability is fixed when the topic is created`) {
		t.Errorf("alter durability: %v", err)
	}
}
