package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestMain gives every node the tests start, in process or as a child process, its
// own free HTTP port unless a test names one: the default, 127.0.0.1:9644, is one
// port for all of them; and removes the qxd binary the tests built (buildQxd).
func TestMain(m *testing.M) {
	// Nodes the tests start listen on ports of their own, not the defaults.
	for k, v := range map[string]string{"QXD_HTTP_LISTEN": "127.0.0.1:0", "QXD_KAFKA_LISTEN": "127.0.0.1:0"} {
		if _, ok := os.LookupEnv(k); !ok {
			os.Setenv(k, v)
		}
	}
	code := m.Run()
	removeBuilt()
	os.Exit(code)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServerHTTPListen runs "qxd server --http-listen" and reads its probes and
// metrics.
func TestServerHTTPListen(t *testing.T) {
	t.Parallel()
	httpAddr := freePort(t)
	startServer(t, "--listen", freePort(t), "--data", t.TempDir(), "--http-listen", httpAddr)
	if code, body := httpGet(t, "http://"+httpAddr+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("GET /readyz: %d %s, want 200 ok", code, body)
	}
	if code, body := httpGet(t, "http://"+httpAddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "qxd_node_ready 1") {
		t.Errorf("GET /metrics: %d, want 200 with qxd_node_ready 1:\n%s", code, body)
	}

}

// TestServerHTTPListenBad refuses a bad --http-listen before it starts anything.
func TestServerHTTPListenBad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	var out syncBuffer
	err := run(t.Context(), []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", dir, "--http-listen", "localhost"}, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(err.Error(), `http listen address "localhost"`) {
		t.Fatalf("--http-listen localhost: err = %v, want one naming the address", err)
	}
	if _, serr := os.Stat(dir); serr == nil {
		t.Errorf("--http-listen localhost created the data dir")
	}
}

// TestLogFormat writes the node's logs as JSON with --log-format json and refuses
// an unknown format.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"qxd", "--log-format", "json", "--log-level", "info", "server", "--listen", freePort(t), "--data", t.TempDir()},
			strings.NewReader(""), &out, &errOut)
	}()
	waitListening(t, &out, &errOut, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("qxd server: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	started := false
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		started = started || rec["msg"] == "node started"
	}
	if !started {
		t.Errorf("no JSON line says the node started:\n%s", errOut.String())
	}

	_, err := runQXD(t, "", "--log-format", "xml", "version")
	if err == nil || !strings.Contains(err.Error(), `log format "xml" is not valid: use text or json`) {
		t.Errorf("--log-format xml: err = %v, want one naming the format", err)
	}
}

// TestServerHTTPListenInUse fails at once, naming the address, when the HTTP port
// is taken, also on a node joining a cluster (which retries what fails while its
// cluster forms).
func TestServerHTTPListenInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	qxdtest.StartCluster(t, cfgs[:2])
	third := cfgs[2]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncBuffer
	err = run(ctx, []string{"qxd", "server", "--name", third.Name, "--listen", third.Listen, "--data", third.DataDir,
		"--cluster-name", third.ClusterName, "--cluster-listen", third.ClusterListen, "--peers", strings.Join(third.Peers, ","),
		"--http-listen", l.Addr().String()}, strings.NewReader(""), &out, &out)
	if ctx.Err() != nil {
		t.Fatal("qxd server on a taken --http-listen did not give up within 30s")
	}
	if err == nil || !strings.Contains(err.Error(), "http listen on "+l.Addr().String()) {
		t.Fatalf("err = %v, want one naming the taken address", err)
	}
}

// TestServerConsoleSecured: on a node with users the console asks for one, and a
// user with admin rights makes changes.
func TestServerConsoleSecured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("auth {\n  users: [ { user: ops, password: %q, permissions: { admin: [\"*\"] } } ]\n}\n", hash)
	path := filepath.Join(dir, "qxd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freePort(t)
	startServer(t, "--config", path, "--listen", freePort(t), "--data", filepath.Join(dir, "data"), "--http-listen", httpAddr)
	if code, body := httpGet(t, "http://"+httpAddr+"/api/cluster"); code != http.StatusUnauthorized {
		t.Errorf("GET /api/cluster without a user: %d %s, want 401", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/api/topics", strings.NewReader(`{"name":"made","partitions":1}`))
	req.SetBasicAuth("ops", "ops-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST /api/topics as ops: %d %s, want 201", resp.StatusCode, b)
	}
}
