package semantics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Keys of the topic settings that can be changed after creation (AlterConfig), as
// qxd's CLI flags name them. Each also has its Kafka name (ConfigKafkaName), which
// is accepted too.
const (
	ConfigRetention       = "retention"        // retention.ms
	ConfigRetentionBytes  = "retention-bytes"  // retention.bytes
	ConfigMaxRecordBytes  = "max-record-bytes" // max.message.bytes
	ConfigDeleteRetention = "delete-retention" // delete.retention.ms
)

// ConfigDurability is the key of a topic's durability (TopicConfig.Durability),
// which AlterConfig changes too: sync (or always) or async. It has no Kafka name
// and is not one of ConfigKeys (describe shows it on a line of its own).
const ConfigDurability = "durability"

// ConfigKeys are the settings AlterConfig changes, in the order describe shows them.
var ConfigKeys = []string{ConfigRetention, ConfigRetentionBytes, ConfigMaxRecordBytes, ConfigDeleteRetention}

var kafkaConfigNames = map[string]string{
	ConfigRetention:       "retention.ms",
	ConfigRetentionBytes:  "retention.bytes",
	ConfigMaxRecordBytes:  "max.message.bytes",
	ConfigDeleteRetention: "delete.retention.ms",
}

// ConfigKafkaName is Kafka's name for a setting of ConfigKeys.
func ConfigKafkaName(key string) string { return kafkaConfigNames[key] }

// fixedConfig are settings a person may try to alter that are fixed, with what to do.
var fixedConfig = map[string]string{
	"partitions":         "partitions are added with 'qxd topic add-partitions' (Admin.AddPartitions)",
	"num.partitions":     "partitions are added with 'qxd topic add-partitions' (Admin.AddPartitions)",
	"replicas":           "the replication factor is fixed when the topic is created",
	"replication.factor": "the replication factor is fixed when the topic is created",
	"compact":            "cleanup.policy is fixed when the topic is created: create a new topic",
	"cleanup.policy":     "cleanup.policy is fixed when the topic is created: create a new topic",
}

// Durabilities of a topic (TopicConfig.Durability).
const (
	// DurabilitySync: on a node that syncs always, every append is on disk before
	// it is acknowledged. The default.
	DurabilitySync = "sync"
	// DurabilityAsync: appends are flushed to disk lazily, even on a node that
	// syncs always (JetStream's persist mode async): a power failure can lose
	// acknowledged records. For data one can afford to lose: metrics, caches.
	DurabilityAsync = "async"
)

// ParseDurability reads a topic's durability: sync (or always, the same) or
// async, in any case.
func ParseDurability(s string) (string, error) {
	switch d := strings.ToLower(strings.TrimSpace(s)); d {
	case DurabilitySync, DurabilityAsync:
		return d, nil
	case "always":
		return DurabilitySync, nil
	}
	return "", fmt.Errorf("durability %q is not known: use sync (every append on disk before it is acknowledged) or async (flushed lazily; a power failure can lose acknowledged records)", s)
}

// DurabilityOrDefault is c's durability as describe shows it: sync when not set.
func (c TopicConfig) DurabilityOrDefault() string {
	if c.Durability == "" {
		return DurabilitySync
	}
	return c.Durability
}

// Async reports whether c's partitions flush lazily (DurabilityAsync).
func (c TopicConfig) Async() bool { return c.Durability == DurabilityAsync }

// CanonicalConfigKey maps a setting's qxd or Kafka name (any case) to its qxd name.
// The error names the key and lists the keys that can be changed.
func CanonicalConfigKey(key string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(key))
	if k == ConfigDurability {
		return k, nil
	}
	for _, c := range ConfigKeys {
		if k == c || k == kafkaConfigNames[c] {
			return c, nil
		}
	}
	if why, ok := fixedConfig[k]; ok {
		return "", Errorf(ErrInvalidConfig, "config key %q cannot be changed: %s", key, why)
	}
	return "", Errorf(ErrInvalidConfig, "unknown config key %q: use %s", key, validConfigKeys())
}

func validConfigKeys() string {
	var b strings.Builder
	for i, k := range ConfigKeys {
		switch {
		case i == len(ConfigKeys)-1:
			b.WriteString(" or ")
		case i > 0:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", k, kafkaConfigNames[k])
	}
	b.WriteString(", and durability (sync or async)")
	return b.String()
}

// ConfigSource says where a topic setting's value comes from.
type ConfigSource string

// Sources of a topic setting.
const (
	// ConfigSourceDefault: the setting was never given; it has the default.
	ConfigSourceDefault ConfigSource = "default"
	// ConfigSourceSet: the setting was given, at creation or by AlterConfig.
	ConfigSourceSet ConfigSource = "set"
)

// ConfigSource reports where the value of setting key (one of ConfigKeys) comes
// from: set when it was given (t.Overrides) or differs from the default (a topic
// created before qxd recorded overrides), else the default.
func (t TopicMeta) ConfigSource(key string) ConfigSource {
	if slices.Contains(t.Overrides, key) {
		return ConfigSourceSet
	}
	d := TopicConfig{Compact: t.Config.Compact}.WithDefaults()
	var same bool
	switch key {
	case ConfigRetention:
		same = t.Config.Retention == d.Retention
	case ConfigRetentionBytes:
		same = t.Config.RetentionBytes == d.RetentionBytes
	case ConfigMaxRecordBytes:
		same = t.Config.MaxMessageBytes == d.MaxMessageBytes
	case ConfigDeleteRetention:
		same = t.Config.DeleteRetention == d.DeleteRetention
	}
	if same {
		return ConfigSourceDefault
	}
	return ConfigSourceSet
}

// ConfigOverrides returns the keys of ConfigKeys that a create request's config
// gives (non-zero before defaults).
func ConfigOverrides(c TopicConfig) []string {
	var keys []string
	if c.Retention != 0 {
		keys = append(keys, ConfigRetention)
	}
	if c.RetentionBytes != 0 {
		keys = append(keys, ConfigRetentionBytes)
	}
	if c.MaxMessageBytes != 0 {
		keys = append(keys, ConfigMaxRecordBytes)
	}
	if c.Compact && c.DeleteRetention != 0 {
		keys = append(keys, ConfigDeleteRetention)
	}
	return keys
}

// WithConfig returns c, the config of a topic being created (name for errors),
// with the keys of set applied as AlterConfig reads them. Only those keys are set:
// the others stay zero, so they take their defaults and do not count as overrides.
func WithConfig(name string, c TopicConfig, set map[string]string) (TopicConfig, error) {
	if len(set) == 0 {
		return c, nil
	}
	full, over, err := AlterConfig(TopicMeta{Name: name, Config: c.WithDefaults()}, set, nil)
	if err != nil {
		return c, err
	}
	for _, k := range over {
		switch k {
		case ConfigRetention:
			c.Retention = full.Retention
		case ConfigRetentionBytes:
			c.RetentionBytes = full.RetentionBytes
		case ConfigMaxRecordBytes:
			c.MaxMessageBytes = full.MaxMessageBytes
		case ConfigDeleteRetention:
			c.DeleteRetention = full.DeleteRetention
		}
	}
	for k := range set {
		if strings.EqualFold(strings.TrimSpace(k), ConfigDurability) {
			c.Durability = full.Durability
		}
	}
	return c, nil
}

// AlterConfig applies set (key → value) and then del (keys back to their default)
// to topic t's config and returns the new config and overrides. Keys are qxd's or
// Kafka's names (see CanonicalConfigKey); values are read as the CLI reads them
// (ParseDuration, ParseSize), and a bare number for a Kafka key ending in .ms is
// milliseconds, as Kafka reads it. A key both set and deleted, an unknown or fixed
// key, a bad value or a config Validate refuses is an error naming it, and t is
// left as it was.
func AlterConfig(t TopicMeta, set map[string]string, del []string) (TopicConfig, []string, error) {
	if len(set) == 0 && len(del) == 0 {
		return t.Config, t.Overrides, Errorf(ErrInvalidConfig, "no config change given: set a key (e.g. retention=3d) or delete one; keys: %s", validConfigKeys())
	}
	c := t.Config
	over := slices.Clone(t.Overrides)
	seen := map[string]string{} // canonical key → how it was given
	defaults := TopicConfig{Compact: c.Compact}.WithDefaults()
	// Apply in a fixed order so that errors do not depend on map order.
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, given := range keys {
		key, err := CanonicalConfigKey(given)
		if err != nil {
			return t.Config, t.Overrides, err
		}
		if prev, ok := seen[key]; ok {
			return t.Config, t.Overrides, Errorf(ErrInvalidConfig, "config key %s is given twice (%s and %s): give it once", key, prev, given)
		}
		seen[key] = given
		if err := setConfig(&c, key, given, set[given]); err != nil {
			return t.Config, t.Overrides, err
		}
		if key == ConfigDurability {
			continue // not one of ConfigKeys: shown on its own, not as an override
		}
		if !slices.Contains(over, key) {
			over = append(over, key)
		}
	}
	for _, given := range del {
		key, err := CanonicalConfigKey(given)
		if err != nil {
			return t.Config, t.Overrides, err
		}
		if prev, ok := seen[key]; ok {
			return t.Config, t.Overrides, Errorf(ErrInvalidConfig, "config key %s is both set (%s) and deleted (%s): give one", key, prev, given)
		}
		seen[key] = given
		if key == ConfigDeleteRetention && !c.Compact {
			return t.Config, t.Overrides, Errorf(ErrInvalidConfig, "config key %s applies to compacted topics only, and topic %q is not compacted", given, t.Name)
		}
		switch key {
		case ConfigRetention:
			c.Retention = defaults.Retention
		case ConfigRetentionBytes:
			c.RetentionBytes = defaults.RetentionBytes
		case ConfigMaxRecordBytes:
			c.MaxMessageBytes = defaults.MaxMessageBytes
		case ConfigDeleteRetention:
			c.DeleteRetention = defaults.DeleteRetention
		case ConfigDurability:
			c.Durability = ""
		}
		over = slices.DeleteFunc(over, func(k string) bool { return k == key })
	}
	if c.Async() && c.Replicas != 1 {
		return t.Config, t.Overrides, Errorf(ErrInvalidConfig,
			"config durability=async: topic %q has %d replicas, and async needs 1 (JetStream syncs a replicated partition through its RAFT log); keep durability sync", t.Name, c.Replicas)
	}
	if err := c.Validate(); err != nil {
		return t.Config, t.Overrides, err
	}
	slices.SortFunc(over, func(a, b string) int { return slices.Index(ConfigKeys, a) - slices.Index(ConfigKeys, b) })
	return c, over, nil
}

func setConfig(c *TopicConfig, key, given, value string) error {
	bad := func(err error) error {
		return Errorf(ErrInvalidConfig, "config %s=%s: %v", given, value, err)
	}
	kafkaMs := strings.HasSuffix(strings.ToLower(given), ".ms")
	switch key {
	case ConfigRetention:
		if c.Compact {
			return Errorf(ErrInvalidConfig, "config key %s does not apply to a compacted topic: it keeps the latest record per key; set %s for its tombstones", given, ConfigDeleteRetention)
		}
		d, err := parseConfigDuration(value, kafkaMs)
		if err != nil {
			return bad(err)
		}
		c.Retention = d
	case ConfigDeleteRetention:
		if !c.Compact {
			return Errorf(ErrInvalidConfig, "config key %s applies to compacted topics only: set %s for this topic's records", given, ConfigRetention)
		}
		d, err := parseConfigDuration(value, kafkaMs)
		if err != nil {
			return bad(err)
		}
		if d < 0 {
			return bad(fmt.Errorf("tombstones cannot be kept forever: give a duration such as 1d"))
		}
		c.DeleteRetention = d
	case ConfigRetentionBytes:
		n, err := ParseSize(value, true)
		if err != nil {
			return bad(err)
		}
		c.RetentionBytes = n
	case ConfigMaxRecordBytes:
		n, err := ParseSize(value, false)
		if err != nil {
			return bad(err)
		}
		if n < 1024 || n > MaxMessageBytesLimit {
			return bad(fmt.Errorf("out of range: use 1KiB (1024) to 8MiB (%d)", MaxMessageBytesLimit))
		}
		c.MaxMessageBytes = int32(n)
	case ConfigDurability:
		d, err := ParseDurability(value)
		if err != nil {
			return Errorf(ErrInvalidConfig, "config %s=%s: %v", given, value, err)
		}
		c.Durability = d
	}
	return nil
}

// parseConfigDuration reads a duration setting; with kafkaMs a bare number is
// milliseconds (Kafka's retention.ms).
func parseConfigDuration(value string, kafkaMs bool) (time.Duration, error) {
	if kafkaMs {
		if ms, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil {
			switch {
			case ms == -1:
				return -1, nil
			case ms <= 0 || ms > math.MaxInt64/int64(time.Millisecond):
				return 0, fmt.Errorf("%d ms is out of range: use a positive number of milliseconds, or -1 for no limit", ms)
			}
			return time.Duration(ms) * time.Millisecond, nil
		}
	}
	return ParseDuration(value)
}

const day = 24 * time.Hour

// ParseDuration reads a retention: a Go duration ("12h", "90m"), days with a d
// suffix ("7d", "1d12h", "1.5d"), or "-1" / "forever" / "unlimited" / "infinite"
// for no limit, which it returns as -1. The error quotes s and says what to give.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "-1", "forever", "unlimited", "infinite":
		return -1, nil
	}
	d, err := parseDays(t)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration: use e.g. 7d, 1d12h, 12h or 30m, or -1 (forever) for no limit", s)
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

var sizeUnits = []struct {
	suffix string
	n      int64
}{
	// Longest suffixes first, so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseSize reads a byte size: plain bytes, or a number with a suffix KiB, MiB, GiB,
// TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000), in any case. With
// unlimited, "-1", "unlimited" and "none" give -1. The error quotes s and says what
// to give.
func ParseSize(s string, unlimited bool) (int64, error) {
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
			return 0, fmt.Errorf("%q is out of range: %s", s, hint)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a size: %s", s, hint)
	}
	v := f * float64(mult)
	if v < 1 || v >= math.MaxInt64 || v != math.Trunc(v) {
		return 0, fmt.Errorf("%q is not a whole positive number of bytes: %s", s, hint)
	}
	return int64(v), nil
}
