package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/httpapi"
)

// batchOf builds a RecordBatch of n records, values prefixed with tag.
func batchOf(t *testing.T, n int, tag string) []byte {
	t.Helper()
	var b semantics.BatchBuilder
	for i := range n {
		b.Append(&semantics.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%s-%d", tag, i))})
	}
	batch, err := b.Build(nil, semantics.NoProducer, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

// TestMetricsFetchedAndKafka fetches known batches through the node's fetch
// service and sends known requests to its Kafka listener; the scrape counts
// exactly those records and bytes, and the Kafka requests by API and error.
func TestMetricsFetchedAndKafka(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	base := withHTTP(t, &cfg)
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 2*time.Minute)
	qxdtest.CreateTopic(t, c, "fetched", qxd.TopicConfig{Partitions: 1})
	b1, b2 := batchOf(t, 3, "a"), batchOf(t, 4, "b")
	for _, b := range [][]byte{b1, b2} {
		if _, err := n.Writers().Append(ctx, "fetched", 0, b); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(off int64) (server.FetchResult, error) {
		return n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: "fetched", Partition: 0, Offset: off})
	}
	if r, err := fetch(0); err != nil || len(r.Batches) != 2 {
		t.Fatalf("fetch from 0: %d batches, %v; want 2", len(r.Batches), err)
	}
	if r, err := fetch(4); err != nil || len(r.Batches) != 1 { // the batch holding offset 4: 3 to 6
		t.Fatalf("fetch from 4: %d batches, %v; want 1", len(r.Batches), err)
	}
	if r, err := fetch(7); err != nil || len(r.Batches) != 0 { // the high watermark: nothing, not counted
		t.Fatalf("fetch from 7: %d batches, %v; want none", len(r.Batches), err)
	}
	if _, err := fetch(99); semantics.CodeOf(err) != semantics.ErrOffsetOutOfRange.Code { // refused, not counted
		t.Fatalf("fetch from 99: %v, want OFFSET_OUT_OF_RANGE", err)
	}

	// Kafka: one metadata request, and one produce to a topic that does not exist.
	byName := kversion.Stable()
	byName.SetMaxKeyVersion(kmsg.Produce.Int16(), 12) // v13 names topics by id only
	kc, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()), kgo.MaxVersions(byName))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, kc); err != nil {
		t.Fatal(err)
	}
	pr := qxdtest.ProduceRequest(0, 1, 5*time.Second, "nope", batchOf(t, 1, "x"))
	resp, err := pr.RequestWith(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != semantics.ErrUnknownTopic.Code {
		t.Fatalf("produce to nope: code %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}

	fams := scrape(t, base)
	expect := func(name string, want float64, labels ...string) {
		t.Helper()
		if got, ok := value(fams, name, labels...); !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	expect("qxd_fetched_records_total", 3+4+4, "topic", "fetched", "partition", "0")
	expect("qxd_fetched_bytes_total", float64(len(b1)+2*len(b2)), "topic", "fetched", "partition", "0")
	expect("qxd_kafka_requests_total", 1, "api", "Produce", "error", "UNKNOWN_TOPIC_OR_PARTITION")
	if v, ok := value(fams, "qxd_kafka_requests_total", "api", "Metadata", "error", "NONE"); !ok || v < 1 {
		t.Errorf("qxd_kafka_requests_total{Metadata,NONE} = %v (present %v), want at least 1", v, ok)
	}
	versions := 0.0
	for _, m := range fams["qxd_kafka_requests_total"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "ApiVersions" {
			versions += m.Counter.GetValue()
		}
	}
	if versions < 1 {
		t.Errorf("qxd_kafka_requests_total{api=ApiVersions} = %v, want at least 1 (the client's first request)", versions)
	}
	if _, ok := value(fams, "qxd_kafka_requests_total", "api", "Produce", "error", "NONE"); ok {
		t.Error("a Produce counted as a success, but none succeeded")
	}
}

// TestMetricsPartitionLimit: with a limit of 2 partition series, a node leading 4
// partitions gives 2 of them series of their own and sums the others under
// (other); a group's offsets are limited the same, and its total lag stays whole.
func TestMetricsPartitionLimit(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	addr := qxdtest.FreeAddr(t)
	cfg.Services = append(cfg.Services, httpapi.Service{Listen: addr, MaxPartitionSeries: 2})
	base := "http://" + addr
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 2*time.Minute)
	qxdtest.CreateTopic(t, c, "wide", qxd.TopicConfig{Partitions: 4})
	total := 0
	for p := range int32(4) {
		b := batchOf(t, int(p)+1, "w")
		if _, err := n.Writers().Append(ctx, "wide", p, b); err != nil {
			t.Fatal(err)
		}
		total += int(p) + 1
	}
	// A group commits offset 0 of every partition: lag 1+2+3+4.
	if _, err := c.Admin().SeekGroup(ctx, "wide-readers", "wide", nil, qxd.AtStart()); err != nil {
		t.Fatal(err)
	}
	var fams = scrape(t, base)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := value(fams, "qxd_group_total_lag", "group", "wide-readers"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no qxd_group_total_lag for wide-readers within 30s")
		}
		time.Sleep(time.Second)
		fams = scrape(t, base)
	}
	series := func(name string) (own int, other float64) {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					if l.GetValue() == "(other)" {
						if m.Counter != nil {
							other += m.Counter.GetValue()
						} else {
							other += m.Gauge.GetValue()
						}
					} else {
						own++
					}
				}
			}
		}
		return own, other
	}
	ownRecords, otherRecords := series("qxd_appended_records_total")
	ownSum := 0.0
	for _, m := range fams["qxd_appended_records_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "partition" && l.GetValue() != "(other)" {
				ownSum += m.Counter.GetValue()
			}
		}
	}
	if ownRecords != 2 || ownSum+otherRecords != float64(total) || otherRecords == 0 {
		t.Errorf("qxd_appended_records_total: %d own series summing %v, (other) %v; want 2 own and all %d records counted", ownRecords, ownSum, otherRecords, total)
	}
	if own, _ := series("qxd_partition_high_watermark"); own != 2 {
		t.Errorf("qxd_partition_high_watermark: %d series, want 2", own)
	}
	if own, other := series("qxd_partition_stored_batches"); own != 2 || other != 2 {
		t.Errorf("qxd_partition_stored_batches: %d own series, (other) %v; want 2 and 2 batches", own, other)
	}
	if own, _ := series("qxd_group_lag"); own != 2 {
		t.Errorf("qxd_group_lag: %d series, want 2", own)
	}
	for _, c := range []struct {
		name  string
		want  float64
		label []string
	}{
		{"qxd_metrics_partitions_over_limit", 2, []string{"kind", "partition"}},
		{"qxd_metrics_partitions_over_limit", 2, []string{"kind", "group_partition"}},
		{"qxd_group_total_lag", float64(total), []string{"group", "wide-readers"}},
	} {
		if got, ok := value(fams, c.name, c.label...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.label, got, ok, c.want)
		}
	}
}
