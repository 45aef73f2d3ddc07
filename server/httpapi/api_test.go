package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/httpapi"
)

// call sends method url with body (JSON-encoded unless a string) and returns the
// status and body.
func call(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	code, _, b := send(t, http.DefaultClient, nil, method, url, body)
	return code, b
}

// creds are a user name and password for HTTP basic authentication.
type creds struct{ user, password string }

// send is call through hc, as who (nil: no credentials); it returns the headers too.
func send(t *testing.T, hc *http.Client, who *creds, method, url string, body any) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if who != nil {
		req.SetBasicAuth(who.user, who.password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// callJSON is call that wants status want and decodes the body into out.
func callJSON(t *testing.T, method, url string, body any, want int, out any) {
	t.Helper()
	code, b := call(t, method, url, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, url, b, err)
		}
	}
}

// apiErr wants a 4xx JSON error with status want whose message holds each of says.
func apiErr(t *testing.T, method, url string, body any, want int, code string, says ...string) {
	t.Helper()
	c, b := call(t, method, url, body)
	var e struct{ Error, Code string }
	if err := json.Unmarshal(b, &e); err != nil || c != want || e.Error == "" {
		t.Errorf("%s %s: %d %s, want %d with a JSON error", method, url, c, b, want)
		return
	}
	if code != "" && e.Code != code {
		t.Errorf("%s %s: code %q, want %q (%s)", method, url, e.Code, code, e.Error)
	}
	for _, s := range says {
		if !strings.Contains(e.Error, s) {
			t.Errorf("%s %s: error %q does not say %q", method, url, e.Error, s)
		}
	}
}

var t0 = time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC)

// consoleNode starts a node with the HTTP port and topic orders: 10 records a
// second apart from t0, keys k0…k9; values JSON for 0–7, text for 8, binary for 9.
func consoleNode(t *testing.T, svc httpapi.Service) (string, *qxd.Client) {
	t.Helper()
	return consoleNodeWith(t, qxdtest.NodeConfig(t, t.TempDir()), svc)
}

// consoleNodeWith is consoleNode on a node with cfg, its client connected with opts
// (credentials on a node with users). The base URL is https:// when svc has TLS.
func consoleNodeWith(t *testing.T, cfg server.Config, svc httpapi.Service, opts ...qxd.ClientOption) (string, *qxd.Client) {
	t.Helper()
	addr := qxdtest.FreeAddr(t)
	svc.Listen = addr
	cfg.Services = append(cfg.Services, svc)
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	c, err := qxd.Connect(ctx, n.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var rs []*qxd.Record
	for i := range 10 {
		v := []byte(fmt.Sprintf(`{"n":%d,"item":"widget"}`, i))
		switch i {
		case 8:
			v = []byte("plain text")
		case 9:
			v = []byte{0, 1, 2, 0xff}
		}
		rs = append(rs, &qxd.Record{Topic: "orders", Key: []byte(fmt.Sprint("k", i)), Value: v,
			Headers: []semantics.Header{{Key: "h", Value: []byte("v")}}, Timestamp: t0.Add(time.Duration(i) * time.Second)})
	}
	if err := p.ProduceSync(ctx, rs...); err != nil {
		t.Fatal(err)
	}
	if svc.TLS.Enabled() {
		return "https://" + addr, c
	}
	return "http://" + addr, c
}

func TestConsoleAPIReads(t *testing.T) {
	t.Parallel()
	base, _ := consoleNode(t, httpapi.Service{})

	var cl httpapi.ClusterView
	callJSON(t, "GET", base+"/api/cluster", nil, 200, &cl)
	if cl.Node != "test" || cl.Sync != "always" || len(cl.Nodes) != 1 || !cl.Nodes[0].Up || cl.Partitions < 1 {
		t.Errorf("/api/cluster = %+v, want node test, sync always, one node up", cl)
	}
	var ts []qxd.TopicInfo
	callJSON(t, "GET", base+"/api/topics", nil, 200, &ts)
	if len(ts) != 1 || ts[0].Name != "orders" {
		t.Errorf("/api/topics = %+v, want orders", ts)
	}
	var tv httpapi.TopicView
	callJSON(t, "GET", base+"/api/topics/orders", nil, 200, &tv)
	if tv.Topic.Name != "orders" || len(tv.Partitions) != 1 || tv.Partitions[0].HighWatermark != 10 {
		t.Errorf("/api/topics/orders = %+v, want 1 partition with high watermark 10", tv)
	}
	apiErr(t, "GET", base+"/api/topics/nope", nil, 404, "UNKNOWN_TOPIC_OR_PARTITION", "nope")
	apiErr(t, "GET", base+"/api/topics/bad%20name", nil, 400, "INVALID_TOPIC_EXCEPTION")
	apiErr(t, "GET", base+"/api/nothing", nil, 404, "", "/api/nothing")

	recs := base + "/api/topics/orders/partitions/0/records"
	var r httpapi.Records
	callJSON(t, "GET", recs, nil, 200, &r)
	if len(r.Records) != 10 || r.From != 0 || r.Next != 10 || r.HighWatermark != 10 || r.LogStartOffset != 0 {
		t.Fatalf("latest records: %d from %d next %d (hw %d), want 10 from 0 next 10", len(r.Records), r.From, r.Next, r.HighWatermark)
	}
	callJSON(t, "GET", recs+"?limit=3", nil, 200, &r)
	if len(r.Records) != 3 || r.Records[0].Offset != 7 || r.Next != 10 {
		t.Errorf("latest 3: %+v, want offsets 7-9", r)
	}
	callJSON(t, "GET", recs+"?offset=3&limit=2", nil, 200, &r)
	if len(r.Records) != 2 || r.Records[0].Offset != 3 || r.Records[1].Offset != 4 || r.Next != 5 {
		t.Fatalf("offset 3 limit 2: %+v, want offsets 3, 4 and next 5", r)
	}
	rec := r.Records[0]
	if rec.Key == nil || rec.Key.Format != "text" || rec.Key.Data != "k3" ||
		rec.Value == nil || rec.Value.Format != "json" || rec.Value.Data != "{\n  \"n\": 3,\n  \"item\": \"widget\"\n}" ||
		!rec.Timestamp.Equal(t0.Add(3*time.Second)) || len(rec.Headers) != 1 || rec.Headers[0].Key != "h" || rec.Headers[0].Value.Data != "v" {
		t.Errorf("record 3 = %+v key %+v value %+v, want key k3, pretty JSON, its timestamp and header", rec, rec.Key, rec.Value)
	}
	callJSON(t, "GET", recs+"?offset=8", nil, 200, &r)
	if len(r.Records) != 2 || r.Records[0].Value.Format != "text" || r.Records[0].Value.Data != "plain text" ||
		r.Records[1].Value.Format != "base64" || r.Records[1].Value.Data != "AAEC/w==" || r.Records[1].Value.Hex != "000102ff" {
		t.Errorf("offsets 8, 9: %+v / %+v, want text, then base64 and hex", r.Records[0].Value, r.Records[1].Value)
	}
	callJSON(t, "GET", recs+"?offset=10", nil, 200, &r)
	if len(r.Records) != 0 || r.Next != 10 {
		t.Errorf("from the high watermark: %+v, want no records", r)
	}
	callJSON(t, "GET", recs+"?time="+t0.Add(5*time.Second).Format(time.RFC3339)+"&limit=2", nil, 200, &r)
	if len(r.Records) != 2 || r.Records[0].Offset != 5 {
		t.Errorf("from t0+5s: %+v, want offsets 5, 6", r)
	}
	callJSON(t, "GET", recs+fmt.Sprintf("?time=%d", t0.Add(2500*time.Millisecond).UnixMilli()), nil, 200, &r)
	if len(r.Records) != 7 || r.Records[0].Offset != 3 {
		t.Errorf("from t0+2.5s in ms: %d records from %v, want 7 from offset 3", len(r.Records), r.From)
	}
	callJSON(t, "GET", recs+"?time=2030-01-01T00:00:00Z", nil, 200, &r)
	if len(r.Records) != 0 || r.From != 10 {
		t.Errorf("from a time after every record: %+v, want none, from 10", r)
	}

	for _, c := range []struct {
		name, url string
		status    int
		code      string
		says      []string
	}{
		{"limit 0", recs + "?limit=0", 400, "", []string{`limit "0"`, "1 to 500"}},
		{"huge limit", recs + "?limit=100000", 400, "", []string{`limit "100000"`, "1 to 500"}},
		{"limit not a number", recs + "?limit=all", 400, "", []string{`limit "all"`}},
		{"negative offset", recs + "?offset=-1", 400, "", []string{`offset "-1"`, "0 (log start) to 10"}},
		{"offset not a number", recs + "?offset=first", 400, "", []string{`offset "first"`}},
		{"offset past the end", recs + "?offset=11", 400, "OFFSET_OUT_OF_RANGE", []string{"offset 11", "0 (log start) to 10"}},
		{"offset and time", recs + "?offset=1&time=0", 400, "", []string{"give one"}},
		{"bad time", recs + "?time=yesterday", 400, "", []string{`time "yesterday"`, "RFC 3339"}},
		{"no such partition", base + "/api/topics/orders/partitions/5/records", 404, "UNKNOWN_TOPIC_OR_PARTITION", []string{"partition 5"}},
		{"partition not a number", base + "/api/topics/orders/partitions/x/records", 400, "", []string{`partition "x"`}},
		{"negative partition", base + "/api/topics/orders/partitions/-1/records", 400, "", []string{`partition "-1"`}},
		{"unknown topic", base + "/api/topics/nope/partitions/0/records", 404, "UNKNOWN_TOPIC_OR_PARTITION", []string{"nope"}},
	} {
		t.Run(c.name, func(t *testing.T) { apiErr(t, "GET", c.url, nil, c.status, c.code, c.says...) })
	}

	code, b := call(t, "GET", base+"/", nil)
	if code != 200 || !bytes.Contains(b, []byte("<title>qxd console</title>")) {
		t.Errorf("GET /: %d, want the console page", code)
	}
	if code, b := call(t, "GET", base+"/app.js", nil); code != 200 || !bytes.Contains(b, []byte("setInterval")) {
		t.Errorf("GET /app.js: %d, want the console's script", code)
	}
}

func TestConsoleAPIGroups(t *testing.T) {
	t.Parallel()
	base, c := consoleNode(t, httpapi.Service{})
	ctx := qxdtest.Context(t, time.Minute)
	cons := qxdtest.NewConsumer(t, c, qxd.Group("billing"), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for read := 0; read < 10; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(rs)
	}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{{Topic: "orders", Partition: 0}: 4}); err != nil {
		t.Fatal(err)
	}
	var gs []qxd.GroupSummary
	callJSON(t, "GET", base+"/api/groups", nil, 200, &gs)
	if len(gs) != 1 || gs[0].Group != "billing" || gs[0].Members != 1 {
		t.Errorf("/api/groups = %+v, want billing with 1 member", gs)
	}
	var d qxd.GroupDescription
	callJSON(t, "GET", base+"/api/groups/billing", nil, 200, &d)
	if len(d.Members) != 1 || len(d.Partitions) != 1 || d.Partitions[0].Committed != 4 || d.Partitions[0].HighWatermark != 10 || d.Partitions[0].Lag != 6 {
		t.Errorf("/api/groups/billing = %+v, want 1 member and orders/0 committed 4, lag 6", d)
	}
	apiErr(t, "GET", base+"/api/groups/nobody", nil, 404, "GROUP_ID_NOT_FOUND", `"nobody"`, "qxd group list")
}

// TestConsoleAPISeek: a group's offsets are set through the same admin service as
// `qxd group seek`: refused while it has members and for bad input, changing
// nothing; once it is empty, to the start, an offset or a time.
func TestConsoleAPISeek(t *testing.T) {
	t.Parallel()
	base, c := consoleNode(t, httpapi.Service{})
	ctx := qxdtest.Context(t, time.Minute)
	cons := qxdtest.NewConsumer(t, c, qxd.Group("billing"), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for read := 0; read < 10; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(rs)
	}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{{Topic: "orders", Partition: 0}: 4}); err != nil {
		t.Fatal(err)
	}
	committed := func() int64 {
		t.Helper()
		d, err := c.Admin().DescribeGroup(ctx, "billing")
		if err != nil || len(d.Partitions) != 1 {
			t.Fatalf("describe billing: %+v %v", d, err)
		}
		return d.Partitions[0].Committed
	}
	seek := func(to string) httpapi.SeekGroup { return httpapi.SeekGroup{Topic: "orders", To: to} }
	apiErr(t, "POST", base+"/api/groups/billing/seek", seek("start"), 409, "NON_EMPTY_GROUP")
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		body any
		code int
		says string
	}{
		{seek("soon"), 400, `seek to "soon"`},
		{seek("99"), 400, "out"},
		{httpapi.SeekGroup{Topic: "nope", To: "start"}, 404, `"nope"`},
		{httpapi.SeekGroup{Topic: "bad name!", To: "start"}, 400, "bad name!"},
		{httpapi.SeekGroup{Topic: "orders", Partitions: []int32{3}, To: "start"}, 404, "partition 3"},
		{`{"topic":"orders","to":"start","extra":1}`, 400, "extra"},
	} {
		apiErr(t, "POST", base+"/api/groups/billing/seek", bad.body, bad.code, "", bad.says)
	}
	apiErr(t, "POST", base+"/api/groups/bad%01group/seek", seek("start"), 400, "INVALID_GROUP_ID", "control character")
	if got := committed(); got != 4 {
		t.Fatalf("committed after the refused seeks: %d, want 4", got)
	}
	var r httpapi.SeekResult
	callJSON(t, "POST", base+"/api/groups/billing/seek", httpapi.SeekGroup{Topic: "orders", To: "start", DryRun: true}, 200, &r)
	if len(r.Changes) != 1 || r.Changes[0].Old != 4 || r.Changes[0].New != 0 || committed() != 4 {
		t.Errorf("dry run: %+v, committed %d; want 4 -> 0 and nothing set", r, committed())
	}
	callJSON(t, "POST", base+"/api/groups/billing/seek", seek("start"), 200, &r)
	if got := committed(); got != 0 || len(r.Changes) != 1 || r.Changes[0].New != 0 {
		t.Errorf("seek to start: %+v, committed %d; want 0", r, got)
	}
	callJSON(t, "POST", base+"/api/groups/billing/seek", seek("7"), 200, &r)
	if got := committed(); got != 7 {
		t.Errorf("seek to 7: committed %d", got)
	}
	// Record 3 was stamped t0+3s: seeking to that time sets offset 3.
	callJSON(t, "POST", base+"/api/groups/billing/seek", seek(t0.Add(3*time.Second).Format(time.RFC3339)), 200, &r)
	if got := committed(); got != 3 {
		t.Errorf("seek to %s: committed %d, want 3", t0.Add(3*time.Second).Format(time.RFC3339), got)
	}
}

// TestConsoleAPIBridges lists the bridges with their runner's report.
func TestConsoleAPIBridges(t *testing.T) {
	t.Parallel()
	base, c := consoleNode(t, httpapi.Service{})
	ctx := qxdtest.Context(t, time.Minute)
	var v httpapi.BridgesView
	callJSON(t, "GET", base+"/api/bridges", nil, 200, &v)
	if len(v.Bridges) != 0 {
		t.Fatalf("/api/bridges before any: %+v", v)
	}
	if _, err := c.Admin().CreateBridge(ctx, qxd.IngestBridge("sensors", "sensors.>", "orders", "token:2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bridge listed with its runner's report", func() bool {
		callJSON(t, "GET", base+"/api/bridges", nil, 200, &v)
		return len(v.Bridges) == 1 && v.Bridges[0].Bridge.Name == "sensors" && v.Bridges[0].Status != nil && v.Bridges[0].Status.Node == "test"
	})
	if v.Runner != "test" || v.Bridges[0].Bridge.From != "sensors.>" || v.Bridges[0].Bridge.Topic != "orders" {
		t.Errorf("/api/bridges = %+v", v)
	}
}

func TestConsoleAPIChanges(t *testing.T) {
	t.Parallel()
	base, c := consoleNode(t, httpapi.Service{})
	ctx := qxdtest.Context(t, time.Minute)
	topics := func() []string {
		ts, err := c.Admin().ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range ts {
			names = append(names, x.Name)
		}
		slices.Sort(names)
		return names
	}

	var made qxd.TopicInfo
	callJSON(t, "POST", base+"/api/topics", httpapi.CreateTopic{Name: "made", Partitions: 2, Config: map[string]string{"retention": "3d"}}, 201, &made)
	if made.Name != "made" || made.Config.Partitions != 2 || made.Config.Retention != 72*time.Hour ||
		made.Config.MaxMessageBytes != semantics.DefaultMaxMessageBytes || !slices.Equal(made.Overrides, []string{semantics.ConfigRetention}) {
		t.Errorf("created %+v, want made with 2 partitions and 3 days' retention, its one override", made)
	}
	apiErr(t, "POST", base+"/api/topics", httpapi.CreateTopic{Name: "made"}, 409, "TOPIC_ALREADY_EXISTS", "made")
	for _, bad := range []struct {
		name string
		body any
		code string
		says string
	}{
		{"bad name", httpapi.CreateTopic{Name: "bad name!"}, "INVALID_TOPIC_EXCEPTION", "bad name!"},
		{"no name", httpapi.CreateTopic{}, "INVALID_TOPIC_EXCEPTION", ""},
		{"negative partitions", httpapi.CreateTopic{Name: "neg", Partitions: -1}, "", "-1"},
		{"too many partitions", httpapi.CreateTopic{Name: "huge", Partitions: 1 << 30}, "", ""},
		{"bad replicas", httpapi.CreateTopic{Name: "rep", Replicas: 2}, "INVALID_REPLICATION_FACTOR", ""},
		{"unknown config key", httpapi.CreateTopic{Name: "cfg", Config: map[string]string{"colour": "red"}}, "INVALID_CONFIG", "colour"},
		{"bad config value", httpapi.CreateTopic{Name: "cfg", Config: map[string]string{"retention": "soon"}}, "INVALID_CONFIG", "soon"},
		{"unknown field", `{"name":"x","partitons":3}`, "", "partitons"},
		{"not JSON", `name=x`, "", "not the JSON"},
		{"two objects", `{"name":"x"}{"name":"y"}`, "", "more than one"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			says := []string{}
			if bad.says != "" {
				says = append(says, bad.says)
			}
			apiErr(t, "POST", base+"/api/topics", bad.body, 400, bad.code, says...)
		})
	}
	if got := strings.Join(topics(), ","); got != "made,orders" {
		t.Fatalf("topics after the refused creates: %s, want made,orders", got)
	}

	var altered qxd.TopicInfo
	callJSON(t, "POST", base+"/api/topics/made/config", httpapi.AlterConfig{Set: map[string]string{"retention": "1d"}}, 200, &altered)
	if altered.Config.Retention != 24*time.Hour {
		t.Errorf("altered retention %v, want 24h", altered.Config.Retention)
	}
	apiErr(t, "POST", base+"/api/topics/made/config", httpapi.AlterConfig{Set: map[string]string{"colour": "red"}}, 400, "INVALID_CONFIG", "colour")
	apiErr(t, "POST", base+"/api/topics/made/config", httpapi.AlterConfig{}, 400, "INVALID_CONFIG", "no config change")
	apiErr(t, "POST", base+"/api/topics/nope/config", httpapi.AlterConfig{Set: map[string]string{"retention": "1d"}}, 404, "UNKNOWN_TOPIC_OR_PARTITION", "nope")
	apiErr(t, "GET", base+"/api/topics/made/config", nil, 404, "", "GET /api/topics/made/config")

	var grown qxd.TopicInfo
	callJSON(t, "POST", base+"/api/topics/made/partitions", httpapi.AddPartitions{Total: 3}, 200, &grown)
	if grown.Config.Partitions != 3 {
		t.Errorf("after adding partitions: %d, want 3", grown.Config.Partitions)
	}
	apiErr(t, "POST", base+"/api/topics/made/partitions", httpapi.AddPartitions{Total: 2}, 400, "INVALID_PARTITIONS")
	apiErr(t, "POST", base+"/api/topics/nope/partitions", httpapi.AddPartitions{Total: 2}, 404, "UNKNOWN_TOPIC_OR_PARTITION")

	d, err := c.Admin().DescribeTopic(ctx, "made")
	if err != nil || d.Topic.Config.Partitions != 3 || d.Topic.Config.Retention != 24*time.Hour {
		t.Fatalf("made after the refused changes: %+v %v, want 3 partitions, 1 day", d.Topic.Config, err)
	}

	callJSON(t, "DELETE", base+"/api/topics/made", nil, 200, nil)
	apiErr(t, "DELETE", base+"/api/topics/made", nil, 404, "UNKNOWN_TOPIC_OR_PARTITION", "made")
	if got := strings.Join(topics(), ","); got != "orders" {
		t.Errorf("topics after the delete: %s, want orders", got)
	}
}

// TestConsoleAPICluster: every node of a 3-node cluster answers the console's
// API the same, groups included (the coordinator runs on one node only), and
// shows a stopped node as down.
func TestConsoleAPICluster(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	var bases []string
	for i := range cfgs {
		bases = append(bases, withHTTP(t, &cfgs[i]))
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	ctx := qxdtest.Context(t, 2*time.Minute)

	callJSON(t, "POST", bases[1]+"/api/topics", httpapi.CreateTopic{Name: "shared", Partitions: 3, Replicas: 3}, 201, nil)
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "shared", Key: []byte(fmt.Sprint(i)), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)
	cons := qxdtest.NewConsumer(t, c, qxd.Group("billing"), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	for read := 0; read < 6; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(rs)
	}
	for i, b := range bases {
		var cl httpapi.ClusterView
		callJSON(t, "GET", b+"/api/cluster", nil, 200, &cl)
		up := 0
		for _, n := range cl.Nodes {
			if n.Up {
				up++
			}
		}
		if len(cl.Nodes) != 3 || up != 3 || cl.MetaLeader == "" {
			t.Errorf("node %d: /api/cluster %+v, want 3 nodes up and a meta leader", i+1, cl)
		}
		var tv httpapi.TopicView
		callJSON(t, "GET", b+"/api/topics/shared", nil, 200, &tv)
		var hw int64
		for _, p := range tv.Partitions {
			hw += p.HighWatermark
		}
		if len(tv.Partitions) != 3 || hw != 6 {
			t.Errorf("node %d: shared has %d partitions, %d records, want 3 and 6", i+1, len(tv.Partitions), hw)
		}
		var d qxd.GroupDescription
		callJSON(t, "GET", b+"/api/groups/billing", nil, 200, &d)
		if len(d.Members) != 1 || len(d.Partitions) != 3 {
			t.Errorf("node %d: /api/groups/billing %+v, want 1 member on 3 partitions", i+1, d)
		}
	}
	if err := nodes[2].Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 1's console shows the stopped node down", func() bool {
		var cl httpapi.ClusterView
		code, b := call(t, "GET", bases[0]+"/api/cluster", nil)
		if code != 200 || json.Unmarshal(b, &cl) != nil {
			return false
		}
		for _, n := range cl.Nodes {
			if n.Name == cfgs[2].Name && !n.Up {
				return true
			}
		}
		return false
	})
}
