package semantics_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

func TestAlterConfig(t *testing.T) {
	t.Parallel()
	plain := semantics.TopicMeta{Name: "t", Config: semantics.TopicConfig{}.WithDefaults()}
	compact := semantics.TopicMeta{Name: "c", Config: semantics.TopicConfig{Compact: true}.WithDefaults()}
	cases := []struct {
		name  string
		t     semantics.TopicMeta
		set   map[string]string
		del   []string
		check func(semantics.TopicConfig) bool
		over  []string
		err   string
	}{
		{name: "qxd names", t: plain, set: map[string]string{"retention": "3d", "retention-bytes": "1GiB", "max-record-bytes": "2MiB"},
			check: func(c semantics.TopicConfig) bool {
				return c.Retention == 72*time.Hour && c.RetentionBytes == 1<<30 && c.MaxMessageBytes == 2<<20
			},
			over: []string{"retention", "retention-bytes", "max-record-bytes"}},
		{name: "kafka names, ms", t: plain, set: map[string]string{"RETENTION.MS": "60000", "retention.bytes": "-1"},
			check: func(c semantics.TopicConfig) bool { return c.Retention == time.Minute && c.RetentionBytes == -1 },
			over:  []string{"retention", "retention-bytes"}},
		{name: "kafka ms key takes a duration too", t: plain, set: map[string]string{"retention.ms": "2h"},
			check: func(c semantics.TopicConfig) bool { return c.Retention == 2*time.Hour }, over: []string{"retention"}},
		{name: "forever", t: plain, set: map[string]string{"retention.ms": "-1"},
			check: func(c semantics.TopicConfig) bool { return c.Retention == -1 }, over: []string{"retention"}},
		{name: "delete to default", t: semantics.TopicMeta{Name: "t", Config: semantics.TopicConfig{Retention: time.Hour}.WithDefaults(), Overrides: []string{"retention"}},
			del:   []string{"retention.ms"},
			check: func(c semantics.TopicConfig) bool { return c.Retention == semantics.DefaultRetention }, over: []string{}},
		{name: "compacted delete retention", t: compact, set: map[string]string{"delete.retention.ms": "3600000"},
			check: func(c semantics.TopicConfig) bool { return c.DeleteRetention == time.Hour }, over: []string{"delete-retention"}},
		{name: "unknown", t: plain, set: map[string]string{"segment.ms": "1"}, err: `unknown config key "segment.ms": use retention (retention.ms),`},
		{name: "fixed", t: plain, set: map[string]string{"cleanup.policy": "compact"}, err: "cleanup.policy is fixed"},
		{name: "ms out of range", t: plain, set: map[string]string{"retention.ms": "0"}, err: "0 ms is out of range"},
		{name: "too short", t: plain, set: map[string]string{"retention": "10ms"}, err: "too short"},
		{name: "twice", t: plain, set: map[string]string{"retention": "1d", "retention.ms": "1000"}, err: "given twice"},
		{name: "retention on compacted", t: compact, set: map[string]string{"retention": "1d"}, err: "does not apply to a compacted topic"},
		{name: "delete retention forever", t: compact, set: map[string]string{"delete-retention": "-1"}, err: "cannot be kept forever"},
		{name: "delete retention on plain", t: plain, del: []string{"delete-retention"}, err: "compacted topics only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, over, err := semantics.AlterConfig(tc.t, tc.set, tc.del)
			if tc.err != "" {
				if !errors.Is(err, semantics.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want INVALID_CONFIG containing %q", err, tc.err)
				}
				if c != tc.t.Config || !slices.Equal(over, tc.t.Overrides) {
					t.Fatalf("a refused change returned %+v %v, not the topic's config", c, over)
				}
				return
			}
			if err != nil || !tc.check(c) || !slices.Equal(over, tc.over) {
				t.Fatalf("AlterConfig = %+v, %v, %v; want overrides %v", c, over, err, tc.over)
			}
		})
	}
}

func TestConfigSource(t *testing.T) {
	t.Parallel()
	tm := semantics.TopicMeta{Config: semantics.TopicConfig{Retention: time.Hour}.WithDefaults()}
	// A record written before overrides were kept: a value off the default is set.
	if tm.ConfigSource(semantics.ConfigRetention) != semantics.ConfigSourceSet || tm.ConfigSource(semantics.ConfigRetentionBytes) != semantics.ConfigSourceDefault {
		t.Errorf("sources without overrides: %s %s", tm.ConfigSource(semantics.ConfigRetention), tm.ConfigSource(semantics.ConfigRetentionBytes))
	}
	// A value given equal to the default is still set.
	tm.Overrides = []string{semantics.ConfigRetentionBytes}
	if tm.ConfigSource(semantics.ConfigRetentionBytes) != semantics.ConfigSourceSet {
		t.Errorf("a value given equal to the default is not set")
	}
	if got := semantics.ConfigOverrides(semantics.TopicConfig{Partitions: 3, MaxMessageBytes: 2048}); !slices.Equal(got, []string{semantics.ConfigMaxRecordBytes}) {
		t.Errorf("ConfigOverrides = %v", got)
	}
}

func TestWithConfigSetsOnlyGivenKeys(t *testing.T) {
	c, err := semantics.WithConfig("orders", semantics.TopicConfig{Partitions: 3}, map[string]string{"retention.ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention != time.Minute || c.RetentionBytes != 0 || c.MaxMessageBytes != 0 || c.Partitions != 3 {
		t.Fatalf("WithConfig = %+v, want retention 1m and the rest as given", c)
	}
	if got := semantics.ConfigOverrides(c); len(got) != 1 {
		t.Fatalf("overrides %v, want only the retention", got)
	}
	if _, err := semantics.WithConfig("orders", semantics.TopicConfig{}, map[string]string{"nope": "1"}); err == nil {
		t.Fatal("unknown key accepted")
	}
}
