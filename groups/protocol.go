package groups

import (
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// ConsumerProtocolType is the protocol type of consumer groups, as in Kafka.
const ConsumerProtocolType = "consumer"

// ConsumerMetadata is what a consumer member sends with JoinGroup for each assignor
// it supports (Kafka's ConsumerProtocolSubscription): its topics, and what it owned
// in the previous generation for sticky assignment.
type ConsumerMetadata struct {
	Topics     []string                   `json:"topics"`
	Owned      []semantics.TopicPartition `json:"owned,omitempty"`
	Generation int32                      `json:"generation"`
}

// ConsumerAssignment is what the leader assigns a consumer member (Kafka's
// ConsumerProtocolAssignment).
type ConsumerAssignment struct {
	Partitions []semantics.TopicPartition `json:"partitions"`
}

// EncodeMetadata encodes m for a JoinGroup protocol.
func EncodeMetadata(m ConsumerMetadata) []byte {
	b, _ := json.Marshal(m)
	return b
}

// DecodeMetadata decodes a member's protocol metadata.
func DecodeMetadata(b []byte) (ConsumerMetadata, error) {
	var m ConsumerMetadata
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("consumer metadata: %w", err)
	}
	return m, nil
}

// EncodeAssignment encodes a for SyncGroup.
func EncodeAssignment(a ConsumerAssignment) []byte {
	if a.Partitions == nil {
		a.Partitions = []semantics.TopicPartition{}
	}
	b, _ := json.Marshal(a)
	return b
}

// DecodeAssignment decodes a member's assignment; empty input is no partitions.
// Kafka clients' assignments (Kafka's ConsumerMemberAssignment, binary, starting
// with its int16 version, where qxd's start with '{') decode too, so that a group of
// Kafka clients is described with its partitions.
func DecodeAssignment(b []byte) (ConsumerAssignment, error) {
	var a ConsumerAssignment
	if len(b) == 0 {
		return a, nil
	}
	if b[0] != '{' {
		var ka kmsg.ConsumerMemberAssignment
		if err := ka.ReadFrom(b); err != nil {
			return a, fmt.Errorf("consumer assignment (Kafka's format): %w", err)
		}
		a.Partitions = []semantics.TopicPartition{}
		for _, t := range ka.Topics {
			for _, p := range t.Partitions {
				a.Partitions = append(a.Partitions, semantics.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		return a, nil
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("consumer assignment: %w", err)
	}
	return a, nil
}
