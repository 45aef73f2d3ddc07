package kafka_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// An OffsetCommit of a negative offset (KafkaJS's resetOffsets commits -2 for
// earliest and -1 for latest) is refused INVALID_REQUEST, and the group keeps the
// offset it had: qxd stores only offsets to read from (docs/kafka.md, "Groups").
func TestOffsetCommitNegativeRefused(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "oc-negative", qxd.TopicConfig{Partitions: 1})
	addr := n.KafkaAddr()
	if code := offsetCommit(t, addr, 5, "oc-negative-group", "", -1, "oc-negative", 3); code != 0 {
		t.Fatalf("commit of offset 3: %v", kerr.ErrorForCode(code))
	}
	for _, off := range []int64{-2, -1} {
		if code := offsetCommit(t, addr, 5, "oc-negative-group", "", -1, "oc-negative", off); code != kerr.InvalidRequest.Code {
			t.Errorf("commit of offset %d: %v, want INVALID_REQUEST", off, kerr.ErrorForCode(code))
		}
	}
	d, err := c.Admin().DescribeGroup(ctxFor(t, 30*time.Second), "oc-negative-group")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Partitions) != 1 || d.Partitions[0].Committed != 3 {
		t.Errorf("the SDK sees the group's commits %+v, want offset 3 of partition 0", d.Partitions)
	}
}
