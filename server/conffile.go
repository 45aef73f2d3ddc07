package server

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/conf"

	"github.com/qxd-io/qxd/semantics"
)

// A node's configuration file uses NATS's configuration syntax (nats-server's conf
// package: "key: value" or "key = value", blocks in braces, lists in brackets,
// comments with # or //, $VARIABLES from the environment; JSON is valid too). Every
// key is optional; an unknown key is an error. docs/security.md describes the file;
// in short:
//
//	name: n1
//	listen: "0.0.0.0:4222"
//	data: "/var/lib/qxd"
//	sync: always                         # or an interval in quotes: "1s", "2m"
//	auto_leader_rebalance: true          # leaders return to their spread (default)
//	scrub_interval: "24h"                # one scrub pass over the node's copies; "0": no scrub
//	scrub_rate: "8MiB"                   # the scrub reads at most this a second; 0: no cap (default)
//	leader_imbalance_check_interval: 1m
//	producer_id_expiration: "24h"        # writers forget an idempotent producer idle this long
//	http_listen: "0.0.0.0:9644"          # metrics and probes; "" serves none
//	http { listen: "0.0.0.0:9644", tls { cert: "http.pem", key: "http-key.pem" }, max_partition_series: 5000 }
//	kafka { listen: "0.0.0.0:9092", advertise: "n1.example.com:9092", fetch_session_slots: 1000, fetch_session_eviction: "2m", fetch_max_bytes: "2MiB" }  # listen "" turns it off; 0 slots: no fetch sessions
//	cluster {
//	  name: qxd
//	  listen: "0.0.0.0:6222"
//	  peers: ["nats://n1:6222", "nats://n2:6222", "nats://n3:6222"]
//	  tls { cert: "node.pem", key: "node-key.pem", ca: "ca.pem" }
//	}
//	tls { cert: "node.pem", key: "node-key.pem", ca: "ca.pem", verify: false }
//	auth {
//	  users: [
//	    { user: alice, password: "$2a$11$…",
//	      scram_sha_256: "salt=…,stored_key=…,server_key=…,iterations=4096",  # optional, Kafka SCRAM
//	      scram_sha_512: "salt=…,stored_key=…,server_key=…,iterations=4096",
//	      permissions: { produce: [orders], consume: ["*"], admin: [], groups: [billing] } }
//	  ]
//	  tokens: [ { name: ci, token: "…", permissions: { admin: ["*"] } } ]
//	  nkeys: [ { name: svc, nkey: "UAB…", permissions: { consume: [orders] } } ]
//	  accounts: [ { name: team, public_key: "AAB…", permissions: { consume: [orders] } } ]
//	}
//
// Relative file names (certificates, data) are relative to the configuration file.

// LoadConfigFile reads the configuration file at path over base (usually
// DefaultConfig) and returns the result; keys the file does not set keep base's
// values. The result is not validated: callers apply their overrides, then Start
// validates.
func LoadConfigFile(path string, base Config) (Config, error) {
	if _, err := os.Stat(path); err != nil {
		return base, fmt.Errorf("config file: %w", err)
	}
	m, err := parseConf(func() (map[string]any, error) { return conf.ParseFile(path) })
	if err != nil {
		return base, fmt.Errorf("config file %s: %w", path, err)
	}
	cfg, err := configFromMap(m, base, filepath.Dir(path))
	if err != nil {
		return base, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses configuration text (see LoadConfigFile) over base. Relative
// file names stay relative to the working directory.
func ParseConfig(text string, base Config) (Config, error) {
	m, err := parseConf(func() (map[string]any, error) { return conf.Parse(text) })
	if err != nil {
		return base, fmt.Errorf("config: %w", err)
	}
	return configFromMap(m, base, "")
}

// parseConf runs the NATS parser, which has been seen to panic on some malformed
// input, turning a panic into an error.
func parseConf(parse func() (map[string]any, error)) (m map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed configuration: %v", r)
		}
	}()
	return parse()
}

// section reads one block of the file, refusing keys it does not know.
type section struct {
	path string // "auth.users[1]", for messages
	m    map[string]any
	dir  string
}

func (s section) name(key string) string {
	if s.path == "" {
		return key
	}
	return s.path + "." + key
}

func (s section) check(known ...string) error {
	for k := range s.m {
		if !slices.Contains(known, k) {
			return fmt.Errorf("unknown key %q: the keys here are %s", s.name(k), strings.Join(known, ", "))
		}
	}
	return nil
}

func (s section) str(key string, dst *string) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		*dst = v
	case int64:
		*dst = fmt.Sprint(v)
	default:
		return fmt.Errorf("%s: want a string, got %T", s.name(key), v)
	}
	return nil
}

func (s section) file(key string, dst *string) error {
	if err := s.str(key, dst); err != nil {
		return err
	}
	if *dst != "" && s.dir != "" && !filepath.IsAbs(*dst) {
		*dst = filepath.Join(s.dir, *dst)
	}
	return nil
}

func (s section) boolean(key string, dst *bool) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	b, ok := v.(bool)
	if !ok {
		return fmt.Errorf("%s: want true or false, got %T", s.name(key), v)
	}
	*dst = b
	return nil
}

func (s section) integer(key string, dst *int) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("%s: want a whole number, got %v", s.name(key), v)
	}
	*dst = int(n)
	return nil
}

func (s section) duration(key string, dst *time.Duration) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration such as \"2s\": %v", s.name(key), v, err)
		}
		*dst = d
	case int64:
		*dst = time.Duration(v) * time.Second
	case float64:
		*dst = time.Duration(v * float64(time.Second))
	default:
		return fmt.Errorf("%s: want a duration such as \"2s\", got %T", s.name(key), v)
	}
	return nil
}

// positiveDuration reads a duration above zero written in quotes ("2m"). NATS's
// parser reads an unquoted 2m as the number 2000000, so a number is refused
// rather than taken as that many seconds.
func (s section) positiveDuration(key string, dst *time.Duration) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s: %v is not a duration: write one in quotes such as \"2m\" (unquoted, 2m reads as the number 2000000)", s.name(key), v)
	}
	d, err := time.ParseDuration(str)
	if err != nil || d <= 0 {
		return fmt.Errorf("%s: %q is not a positive duration: write one such as \"2m\" or \"30s\"", s.name(key), str)
	}
	*dst = d
	return nil
}

// scrubInterval reads the scrub's interval: a duration in quotes ("24h"), or 0
// (the scrub off). NATS's parser reads an unquoted 6h as a number, so a number
// other than 0 is refused rather than taken as that many seconds.
func (s section) scrubInterval(key string, dst *time.Duration) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case int64:
		if v == 0 {
			*dst = 0
			return nil
		}
	case string:
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%s: %q is not a duration: write one in quotes such as \"24h\", or \"0\" to turn the scrub off", s.name(key), v)
		}
		*dst = d
		return nil
	}
	return fmt.Errorf("%s: %v is not a duration: write one in quotes such as \"24h\" (unquoted, it reads as a number), or 0 to turn the scrub off", s.name(key), v)
}

// scrubRate reads the scrub's rate cap in bytes a second: a size in quotes as
// ParseScrubRate reads it ("8MiB"), or a number of bytes (NATS's parser reads an
// unquoted 8MiB or 8MB as 8388608 itself); 0 sets no cap.
func (s section) scrubRate(key string, dst *int64) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case int64:
		if v >= 0 {
			*dst = v
			return nil
		}
	case string:
		n, err := ParseScrubRate(v)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name(key), err)
		}
		*dst = n
		return nil
	}
	return fmt.Errorf("%s: %v is not a rate in bytes a second: write one in quotes such as \"8MiB\", or 0 for no cap", s.name(key), v)
}

// positiveSize reads a byte size above 0: a size in quotes as semantics.ParseSize
// reads it ("2MiB", "512KiB"), or a number of bytes (NATS's parser reads an
// unquoted 2MiB or 2MB as 2097152 itself).
func (s section) positiveSize(key string, dst *int) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case int64:
		if v > 0 && v <= math.MaxInt32 {
			*dst = int(v)
			return nil
		}
	case string:
		n, err := semantics.ParseSize(v, false)
		if err == nil && n > 0 && n <= math.MaxInt32 {
			*dst = int(n)
			return nil
		}
	}
	return fmt.Errorf("%s: %v is not a size above 0: write one such as \"2MiB\" or a number of bytes", s.name(key), v)
}

// sync reads a sync setting: always or an interval (see ParseSync). NATS's parser
// reads an unquoted 2m as the number 2000000, so a number is refused.
func (s section) sync(key string, dst *time.Duration) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s: %v is not always or an interval: write always or an interval in quotes such as \"2m\" (unquoted, 2m reads as the number 2000000)", s.name(key), v)
	}
	d, err := ParseSync(str)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name(key), err)
	}
	*dst = d
	return nil
}

// strings reads a list of strings; a single string is a list of one.
func (s section) strings(key string, dst *[]string) error {
	v, ok := s.m[key]
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		*dst = []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s[%d]: want a string, got %T", s.name(key), i, e)
			}
			out = append(out, str)
		}
		*dst = out
	default:
		return fmt.Errorf("%s: want a list of strings, got %T", s.name(key), v)
	}
	return nil
}

func (s section) sub(key string) (section, bool, error) {
	v, ok := s.m[key]
	if !ok {
		return section{}, false, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return section{}, false, fmt.Errorf("%s: want a block { … }, got %T", s.name(key), v)
	}
	return section{path: s.name(key), m: m, dir: s.dir}, true, nil
}

func (s section) list(key string) ([]section, error) {
	v, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a list [ … ], got %T", s.name(key), v)
	}
	out := make([]section, 0, len(l))
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: want a block { … }, got %T", s.name(key), i, e)
		}
		out = append(out, section{path: fmt.Sprintf("%s[%d]", s.name(key), i), m: m, dir: s.dir})
	}
	return out, nil
}

func configFromMap(m map[string]any, cfg Config, dir string) (Config, error) {
	root := section{m: m, dir: dir}
	if err := root.check("name", "listen", "data", "sync", "cluster", "tls", "auth", "shutdown_timeout",
		"auto_leader_rebalance", "leader_imbalance_check_interval", "auto_repair", "auto_repair_delay", "scrub", "scrub_interval", "scrub_rate", "producer_id_expiration", "http_listen", "http", "kafka"); err != nil {
		return cfg, err
	}
	err := firstErr(
		root.str("name", &cfg.Name),
		root.str("listen", &cfg.Listen),
		root.str("http_listen", &cfg.HTTPListen),
		root.file("data", &cfg.DataDir),
		root.sync("sync", &cfg.Sync),
		root.duration("shutdown_timeout", &cfg.ShutdownTimeout),
		root.boolean("auto_leader_rebalance", &cfg.AutoLeaderRebalance),
		root.duration("leader_imbalance_check_interval", &cfg.LeaderImbalanceCheckInterval),
		root.boolean("auto_repair", &cfg.AutoRepair),
		root.duration("auto_repair_delay", &cfg.AutoRepairDelay),
		root.boolean("scrub", &cfg.Scrub),
		root.scrubInterval("scrub_interval", &cfg.ScrubInterval),
		root.scrubRate("scrub_rate", &cfg.ScrubRate),
		root.positiveDuration("producer_id_expiration", &cfg.ProducerIDExpiration),
	)
	if err != nil {
		return cfg, err
	}
	if s, ok, err := root.sub("http"); err != nil {
		return cfg, err
	} else if ok {
		if err := s.check("listen", "tls", "max_partition_series"); err != nil {
			return cfg, err
		}
		if err := s.integer("max_partition_series", &cfg.HTTPMaxPartitionSeries); err != nil {
			return cfg, err
		}
		if _, both := root.m["http_listen"]; both && s.m["listen"] != nil {
			return cfg, fmt.Errorf("http_listen and http.listen are both set: keep one")
		}
		if err := s.str("listen", &cfg.HTTPListen); err != nil {
			return cfg, err
		}
		if t, ok, err := s.sub("tls"); err != nil {
			return cfg, err
		} else if ok {
			if cfg.HTTPTLS, err = tlsFromSection(t, cfg.HTTPTLS); err != nil {
				return cfg, err
			}
		}
	}
	if s, ok, err := root.sub("kafka"); err != nil {
		return cfg, err
	} else if ok {
		if err := s.check("listen", "advertise", "fetch_session_slots", "fetch_session_eviction", "fetch_max_bytes"); err != nil {
			return cfg, err
		}
		if err := firstErr(s.str("listen", &cfg.KafkaListen), s.str("advertise", &cfg.KafkaAdvertise),
			s.integer("fetch_session_slots", &cfg.KafkaFetchSessionSlots),
			s.positiveDuration("fetch_session_eviction", &cfg.KafkaFetchSessionEviction),
			s.positiveSize("fetch_max_bytes", &cfg.KafkaFetchMaxBytes)); err != nil {
			return cfg, err
		}
		if cfg.KafkaFetchSessionSlots < 0 {
			return cfg, fmt.Errorf("%s: %d is negative: give 0 (no fetch sessions) or more", s.name("fetch_session_slots"), cfg.KafkaFetchSessionSlots)
		}
	}
	if s, ok, err := root.sub("cluster"); err != nil {
		return cfg, err
	} else if ok {
		if err := s.check("name", "listen", "peers", "tls"); err != nil {
			return cfg, err
		}
		if err := firstErr(s.str("name", &cfg.ClusterName), s.str("listen", &cfg.ClusterListen), s.strings("peers", &cfg.Peers)); err != nil {
			return cfg, err
		}
		if t, ok, err := s.sub("tls"); err != nil {
			return cfg, err
		} else if ok {
			if cfg.ClusterTLS, err = tlsFromSection(t, cfg.ClusterTLS); err != nil {
				return cfg, err
			}
		}
	}
	if t, ok, err := root.sub("tls"); err != nil {
		return cfg, err
	} else if ok {
		if cfg.TLS, err = tlsFromSection(t, cfg.TLS); err != nil {
			return cfg, err
		}
	}
	if a, ok, err := root.sub("auth"); err != nil {
		return cfg, err
	} else if ok {
		if cfg.Auth, err = authFromSection(a); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func tlsFromSection(s section, t TLSConfig) (TLSConfig, error) {
	if err := s.check("cert", "key", "ca", "verify", "timeout"); err != nil {
		return t, err
	}
	err := firstErr(s.file("cert", &t.Cert), s.file("key", &t.Key), s.file("ca", &t.CA),
		s.boolean("verify", &t.Verify), s.duration("timeout", &t.Timeout))
	return t, err
}

func authFromSection(s section) (AuthConfig, error) {
	var a AuthConfig
	if err := s.check("users", "tokens", "nkeys", "accounts"); err != nil {
		return a, err
	}
	users, err := s.list("users")
	if err != nil {
		return a, err
	}
	for _, u := range users {
		var e UserAuth
		if err := u.check("user", "password", "scram_sha_256", "scram_sha_512", "permissions"); err != nil {
			return a, err
		}
		if err := firstErr(u.str("user", &e.Name), u.str("password", &e.Password),
			u.str("scram_sha_256", &e.SCRAMSHA256), u.str("scram_sha_512", &e.SCRAMSHA512)); err != nil {
			return a, err
		}
		if e.Grant, err = grantFromSection(u); err != nil {
			return a, err
		}
		a.Users = append(a.Users, e)
	}
	tokens, err := s.list("tokens")
	if err != nil {
		return a, err
	}
	for _, t := range tokens {
		var e TokenAuth
		if err := t.check("name", "token", "permissions"); err != nil {
			return a, err
		}
		if err := firstErr(t.str("name", &e.Name), t.str("token", &e.Token)); err != nil {
			return a, err
		}
		if e.Grant, err = grantFromSection(t); err != nil {
			return a, err
		}
		a.Tokens = append(a.Tokens, e)
	}
	nks, err := s.list("nkeys")
	if err != nil {
		return a, err
	}
	for _, k := range nks {
		var e NKeyAuth
		if err := k.check("name", "nkey", "permissions"); err != nil {
			return a, err
		}
		if err := firstErr(k.str("name", &e.Name), k.str("nkey", &e.PublicKey)); err != nil {
			return a, err
		}
		if e.Grant, err = grantFromSection(k); err != nil {
			return a, err
		}
		a.NKeys = append(a.NKeys, e)
	}
	accts, err := s.list("accounts")
	if err != nil {
		return a, err
	}
	for _, ac := range accts {
		var e AccountAuth
		if err := ac.check("name", "public_key", "signing_keys", "permissions"); err != nil {
			return a, err
		}
		if err := firstErr(ac.str("name", &e.Name), ac.str("public_key", &e.PublicKey), ac.strings("signing_keys", &e.SigningKeys)); err != nil {
			return a, err
		}
		if e.Grant, err = grantFromSection(ac); err != nil {
			return a, err
		}
		a.Accounts = append(a.Accounts, e)
	}
	return a, nil
}

func grantFromSection(s section) (semantics.Grant, error) {
	var g semantics.Grant
	p, ok, err := s.sub("permissions")
	if err != nil || !ok {
		return g, err
	}
	if err := p.check("produce", "consume", "admin", "groups", "publish", "subscribe"); err != nil {
		return g, err
	}
	err = firstErr(p.strings("produce", &g.Produce), p.strings("consume", &g.Consume),
		p.strings("admin", &g.Admin), p.strings("groups", &g.Groups),
		p.strings("publish", &g.Publish), p.strings("subscribe", &g.Subscribe))
	if err != nil {
		return g, err
	}
	if err := g.Validate(); err != nil {
		return g, fmt.Errorf("%s: %w", p.path, err)
	}
	return g, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
