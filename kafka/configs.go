package kafka

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// topicConfig is one topic config as Kafka names and shows it.
type topicConfig struct {
	name, value string
	set         bool // set at create or alter, not the default
	readOnly    bool // qxd cannot change it after create
	kind        kmsg.ConfigType
}

// topicConfigs are t's configs by Kafka's names, in a fixed order.
func topicConfigs(t semantics.TopicMeta) []topicConfig {
	c := t.Config
	ms := func(d int64) string {
		if d < 0 {
			return "-1"
		}
		return strconv.FormatInt(d/1e6, 10)
	}
	policy := "delete"
	if c.Compact {
		policy = "compact"
	}
	out := []topicConfig{
		{name: "cleanup.policy", value: policy, set: c.Compact, readOnly: true, kind: kmsg.ConfigTypeList},
		{name: "max.message.bytes", value: strconv.Itoa(int(c.MaxMessageBytes)), set: t.ConfigSource(semantics.ConfigMaxRecordBytes) == semantics.ConfigSourceSet, kind: kmsg.ConfigTypeInt},
		{name: "retention.bytes", value: strconv.FormatInt(c.RetentionBytes, 10), set: t.ConfigSource(semantics.ConfigRetentionBytes) == semantics.ConfigSourceSet, kind: kmsg.ConfigTypeLong},
	}
	if c.Compact {
		out = append(out, topicConfig{name: "delete.retention.ms", value: ms(int64(c.DeleteRetention)), set: t.ConfigSource(semantics.ConfigDeleteRetention) == semantics.ConfigSourceSet, kind: kmsg.ConfigTypeLong})
	} else {
		out = append(out, topicConfig{name: "retention.ms", value: ms(int64(c.Retention)), set: t.ConfigSource(semantics.ConfigRetention) == semantics.ConfigSourceSet, kind: kmsg.ConfigTypeLong})
	}
	return out
}

// source is Kafka's config source of c: DYNAMIC_TOPIC_CONFIG when set, else
// DEFAULT_CONFIG.
func (c topicConfig) source() kmsg.ConfigSource {
	if c.set {
		return kmsg.ConfigSourceDynamicTopicConfig
	}
	return kmsg.ConfigSourceDefaultConfig
}
