package groups_test

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// A Kafka client's assignment (Kafka's ConsumerMemberAssignment, binary) decodes
// too, so that describing a group of Kafka clients shows their partitions.
func TestDecodeKafkaAssignment(t *testing.T) {
	var a kmsg.ConsumerMemberAssignment
	a.Version = 1
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "bills", Partitions: []int32{2, 0}}, {Topic: "a.b", Partitions: []int32{1}}}
	got, err := groups.DecodeAssignment(a.AppendTo(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []semantics.TopicPartition{{Topic: "bills", Partition: 2}, {Topic: "bills", Partition: 0}, {Topic: "a.b", Partition: 1}}
	if !slices.Equal(got.Partitions, want) {
		t.Fatalf("decoded %v, want %v", got.Partitions, want)
	}
	if _, err := groups.DecodeAssignment([]byte{0, 9, 0xff}); err == nil {
		t.Fatal("garbage decoded without an error")
	}
}
