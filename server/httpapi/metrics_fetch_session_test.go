package httpapi_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/kafka"
)

// TestMetricsFetchSessions makes, changes and closes fetch sessions on the
// node's Kafka listener; each scrape shows the sessions held, the partitions
// they hold and the evictions (none: no session is old enough to evict).
func TestMetricsFetchSessions(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	cfg.KafkaFetchSessionSlots = 2
	base := withHTTP(t, &cfg)
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 2*time.Minute)
	qxdtest.CreateTopic(t, c, "sessions", qxd.TopicConfig{Partitions: 3})
	kc, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()), kgo.MaxVersions(kversion.V2_8_0())) // Fetch v12: topics by name
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()

	fetch := func(id, epoch int32, parts []int32, forget []int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes, req.SessionID, req.SessionEpoch = 12, 1<<20, id, epoch
		if len(parts) > 0 {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = "sessions"
			for _, p := range parts {
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.Partition, fp.PartitionMaxBytes = p, 1<<20
				ft.Partitions = append(ft.Partitions, fp)
			}
			req.Topics = append(req.Topics, ft)
		}
		if len(forget) > 0 {
			ff := kmsg.NewFetchRequestForgottenTopic()
			ff.Topic, ff.Partitions = "sessions", forget
			req.ForgottenTopics = append(req.ForgottenTopics, ff)
		}
		resp, err := req.RequestWith(ctx, kc)
		if err != nil {
			t.Fatal(err)
		}
		if code := kafka.FirstErrorCode(resp); code != 0 {
			t.Fatalf("fetch session %d epoch %d: code %d", id, epoch, code)
		}
		return resp
	}
	expect := func(step string, sessions, partitions float64) {
		t.Helper()
		fams := scrape(t, base)
		for _, m := range []struct {
			name string
			want float64
		}{
			{"qxd_kafka_fetch_sessions", sessions},
			{"qxd_kafka_fetch_session_partitions", partitions},
			{"qxd_kafka_fetch_session_evictions_total", 0},
		} {
			if got, ok := value(fams, m.name); !ok || got != m.want {
				t.Errorf("%s: %s = %v (present %v), want %v", step, m.name, got, ok, m.want)
			}
		}
	}

	expect("before any fetch", 0, 0)
	a := fetch(0, 0, []int32{0, 1, 2}, nil).SessionID
	b := fetch(0, 0, []int32{0}, nil).SessionID
	if a == 0 || b == 0 {
		t.Fatalf("sessions %d and %d, want two", a, b)
	}
	expect("two sessions", 2, 4)
	if id := fetch(0, 0, []int32{1}, nil).SessionID; id != 0 {
		t.Fatalf("a third session %d in 2 slots", id)
	}
	expect("the cache full", 2, 4)
	fetch(a, 1, nil, []int32{2})
	expect("a forgot a partition", 2, 3)
	fetch(b, -1, []int32{0}, nil)
	expect("b closed", 1, 2)
}
