package semantics

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxTopicNameLen is the longest topic name qxd accepts. Kafka allows 249 characters;
// qxd allows 245 because a partition's stream name adds the prefix "QXD_" and a
// partition suffix, and JetStream caps stream names at 255 characters.
const MaxTopicNameLen = 245

// MaxPartitions is the largest partition count a topic may have. Each partition is a
// JetStream stream, and with replication its own RAFT group.
const MaxPartitions = 10000

const (
	streamPrefix = "QXD_"
	// dotEscape stands for '.' in stream names, subject tokens and KV keys: it is not
	// a legal topic character, so the mapping is reversible, and all three allow it.
	dotEscape = "="
)

// ValidateTopicName applies Kafka's topic name rules: 1 to MaxTopicNameLen characters
// from [a-zA-Z0-9._-], and not "." or "..". The error wraps ErrInvalidTopic and says
// what to change; a character that is not allowed is named as it was typed, with its
// code point and its position counted in characters from 1.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return Errorf(ErrInvalidTopic, "topic name is empty: give a name of 1 to %d characters from [a-zA-Z0-9._-]", MaxTopicNameLen)
	case name == "." || name == "..":
		return Errorf(ErrInvalidTopic, "topic name %q is not allowed: '.' and '..' are reserved", name)
	}
	pos := 0
	for i, c := range name {
		pos++
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		if c == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(name[i:]); size == 1 {
				return Errorf(ErrInvalidTopic, "topic name %q has the byte %#x at position %d, which is not UTF-8: use only [a-zA-Z0-9._-]", name, name[i], pos)
			}
		}
		return Errorf(ErrInvalidTopic, "topic name %q has the character %q (%U) at position %d: use only [a-zA-Z0-9._-]", name, c, c, pos)
	}
	// Every character is ASCII here, so bytes and characters count the same.
	if len(name) > MaxTopicNameLen {
		return Errorf(ErrInvalidTopic, "topic name %.20q… is %d characters long: the limit is %d", name, len(name), MaxTopicNameLen)
	}
	return nil
}

// EncodeTopic maps a valid topic name to a token usable in stream names, subjects and
// KV keys, replacing '.' with '='. DecodeTopic reverses it.
func EncodeTopic(topic string) string { return strings.ReplaceAll(topic, ".", dotEscape) }

// DecodeTopic reverses EncodeTopic.
func DecodeTopic(token string) string { return strings.ReplaceAll(token, dotEscape, ".") }

// StreamName is the JetStream stream that stores partition p of topic:
// "QXD_<encoded topic>_<p>".
func StreamName(topic string, p int32) string {
	return streamPrefix + EncodeTopic(topic) + "_" + strconv.Itoa(int(p))
}

// ParseStreamName reverses StreamName. ok is false for streams that are not qxd
// partitions.
func ParseStreamName(stream string) (topic string, p int32, ok bool) {
	rest, found := strings.CutPrefix(stream, streamPrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || n < 0 || strconv.Itoa(int(n)) != rest[i+1:] {
		return "", 0, false
	}
	topic = DecodeTopic(rest[:i])
	if ValidateTopicName(topic) != nil {
		return "", 0, false
	}
	return topic, int32(n), true
}

// TopicKey is the key of topic's record in the topics KV bucket.
func TopicKey(topic string) string { return EncodeTopic(topic) }

// PartitionString renders "topic/p" for messages and logs.
func PartitionString(topic string, p int32) string { return fmt.Sprintf("%s/%d", topic, p) }

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

func (tp TopicPartition) String() string { return PartitionString(tp.Topic, tp.Partition) }
