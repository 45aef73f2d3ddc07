package kafka_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestFetchSessionsOff: a node with 0 fetch session slots answers as a Kafka
// broker with max.incremental.fetch.session.cache.slots=0 does: a full fetch at
// epoch 0 gets its records and session id 0 (none made), an incremental fetch
// FETCH_SESSION_ID_NOT_FOUND, and a Kafka client, taking the hint, consumes
// with full fetches.
func TestFetchSessionsOff(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.KafkaFetchSessionSlots = 0
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := ctxFor(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "no-sessions", qxd.TopicConfig{Partitions: 2})
	cl := kafkaClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo(t, ctx, cl, "no-sessions", 0, 1, 1)

	for _, version := range []int16{7, 12, 13, 18} {
		f := &sessionFetcher{t: t, addr: n.KafkaAddr(), version: version, topic: "no-sessions"}
		if version >= 13 {
			f.id = topicID(t, ctx, cl, "no-sessions")
		}
		resp := f.fetch([]fetchPart{{0, 0}, {1, 0}}, nil, 0)
		if resp.ErrorCode != 0 || resp.SessionID != 0 {
			t.Fatalf("v%d full fetch at epoch 0: code %d, session %d; want 0 and no session", version, resp.ErrorCode, resp.SessionID)
		}
		got := answered(t, resp)
		if got[0] != "1 records, hw 1" || got[1] != "2 records, hw 2" {
			t.Fatalf("v%d full fetch without a session answered %v, want partition 0's record and partition 1's two", version, got)
		}
		f.session, f.epoch = 12345, 1
		if resp := f.fetch(nil, nil, 0); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
			t.Fatalf("v%d incremental fetch: %v, want FETCH_SESSION_ID_NOT_FOUND", version, kerr.ErrorForCode(resp.ErrorCode))
		}
	}
	if st, ok := n.KafkaFetchSessions(); !ok || st.Sessions != 0 || st.Partitions != 0 {
		t.Fatalf("node holds %+v (listener %v), want no sessions", st, ok)
	}

	// A Kafka client reads everything with full fetches.
	cons := kafkaClient(t, n, kgo.ConsumeTopics("no-sessions"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	read := 0
	for read < 3 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of 3 records: %v", read, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		read += fs.NumRecords()
	}
}
