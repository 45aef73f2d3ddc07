package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestKafkaOffsetDelete: OffsetDelete removes an empty group's commits of the
// partitions asked, leaving the others, and refuses a topic the group's members
// consume (GROUP_SUBSCRIBED_TO_TOPIC), as Kafka does.
func TestKafkaOffsetDelete(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "od", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 60*time.Second)
	adm := kadm.NewClient(kafkaClient(t, n))
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "od", Partition: 0, At: 3, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "od", Partition: 1, At: 5, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "od-group", os); err != nil {
		t.Fatal(err)
	}
	resp, err := adm.DeleteOffsets(ctx, "od-group", kadm.TopicsSet{"od": {0: {}}})
	if err != nil || resp.Error() != nil {
		t.Fatalf("delete offsets of od/0: %v, %v", err, resp.Error())
	}
	got, err := adm.FetchOffsets(ctx, "od-group")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Lookup("od", 0); ok {
		t.Errorf("od/0 still has a committed offset after OffsetDelete: %+v", got)
	}
	if o, ok := got.Lookup("od", 1); !ok || o.At != 5 {
		t.Errorf("od/1 committed %+v (found %v), want 5 kept", o, ok)
	}

	// A member consuming od: its offsets stay.
	member := kafkaClient(t, n, kgo.ConsumeTopics("od"), kgo.ConsumerGroup("od-group"))
	for deadline := time.Now().Add(30 * time.Second); ; {
		member.PollRecords(ctxFor(t, time.Second), 1)
		d, err := adm.DescribeGroups(ctx, "od-group")
		if err == nil && d["od-group"].State == "Stable" && len(d["od-group"].Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member did not join: %+v %v", d, err)
		}
	}
	resp, err = adm.DeleteOffsets(ctx, "od-group", kadm.TopicsSet{"od": {1: {}}})
	if err == nil {
		err = resp.Error()
	}
	if !errors.Is(err, kerr.GroupSubscribedToTopic) {
		t.Fatalf("delete offsets of a consumed topic: %v, want GROUP_SUBSCRIBED_TO_TOPIC", err)
	}
	if _, err := adm.DeleteOffsets(ctx, "no-such-group", kadm.TopicsSet{"od": {0: {}}}); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatalf("delete offsets of an unknown group: %v, want GROUP_ID_NOT_FOUND", err)
	}
}
