package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// failingReadBackend fails every partition read with err.
type failingReadBackend struct {
	noBackend
	err error
}

func (b failingReadBackend) Read(context.Context, string, int32, int64, int) (ReadResult, error) {
	return ReadResult{LogStart: -1, HighWatermark: -1}, b.err
}

// A partition whose read failed is answered with a code Kafka's leaders give in
// a fetch: the Java consumer throws IllegalStateException ("Unexpected error code
// 7 while fetching at offset 60") on REQUEST_TIMED_OUT, which a read timing out
// while the partition's leader moved answered before.
func TestFetchAnswersReadFailuresWithKafkasCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int16
	}{
		{context.DeadlineExceeded, semantics.ErrNotLeader.Code},
		{fmt.Errorf("read partition 0: %w", context.DeadlineExceeded), semantics.ErrNotLeader.Code},
		{semantics.Errorf(semantics.ErrTimeout, "read partition 0: no answer in time"), semantics.ErrNotLeader.Code},
		{semantics.Errorf(semantics.ErrUnavailable, "no node answered"), semantics.ErrNotLeader.Code},
		{semantics.Errorf(semantics.ErrTopicNotReady, "topic is not ready"), semantics.ErrNotLeader.Code},
		{semantics.Errorf(semantics.ErrNotLeader, "not the leader"), semantics.ErrNotLeader.Code},
		{semantics.Errorf(semantics.ErrCorruptMessage, "batch at offset 3 fails its CRC"), semantics.ErrCorruptMessage.Code},
		{semantics.Errorf(semantics.ErrUnknownTopic, "no such topic"), semantics.ErrUnknownTopic.Code},
		{semantics.Errorf(semantics.ErrInvalidRequest, "something odd"), semantics.ErrUnknown.Code},
	} {
		l, err := Listen(Config{Listen: "127.0.0.1:0", Backend: failingReadBackend{err: tc.err}})
		if err != nil {
			t.Fatal(err)
		}
		rc := dialRaw(t, l, 10*time.Second)
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 500, 1, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "orders"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 60, 1<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		rc.send(1, req)
		_, body := rc.answer()
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(11)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("%v: decode the fetch answer: %v", tc.err, err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("%v: answer %+v, want one partition", tc.err, resp.Topics)
		}
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != tc.want {
			t.Errorf("read failing with %q: fetch answered code %d, want %d", tc.err, got, tc.want)
		}
		l.Close(context.Background())
	}
}
