package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

const exampleConf = `
# a node of a three-node cluster
name: n1
listen: "127.0.0.1:4333"
data: "data"
sync: "2m"
shutdown_timeout: "20s"
auto_leader_rebalance: false
leader_imbalance_check_interval: "5m"
auto_repair: false
auto_repair_delay: "45s"
scrub: false
scrub_interval: "6h"
scrub_rate: "8MiB"
producer_id_expiration: "90m"
cluster {
  name: prod
  listen: "127.0.0.1:6333"
  peers: ["nats://127.0.0.1:6333", "nats://127.0.0.1:6334"]
  tls { cert: "node.pem", key: "node-key.pem", ca: "ca.pem" }
}
tls { cert: "node.pem", key: "node-key.pem", ca: "/etc/qxd/ca.pem", verify: true, timeout: 3 }
auth {
  users: [
    { user: alice, password: "$2a$04$Pz2S/7hXkHXs2.nBxxFn5e3Jb1F4ArbuDZ7b7S7zbdHkL.yJwWf5S",
      permissions: { produce: [orders], consume: ["*"], groups: billing } }
    { user: bob, password: "$2a$04$Pz2S/7hXkHXs2.nBxxFn5e3Jb1F4ArbuDZ7b7S7zbdHkL.yJwWf5S" }
  ]
  tokens: [ { name: ci, token: "0123456789abcdef", permissions: { admin: ["*"] } } ]
  nkeys: [ { name: svc, nkey: "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", permissions: { consume: [orders], publish: ["sensors.>"] } } ]
  accounts: [ { name: team, public_key: "ADWFN4P6PXGKKBAJZZL4C7ZJBVWC2DA4DLMWBI3ZCEVG3ZIHAE3QTZXT", permissions: { consume: [orders] } } ]
}
`

func TestParseConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qxd.conf")
	if err := os.WriteFile(path, []byte(exampleConf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfigFile(path, server.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", cfg.Name, "n1"},
		{"listen", cfg.Listen, "127.0.0.1:4333"},
		{"data relative to the file", cfg.DataDir, filepath.Join(dir, "data")},
		{"shutdown", cfg.ShutdownTimeout, 20 * time.Second},
		{"sync", cfg.Sync, 2 * time.Minute},
		{"auto leader rebalance", cfg.AutoLeaderRebalance, false},
		{"leader imbalance check interval", cfg.LeaderImbalanceCheckInterval, 5 * time.Minute},
		{"auto repair", cfg.AutoRepair, false},
		{"auto repair delay", cfg.AutoRepairDelay, 45 * time.Second},
		{"scrub", cfg.Scrub, false},
		{"scrub interval", cfg.ScrubInterval, 6 * time.Hour},
		{"scrub rate", cfg.ScrubRate, int64(8 << 20)},
		{"producer id expiration", cfg.ProducerIDExpiration, 90 * time.Minute},
		{"cluster name", cfg.ClusterName, "prod"},
		{"peers", len(cfg.Peers), 2},
		{"cluster cert", cfg.ClusterTLS.Cert, filepath.Join(dir, "node.pem")},
		{"tls ca absolute", cfg.TLS.CA, "/etc/qxd/ca.pem"},
		{"tls verify", cfg.TLS.Verify, true},
		{"tls timeout", cfg.TLS.Timeout, 3 * time.Second},
		{"users", len(cfg.Auth.Users), 2},
		{"alice", cfg.Auth.Users[0].Name, "alice"},
		{"alice produce", strings.Join(cfg.Auth.Users[0].Grant.Produce, ","), "orders"},
		{"alice groups", strings.Join(cfg.Auth.Users[0].Grant.Groups, ","), "billing"},
		{"token", cfg.Auth.Tokens[0].Token, "0123456789abcdef"},
		{"nkey publish", strings.Join(cfg.Auth.NKeys[0].Grant.Publish, ","), "sensors.>"},
		{"account", cfg.Auth.Accounts[0].Name, "team"},
		{"untouched default", cfg.MaxPending, server.DefaultConfig().MaxPending},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if !slices.Equal(cfg.Auth.Users[0].Grant.Consume, []string{semantics.AllPattern}) {
		t.Errorf("alice consume: %v", cfg.Auth.Users[0].Grant.Consume)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, text, want string
	}{
		{"unknown key", "listn: x", `unknown key "listn"`},
		{"unknown nested key", "tls { cart: x }", `unknown key "tls.cart"`},
		{"wrong type", "listen: true", "listen: want a string"},
		{"bad duration", `shutdown_timeout: "soon"`, "not a duration"},
		{"user without block", "auth { users: [ alice ] }", "auth.users[0]: want a block"},
		{"prefix pattern", `auth { users: [ { user: a, password: x, permissions: { produce: ["orders-*"] } } ] }`, "prefix patterns"},
		{"bad topic", `auth { users: [ { user: a, password: x, permissions: { consume: ["a b"] } } ] }`, `topic pattern "a b"`},
		{"qxd subject", `auth { users: [ { user: a, password: x, permissions: { publish: ["qxd.w.>"] } } ] }`, "qxd or NATS uses itself"},
		{"unknown permission", `auth { users: [ { user: a, password: x, permissions: { write: [a] } } ] }`, `unknown key "auth.users[0].permissions.write"`},
		{"syntax", "tls {", "config"},
		{"sync unquoted interval", "sync: 2m", `sync: 2000000 is not always or an interval: write always or an interval in quotes such as "2m"`},
		{"sync zero", `sync: "0"`, `sync: "0" is neither always nor a positive interval`},
		{"sync word", "sync: sometimes", `sync: "sometimes" is neither always nor a positive interval`},
		{"scrub interval unquoted", "scrub_interval: 2m", `scrub_interval: 2000000 is not a duration`},
		{"scrub interval word", `scrub_interval: "daily"`, `scrub_interval: "daily" is not a duration`},
		{"scrub interval negative", `scrub_interval: "-1h"`, `scrub_interval: "-1h" is not a duration`},
		{"scrub rate word", `scrub_rate: "fast"`, `scrub_rate: "fast" is not a rate in bytes a second`},
		{"scrub rate negative", `scrub_rate: -5`, `scrub_rate: -5 is not a rate in bytes a second`},
		{"scrub rate negative size", `scrub_rate: "-1MiB"`, `scrub_rate: "-1MiB" is not a rate in bytes a second`},
		{"scrub rate bool", `scrub_rate: true`, `scrub_rate: true is not a rate in bytes a second`},
		{"producer id expiration unquoted", "producer_id_expiration: 30m", `producer_id_expiration: 30000000 is not a duration`},
		{"producer id expiration word", `producer_id_expiration: "daily"`, `producer_id_expiration: "daily" is not a positive duration`},
		{"producer id expiration zero", `producer_id_expiration: "0s"`, `producer_id_expiration: "0s" is not a positive duration`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := server.ParseConfig(c.text, server.DefaultConfig())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseScrubRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"8MiB", 8 << 20, true},
		{"8mib/s", 8 << 20, true},
		{" 512KiB ", 512 << 10, true},
		{"10MB", 10e6, true},
		{"4096", 4096, true},
		{"-1", 0, false},
		{"unlimited", 0, false},
		{"fast", 0, false},
		{"", 0, false},
	} {
		got, err := server.ParseScrubRate(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseScrubRate(%q) = %d, %v; want %d (ok %t)", c.in, got, err, c.want, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), fmt.Sprintf("%q", c.in)) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("ParseScrubRate(%q): %v; want one line quoting the value", c.in, err)
		}
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	if cfg.ScrubRate != 0 {
		t.Errorf("default scrub rate %d: want 0, no cap", cfg.ScrubRate)
	}
	cfg.ScrubRate = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--scrub-rate") {
		t.Errorf("validate a scrub rate of -1: %v; want an error naming --scrub-rate", err)
	}
}

func TestParseSync(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"always", server.SyncAlways, ""},
		{"ALWAYS", server.SyncAlways, ""},
		{"1s", time.Second, ""},
		{"2m", 2 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"0", 0, `"0" is neither always nor a positive interval`},
		{"0s", 0, `"0s" is neither always nor a positive interval`},
		{"-1s", 0, `"-1s" is neither always nor a positive interval`},
		{"sometimes", 0, `"sometimes" is neither always nor a positive interval: use always`},
		{"", 0, `"" is neither always nor a positive interval`},
	}
	for _, c := range cases {
		got, err := server.ParseSync(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseSync(%q): got %v, %v; want an error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSync(%q): got %v, %v; want %v", c.in, got, err, c.want)
		}
		if c.in != "ALWAYS" && server.FormatSync(got) != c.in {
			t.Errorf("FormatSync(%v) = %q, want %q", got, server.FormatSync(got), c.in)
		}
	}
	if got := server.DefaultConfig().Sync; got != server.SyncAlways {
		t.Errorf("default sync %v, want always", got)
	}
	cfg := server.DefaultConfig()
	cfg.Sync = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sync interval -1s is negative") {
		t.Errorf("validate negative sync: %v", err)
	}
}

func TestConfigValidateAuth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(*server.Config)
		want string
	}{
		{"plain password", func(c *server.Config) {
			c.Auth.Users = []server.UserAuth{{Name: "a", Password: "secret"}}
		}, "bcrypt hash"},
		{"short token", func(c *server.Config) { c.Auth.Tokens = []server.TokenAuth{{Token: "x"}} }, "shorter than 8"},
		{"bad nkey", func(c *server.Config) { c.Auth.NKeys = []server.NKeyAuth{{PublicKey: "AXXX"}} }, "not a user public nkey"},
		{"cert without key", func(c *server.Config) { c.TLS = server.TLSConfig{Cert: "c.pem"} }, "both a certificate and a key"},
		{"verify without ca", func(c *server.Config) { c.TLS = server.TLSConfig{Cert: "c", Key: "k", Verify: true} }, "verify needs the CA"},
		{"missing file", func(c *server.Config) { c.TLS = server.TLSConfig{Cert: "/nonexistent.pem", Key: "/nonexistent.pem"} }, "nonexistent.pem"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := server.DefaultConfig()
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// FuzzParseConfig feeds the configuration parser arbitrary text: it must return a
// configuration or an error, never panic, and what it returns must validate or
// fail validation cleanly.
func FuzzParseConfig(f *testing.F) {
	f.Add(exampleConf)
	f.Add("listen: \"0.0.0.0:4222\"\n")
	f.Add("auth { tokens: [ { token: abcdefgh } ] }")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := server.ParseConfig(text, server.DefaultConfig())
		if err != nil {
			return
		}
		_ = cfg.Validate()
	})
}
