package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/httpapi"
)

// withHTTP adds the HTTP port on a free address to cfg and returns its base URL.
func withHTTP(t *testing.T, cfg *server.Config) string {
	t.Helper()
	addr := qxdtest.FreeAddr(t)
	cfg.Services = append(cfg.Services, httpapi.Service{Listen: addr})
	return "http://" + addr
}

// get returns the status and body of url.
func get(t *testing.T, url string) (int, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func health(t *testing.T, url string) (int, httpapi.Health) {
	t.Helper()
	code, b, err := get(t, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	var h httpapi.Health
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", url, b, err)
	}
	return code, h
}

func TestProbesSingleNode(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	base := withHTTP(t, &cfg)
	qxdtest.StartNodeWith(t, cfg)
	for _, path := range []string{"/healthz", "/readyz"} {
		code, h := health(t, base+path)
		if code != http.StatusOK || h.Status != "ok" || h.Node != "test" || len(h.NotReady) > 0 {
			t.Errorf("GET %s: %d %+v, want 200 ok from node test", path, code, h)
		}
	}
	if code, _, err := get(t, base+"/nope"); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /nope: %d %v, want 404", code, err)
	}
}

func TestHTTPListenInUse(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	base := withHTTP(t, &cfg)
	qxdtest.StartNodeWith(t, cfg)
	cfg2 := qxdtest.NodeConfig(t, t.TempDir())
	cfg2.Services = append(cfg2.Services, httpapi.Service{Listen: strings.TrimPrefix(base, "http://")})
	ctx := qxdtest.Context(t, 30*time.Second)
	n, err := server.Start(ctx, cfg2)
	if err == nil {
		_ = n.Close(ctx)
		t.Fatal("a second node started on an HTTP address in use")
	}
	if !strings.Contains(err.Error(), "http listen on "+strings.TrimPrefix(base, "http://")) || !strings.Contains(err.Error(), "--http-listen") {
		t.Errorf("error %q does not name the address and the flag", err)
	}
}

// TestReadyzCluster stops nodes of a 3-node cluster: with one stopped the other two
// stay ready; with two stopped the last has no meta leader and says so. The
// leader elections and lost quorums on the way are counted from JetStream's
// advisories.
func TestReadyzCluster(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	var bases []string
	for i := range cfgs {
		bases = append(bases, withHTTP(t, &cfgs[i]))
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	qxdtest.CreateTopic(t, c, "replicated", qxd.TopicConfig{Partitions: 3, Replicas: 3})
	elections := func(kind string) float64 {
		v, _ := value(scrape(t, bases[0]), "qxd_jetstream_leader_elections_total", "kind", kind)
		return v
	}
	before := elections("partition")
	for i, b := range bases {
		if code, h := health(t, b+"/readyz"); code != http.StatusOK {
			t.Fatalf("node %d: /readyz %d %+v, want 200", i+1, code, h)
		}
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	if err := nodes[2].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, bases[2]+"/healthz"); err == nil {
		t.Error("the stopped node still answers /healthz")
	}
	for i, b := range bases[:2] {
		waitHealth(t, b+"/readyz", http.StatusOK, fmt.Sprintf("node %d with n3 stopped", i+1))
	}
	// n3 led one of the partitions (leaders are spread): another node took it.
	waitFor(t, "a partition leader election counted after n3 stopped", func() bool { return elections("partition") > before })
	// Its three replicas are behind their leaders now, and the others' none.
	waitFor(t, "n3's three replicas counted behind", func() bool {
		fams := scrape(t, bases[0])
		behind, _ := value(fams, "qxd_cluster_replicas_behind", "node", cfgs[2].Name)
		others, ok := value(fams, "qxd_cluster_replicas_behind", "node", cfgs[0].Name)
		return behind == 3 && ok && others == 0
	})
	// The console's events view shows it, with the partition it is about.
	waitFor(t, "a partition's leader election in /api/events", func() bool {
		var evs []httpapi.Event
		callJSON(t, "GET", bases[0]+"/api/events", nil, 200, &evs)
		for _, e := range evs {
			if e.What == "leader elected" && e.Kind == "partition" && e.Topic == "replicated" && e.Partition != nil && e.Leader != "" {
				return true
			}
		}
		return false
	})
	if err := nodes[1].Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The node counts itself cut off within seconds, and names the lost meta leader
	// once JetStream notices: wait for the second.
	var h httpapi.Health
	waitFor(t, "node 1 alone not ready, naming the meta leader", func() bool {
		var code int
		code, h = health(t, bases[0]+"/readyz")
		return code == http.StatusServiceUnavailable && h.Status == "not ready" && strings.Contains(strings.Join(h.NotReady, "; "), "meta leader")
	})
	if code, _ := health(t, bases[0]+"/healthz"); code != http.StatusOK {
		t.Errorf("node 1 alone: /healthz %d, want 200 (alive)", code)
	}
	// The partitions n1 leads lost their quorum: their leader steps down and says so.
	waitFor(t, "a lost quorum counted on n1 alone", func() bool {
		v, _ := value(scrape(t, bases[0]), "qxd_jetstream_quorum_lost_total", "kind", "partition")
		return v > 0
	})
}

// waitFor waits until cond holds, for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitHealth waits until url answers code, and returns its body.
func waitHealth(t *testing.T, url string, code int, what string) httpapi.Health {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, h := health(t, url)
		if c == code {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s answers %d %+v, want %d", what, url, c, h, code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrape reads /metrics and parses it with client_golang's parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, b, err := get(t, base+"/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	return fams
}

// value returns the value of the series of name with labels (name=value pairs),
// and whether it is there.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsAfterKnownWork appends known batches through the node's produce
// service, consumes them in a group that commits known offsets, and checks the
// scrape: the counters equal what was appended, the partition gauges what is
// stored, and the group's lag its high watermark minus its committed offset.
func TestMetricsAfterKnownWork(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0" // every metric is there to check against the docs
	base := withHTTP(t, &cfg)
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 2*time.Minute)
	qxdtest.CreateTopic(t, c, "metered", qxd.TopicConfig{Partitions: 2})

	// Partition 0: 3 batches of 4 records; partition 1: 2 batches of 5.
	plan := map[int32][]int{0: {4, 4, 4}, 1: {5, 5}}
	wantBytes := map[int32]int{}
	for p, batches := range plan {
		for i, k := range batches {
			var b semantics.BatchBuilder
			for j := 0; j < k; j++ {
				b.Append(&semantics.Record{Key: []byte(fmt.Sprint(j)), Value: []byte(fmt.Sprintf("p%d-b%d-r%d", p, i, j))})
			}
			batch, err := b.Build(nil, semantics.NoProducer, semantics.CompressionNone)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes[p] += len(batch)
			if _, err := n.Writers().Append(ctx, "metered", p, batch); err != nil {
				t.Fatalf("append to partition %d: %v", p, err)
			}
		}
	}
	// A corrupt batch is refused and counted by its error.
	if _, err := n.Writers().Append(ctx, "metered", 0, []byte("not a batch")); semantics.CodeOf(err) != semantics.ErrCorruptMessage.Code {
		t.Fatalf("corrupt batch: %v, want CORRUPT_MESSAGE", err)
	}

	// So is a batch for a partition this node runs no writer for.
	if _, err := n.Writers().Append(ctx, "metered", 7, []byte("not a batch")); semantics.CodeOf(err) != semantics.ErrNotLeader.Code {
		t.Fatalf("batch for partition 7: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}

	// A group reads everything and commits 5 of partition 0 and all of partition 1.
	cons := qxdtest.NewConsumer(t, c, qxd.Group("billing"), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, "metered"); err != nil {
		t.Fatal(err)
	}
	read := 0
	for read < 22 {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d records: %v", read, err)
		}
		read += len(rs)
	}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{{Topic: "metered", Partition: 0}: 5, {Topic: "metered", Partition: 1}: 10}); err != nil {
		t.Fatal(err)
	}

	if _, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: "metered", Partition: 0}); err != nil {
		t.Fatal(err)
	}
	// A bridge takes messages published on sensors.> into topic bridged.
	qxdtest.CreateTopic(t, c, "bridged", qxd.TopicConfig{Partitions: 1})
	if _, err := c.Admin().CreateBridge(ctx, qxd.IngestBridge("sensors", "sensors.>", "bridged", "")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, "the bridge stores what is published", func() bool {
		if _, err := nc.Request("sensors.a", []byte("reading"), 2*time.Second); err != nil {
			return false
		}
		d, err := c.Admin().DescribeBridge(ctx, "sensors")
		return err == nil && d.Status != nil && d.Status.Messages >= 3
	})

	kc, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams = scrape(t, base)
		v, _ := value(fams, "qxd_group_committed_offset", "group", "billing", "topic", "metered", "partition", "0")
		if _, bridged := value(fams, "qxd_bridge_running", "bridge", "sensors"); v == 5 && bridged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scrape shows no commit of group billing within 30s")
		}
		time.Sleep(time.Second)
	}
	expect := func(name string, want float64, labels ...string) {
		t.Helper()
		got, ok := value(fams, name, labels...)
		if !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	for p, batches := range plan {
		ps := fmt.Sprint(p)
		records := 0
		for _, k := range batches {
			records += k
		}
		expect("qxd_appended_records_total", float64(records), "topic", "metered", "partition", ps)
		expect("qxd_appended_batches_total", float64(len(batches)), "topic", "metered", "partition", ps)
		expect("qxd_appended_bytes_total", float64(wantBytes[p]), "topic", "metered", "partition", ps)
		expect("qxd_partition_log_start_offset", 0, "topic", "metered", "partition", ps)
		expect("qxd_partition_high_watermark", float64(records), "topic", "metered", "partition", ps)
		expect("qxd_partition_stored_batches", float64(len(batches)), "topic", "metered", "partition", ps)
		if v, ok := value(fams, "qxd_partition_stored_bytes", "topic", "metered", "partition", ps); !ok || v < float64(wantBytes[p]) {
			t.Errorf("qxd_partition_stored_bytes of partition %d = %v, want at least the %d appended", p, v, wantBytes[p])
		}
	}
	expect("qxd_append_latency_seconds", 5, "topic", "metered") // the histogram's count
	// Each batch the bridge appended was a produce request too.
	bridgedBatches, _ := value(fams, "qxd_appended_batches_total", "topic", "bridged", "partition", "0")
	expect("qxd_requests_total", 5+bridgedBatches, "api", "produce", "error", "NONE")
	expect("qxd_requests_total", 1, "api", "produce", "error", "CORRUPT_MESSAGE")
	expect("qxd_requests_total", 1, "api", "produce", "error", "NOT_LEADER_OR_FOLLOWER")
	expect("qxd_requests_total", 2, "api", "topic.create", "error", "NONE")
	expect("qxd_group_committed_offset", 5, "group", "billing", "topic", "metered", "partition", "0")
	expect("qxd_group_committed_offset", 10, "group", "billing", "topic", "metered", "partition", "1")
	expect("qxd_group_lag", 12-5, "group", "billing", "topic", "metered", "partition", "0")
	expect("qxd_group_lag", 10-10, "group", "billing", "topic", "metered", "partition", "1")
	expect("qxd_group_members", 1, "group", "billing")
	expect("qxd_group_state", 1, "group", "billing", "state", "Stable")
	expect("qxd_group_state", 0, "group", "billing", "state", "Empty")
	expect("qxd_group_coordinator", 1)
	expect("qxd_node_ready", 1)
	expect("qxd_node_jetstream_up", 1)
	expect("qxd_node_sync_interval_seconds", 0)
	expect("qxd_node_partitions_led", 3)
	expect("qxd_cluster_partitions", 3)
	expect("qxd_cluster_under_replicated_partitions", 0)
	expect("qxd_cluster_partitions_without_leader", 0)
	expect("qxd_cluster_replicas_behind", 0, "node", n.Name())
	expect("qxd_cluster_replica_lag", 0, "node", n.Name())
	expect("qxd_metrics_read_errors", 0)
	expect("qxd_bridge_running", 1, "bridge", "sensors", "kind", "ingest", "topic", "bridged")
	expect("qxd_bridge_failed_total", 0, "bridge", "sensors")
	expect("qxd_bridge_backlog", 0, "bridge", "sensors")
	if v, ok := value(fams, "qxd_bridge_messages_total", "bridge", "sensors"); !ok || v < 3 {
		t.Errorf("qxd_bridge_messages_total{bridge=sensors} = %v (present %v), want at least the 3 stored", v, ok)
	}
	if v, ok := value(fams, "qxd_group_generation", "group", "billing"); !ok || v < 1 {
		t.Errorf("qxd_group_generation = %v (present %v), want at least 1", v, ok)
	}
	if v, ok := value(fams, "qxd_requests_total", "api", "group.join", "error", "NONE"); !ok || v < 1 {
		t.Errorf("qxd_requests_total{api=group.join} = %v (present %v), want at least 1", v, ok)
	}
	checkDocumented(t, fams)
}

// checkDocumented checks that docs/operations.md lists every qxd_ metric of the
// scrape and no other, and that the Grafana dashboard uses only those.
func checkDocumented(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	ops, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(qxd_[a-z_]+)` \\|").FindAllStringSubmatch(string(ops), -1) {
		documented[m[1]] = true
	}
	for name := range fams {
		if strings.HasPrefix(name, "qxd_") && !documented[name] {
			t.Errorf("metric %s is not in docs/operations.md's table", name)
		}
	}
	for name := range documented {
		if fams[name] == nil {
			t.Errorf("docs/operations.md lists %s, which the scrape does not have", name)
		}
	}
	dash, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana", "qxd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dash) {
		t.Fatal("docs/grafana/qxd.json is not JSON")
	}
	for _, name := range regexp.MustCompile(`qxd_[a-z_]+`).FindAllString(string(dash), -1) {
		if base := strings.TrimSuffix(name, "_bucket"); !documented[base] && name != "qxd_overview" {
			t.Errorf("the dashboard uses %s, which is not a documented metric", name)
		}
	}
}

// TestHTTPListenConfig reads http_listen from a configuration file, serves on it,
// and refuses an address without a port.
func TestHTTPListenConfig(t *testing.T) {
	t.Parallel()
	addr := qxdtest.FreeAddr(t)
	cfg, err := server.ParseConfig(fmt.Sprintf("http_listen: %q\n", addr), qxdtest.NodeConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPListen != addr {
		t.Fatalf("http_listen %q read as %q", addr, cfg.HTTPListen)
	}
	cfg.Services = append(cfg.Services, httpapi.Service{Listen: cfg.HTTPListen})
	qxdtest.StartNodeWith(t, cfg)
	if code, h := health(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz on http_listen: %d %+v", code, h)
	}
	if def := server.DefaultConfig().HTTPListen; def != "127.0.0.1:9644" {
		t.Errorf("default http listen %q, want 127.0.0.1:9644", def)
	}
	for _, bad := range []string{"localhost", "127.0.0.1:http", "127.0.0.1:70000"} {
		cfg, err := server.ParseConfig(fmt.Sprintf("http_listen: %q\n", bad), qxdtest.NodeConfig(t, t.TempDir()))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("http listen address %q", bad)) {
			t.Errorf("http_listen %q: %v, want an error naming it", bad, err)
		}
	}
}
