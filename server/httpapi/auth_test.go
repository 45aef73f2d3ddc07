package httpapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/httpapi"
)

// consoleUsers are the users of a secured console node; each password is the
// user's name with "-pw".
var consoleUsers = map[string]semantics.Grant{
	"ops":    {Admin: []string{"*"}, Produce: []string{"*"}, Consume: []string{"*"}, Groups: []string{"*"}},
	"viewer": {Consume: []string{"orders"}, Groups: []string{"billing"}},
	"writer": {Produce: []string{"orders"}},
}

// consoleToken is a token of the secured node, with admin on every topic.
const consoleToken = "ci-token-0123456789"

// securedConsole starts a console node with users and a token, its HTTP port on
// TLS with its own keys, and returns the base URL, an HTTP client that trusts the
// port's CA, and a client of the node as ops.
func securedConsole(t *testing.T) (string, *http.Client, *qxd.Client) {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	for name, g := range consoleUsers {
		cfg.Auth.Users = append(cfg.Auth.Users, server.UserAuth{Name: name, Password: qxdtest.HashPassword(t, name+"-pw"), Grant: g})
	}
	cfg.Auth.Tokens = []server.TokenAuth{{Name: "ci", Token: consoleToken, Grant: semantics.Grant{Admin: []string{"*"}}}}
	certs := qxdtest.GenerateCerts(t)
	base, c := consoleNodeWith(t, cfg, httpapi.Service{TLS: server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey}},
		qxd.WithUserInfo("ops", "ops-pw"))
	return base, trusting(t, certs.CA), c
}

// trusting is an HTTP client that trusts the certificates caFile signs.
func trusting(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: time.Minute}
}

// TestConsoleAuth: on a node with users, the HTTP port (over TLS) asks for them;
// each user reads and changes what its grant allows, as on the NATS and Kafka
// ports; a refused change changes nothing. The probes answer anyone.
func TestConsoleAuth(t *testing.T) {
	t.Parallel()
	base, hc, c := securedConsole(t)
	as := func(user string) *creds { return &creds{user, user + "-pw"} }
	// wantErr wants status code and a JSON error whose message holds each of says.
	wantErr := func(who *creds, method, path string, body any, code int, kafkaCode string, says ...string) {
		t.Helper()
		got, hdr, b := send(t, hc, who, method, base+path, body)
		var e struct{ Error, Code string }
		if err := json.Unmarshal(b, &e); err != nil || got != code {
			t.Errorf("%s %s as %v: %d %s, want %d with a JSON error", method, path, who, got, b, code)
			return
		}
		if kafkaCode != "" && e.Code != kafkaCode {
			t.Errorf("%s %s as %v: code %q, want %q", method, path, who, e.Code, kafkaCode)
		}
		for _, s := range says {
			if !strings.Contains(e.Error, s) {
				t.Errorf("%s %s as %v: error %q does not say %q", method, path, who, e.Error, s)
			}
		}
		if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s %s: 401 without a Basic challenge (%q)", method, path, hdr.Get("WWW-Authenticate"))
		}
	}
	wantOK := func(who *creds, method, path string, body any, code int, out any) {
		t.Helper()
		got, _, b := send(t, hc, who, method, base+path, body)
		if got != code {
			t.Fatalf("%s %s as %v: %d %s, want %d", method, path, who, got, b, code)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %s: %v", method, path, b, err)
			}
		}
	}

	// The probes need no user; everything else does.
	wantOK(nil, "GET", "/healthz", nil, 200, nil)
	wantOK(nil, "GET", "/readyz", nil, 200, nil)
	for _, path := range []string{"/", "/app.js", "/metrics", "/api/cluster", "/api/topics", "/api/topics/orders/partitions/0/records"} {
		wantErr(nil, "GET", path, nil, 401, "", "sign in")
	}
	wantErr(&creds{"viewer", "wrong"}, "GET", "/api/topics", nil, 401, "", "not accepted")
	wantErr(&creds{"nobody", "nobody-pw"}, "GET", "/api/topics", nil, 401, "", "not accepted")
	wantErr(nil, "DELETE", "/api/topics/orders", nil, 401, "")

	var me httpapi.Me
	wantOK(as("viewer"), "GET", "/api/me", nil, 200, &me)
	if !me.Secured || me.User != "viewer" || me.Grant == nil || len(me.Grant.Consume) != 1 {
		t.Errorf("/api/me as viewer = %+v", me)
	}
	wantOK(&creds{"", consoleToken}, "GET", "/api/me", nil, 200, &me)
	if me.User != "ci" {
		t.Errorf("/api/me with the token = %+v, want user ci", me)
	}

	// viewer reads orders and its records, and may change nothing.
	wantOK(as("viewer"), "GET", "/", nil, 200, nil)
	wantOK(as("viewer"), "GET", "/metrics", nil, 200, nil)
	wantOK(as("viewer"), "GET", "/api/cluster", nil, 200, nil)
	wantOK(as("viewer"), "GET", "/api/topics", nil, 200, nil)
	wantOK(as("viewer"), "GET", "/api/topics/orders", nil, 200, nil)
	var recs httpapi.Records
	wantOK(as("viewer"), "GET", "/api/topics/orders/partitions/0/records?offset=0", nil, 200, &recs)
	if len(recs.Records) != 10 {
		t.Errorf("viewer browses %d records of orders, want 10", len(recs.Records))
	}
	for _, m := range []struct {
		method, path string
		body         any
	}{
		{"DELETE", "/api/topics/orders", nil},
		{"POST", "/api/topics", httpapi.CreateTopic{Name: "made", Partitions: 1}},
		{"POST", "/api/topics/orders/config", httpapi.AlterConfig{Set: map[string]string{"retention": "1d"}}},
		{"POST", "/api/topics/orders/partitions", httpapi.AddPartitions{Total: 4}},
	} {
		topic := "orders"
		if m.path == "/api/topics" {
			topic = "made"
		}
		wantErr(as("viewer"), m.method, m.path, m.body, 403, "TOPIC_AUTHORIZATION_FAILED", `user "viewer"`, "admin right", fmt.Sprintf("%q", topic))
	}
	wantErr(as("viewer"), "GET", "/api/groups/other", nil, 403, "GROUP_AUTHORIZATION_FAILED", `group "other"`)

	// writer sees orders but may not read its records.
	wantOK(as("writer"), "GET", "/api/topics/orders", nil, 200, nil)
	wantErr(as("writer"), "GET", "/api/topics/orders/partitions/0/records", nil, 403, "TOPIC_AUTHORIZATION_FAILED", "consume right")
	wantErr(as("writer"), "GET", "/api/groups/billing", nil, 403, "GROUP_AUTHORIZATION_FAILED")
	wantErr(as("writer"), "POST", "/api/groups/billing/seek", httpapi.SeekGroup{Topic: "orders", To: "start"}, 403, "GROUP_AUTHORIZATION_FAILED")
	wantErr(as("viewer"), "POST", "/api/groups/other/seek", httpapi.SeekGroup{Topic: "orders", To: "start"}, 403, "GROUP_AUTHORIZATION_FAILED")
	wantErr(as("viewer"), "GET", "/api/bridges", nil, 403, "CLUSTER_AUTHORIZATION_FAILED", "admin on every topic")
	wantOK(as("viewer"), "GET", "/api/events", nil, 200, nil)
	wantOK(as("ops"), "GET", "/api/bridges", nil, 200, nil)

	ctx := qxdtest.Context(t, time.Minute)
	ts, err := c.Admin().ListTopics(ctx)
	if err != nil || len(ts) != 1 || ts[0].Name != "orders" || ts[0].Config.Partitions != 1 || ts[0].Config.Retention != semantics.DefaultRetention {
		t.Fatalf("topics after the refused changes: %+v %v, want orders unchanged", ts, err)
	}

	// ops, with admin rights, changes; so does the token.
	wantOK(as("ops"), "POST", "/api/topics", httpapi.CreateTopic{Name: "made", Partitions: 2}, 201, nil)
	wantOK(&creds{"", consoleToken}, "POST", "/api/topics/made/partitions", httpapi.AddPartitions{Total: 3}, 200, nil)
	wantOK(as("ops"), "DELETE", "/api/topics/orders", nil, 200, nil)
	ts, err = c.Admin().ListTopics(ctx)
	if err != nil || len(ts) != 1 || ts[0].Name != "made" || ts[0].Config.Partitions != 3 {
		t.Errorf("topics after ops' changes: %+v %v, want made with 3 partitions", ts, err)
	}
}

// TestConsoleTLSFromNode: the HTTP port of a node with TLS on its client port
// serves HTTPS with the same keys (httpapi.ForConfig), and answers no plain HTTP.
func TestConsoleTLSFromNode(t *testing.T) {
	t.Parallel()
	certs := qxdtest.GenerateCerts(t)
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey}
	cfg.HTTPListen = qxdtest.FreeAddr(t)
	svc := httpapi.ForConfig(cfg)
	if svc.TLS != cfg.TLS || svc.Listen != cfg.HTTPListen {
		t.Fatalf("ForConfig = %+v, want the node's TLS on %s", svc, cfg.HTTPListen)
	}
	cfg.Services = append(cfg.Services, svc)
	qxdtest.StartNodeWith(t, cfg)
	hc := trusting(t, certs.CA)
	code, _, b := send(t, hc, nil, "GET", "https://"+cfg.HTTPListen+"/readyz", nil)
	if code != 200 {
		t.Errorf("GET https://…/readyz: %d %s", code, b)
	}
	code, _, b = send(t, hc, nil, "GET", "https://"+cfg.HTTPListen+"/api/cluster", nil) // no users: anyone
	if code != 200 {
		t.Errorf("GET https://…/api/cluster on a node without users: %d %s", code, b)
	}
	resp, err := http.Get("http://" + cfg.HTTPListen + "/readyz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
	// Keys of its own win over the node's.
	other := server.TLSConfig{Cert: "http.pem", Key: "http-key.pem"}
	cfg.HTTPTLS = other
	if got := httpapi.ForConfig(cfg).TLS; got != other {
		t.Errorf("ForConfig with HTTPTLS: TLS %+v, want %+v", got, other)
	}
}

// TestHTTPConfigBlock reads the http block of a configuration file: its listen
// address and TLS keys, and refuses what is wrong with a message naming it.
func TestHTTPConfigBlock(t *testing.T) {
	t.Parallel()
	certs := qxdtest.GenerateCerts(t)
	addr := qxdtest.FreeAddr(t)
	text := fmt.Sprintf("http { listen: %q, tls { cert: %q, key: %q } }\n", addr, certs.NodeCert, certs.NodeKey)
	cfg, err := server.ParseConfig(text, qxdtest.NodeConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPListen != addr || cfg.HTTPTLS.Cert != certs.NodeCert || cfg.HTTPTLS.Key != certs.NodeKey || cfg.TLS.Enabled() {
		t.Fatalf("http block read as listen %q, http tls %+v, tls %+v", cfg.HTTPListen, cfg.HTTPTLS, cfg.TLS)
	}
	cfg.Services = append(cfg.Services, httpapi.ForConfig(cfg))
	qxdtest.StartNodeWith(t, cfg)
	if code, _, b := send(t, trusting(t, certs.CA), nil, "GET", "https://"+addr+"/readyz", nil); code != 200 {
		t.Errorf("GET https://%s/readyz: %d %s", addr, code, b)
	}
	for _, c := range []struct{ text, says string }{
		{`http { listen: "127.0.0.1:1", port: 3 }`, `unknown key "http.port"`},
		{`http_listen: "127.0.0.1:1"` + "\n" + `http { listen: "127.0.0.1:2" }`, "both set"},
		{`http { tls { cert: "x.pem" } }`, "http tls"},
	} {
		cfg, err := server.ParseConfig(c.text, qxdtest.NodeConfig(t, t.TempDir()))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error saying %q", c.text, err, c.says)
		}
	}
}

// TestConsoleNoPasswordInClear: a node with users and a plain-HTTP port takes
// passwords from its own host only, as its Kafka port does; another host is
// told to turn TLS on.
func TestConsoleNoPasswordInClear(t *testing.T) {
	t.Parallel()
	var other string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			other = ipn.IP.String()
			break
		}
	}
	if other == "" {
		t.Skip("no non-loopback IPv4 address on this machine to connect from")
	}
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Auth.Users = []server.UserAuth{{Name: "ops", Password: qxdtest.HashPassword(t, "ops-pw"), Grant: semantics.Grant{Admin: []string{"*"}}}}
	_, port, _ := net.SplitHostPort(qxdtest.FreeAddr(t))
	cfg.Services = append(cfg.Services, httpapi.Service{Listen: "0.0.0.0:" + port})
	qxdtest.StartNodeWith(t, cfg)
	ops := &creds{"ops", "ops-pw"}
	code, _, b := send(t, http.DefaultClient, ops, "GET", "http://"+net.JoinHostPort(other, port)+"/api/topics", nil)
	if code != http.StatusForbidden || !strings.Contains(string(b), "turn TLS on") {
		t.Errorf("GET /api/topics from %s over plain HTTP: %d %s, want 403 saying to turn TLS on", other, code, b)
	}
	if code, _, b := send(t, http.DefaultClient, nil, "GET", "http://"+net.JoinHostPort(other, port)+"/readyz", nil); code != http.StatusOK {
		t.Errorf("GET /readyz from %s: %d %s, want 200 (probes need no user)", other, code, b)
	}
	if code, _, b := send(t, http.DefaultClient, ops, "GET", "http://127.0.0.1:"+port+"/api/topics", nil); code != http.StatusOK {
		t.Errorf("GET /api/topics from 127.0.0.1: %d %s, want 200", code, b)
	}
}
