package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// runQXD runs the CLI with args (after "qxd") and returns stdout+stderr and the error.
func runQXD(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, append([]string{"qxd", "--log-level", "warn"}, args...), strings.NewReader(stdin), &out, &out)
	return out.String(), err
}

// TestCLISecured drives a node with TLS and users through the CLI's auth and TLS
// flags and their QXD_* variables.
func TestCLISecured(t *testing.T) {
	certs := qxdtest.GenerateCerts(t)
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.TLS = server.TLSConfig{Cert: certs.NodeCert, Key: certs.NodeKey, CA: certs.CA}
	for name, g := range map[string]semantics.Grant{
		"admin":    {Admin: []string{"*"}},
		"producer": {Produce: []string{"orders"}},
		"reader":   {Consume: []string{"orders"}},
	} {
		cfg.Auth.Users = append(cfg.Auth.Users, server.UserAuth{Name: name, Password: qxdtest.HashPassword(t, name+"-pw"), Grant: g})
	}
	node := qxdtest.StartNodeWith(t, cfg)
	srv := []string{"--server", node.ClientURL(), "--tls-ca", certs.CA}
	as := func(user string, args ...string) []string {
		return append(append(append([]string{}, srv...), "--user", user, "--password", user+"-pw"), args...)
	}

	if out, err := runQXD(t, "", as("admin", "topic", "create", "orders", "--partitions", "1")...); err != nil {
		t.Fatalf("create as admin: %v\n%s", err, out)
	}
	if out, err := runQXD(t, "one\ntwo\n", as("producer", "topic", "produce", "orders")...); err != nil {
		t.Fatalf("produce as producer: %v\n%s", err, out)
	}
	out, err := runQXD(t, "", as("reader", "topic", "consume", "orders", "-n", "2", "-e")...)
	if err != nil || !strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Fatalf("consume as reader: %v\n%s", err, out)
	}

	denied := []struct {
		name string
		args []string
		want string
	}{
		{"delete as producer", as("producer", "topic", "delete", "orders"), `not authorized to delete topic "orders"`},
		{"create as reader", as("reader", "topic", "create", "other"), `not authorized to create topic "other"`},
		{"wrong password", append(append([]string{}, srv...), "--user", "admin", "--password", "guess", "topic", "list"), `check the password of user "admin"`},
		{"no credentials", append(append([]string{}, srv...), "topic", "list"), "requires credentials"},
		{"no CA", []string{"--server", node.ClientURL(), "--user", "admin", "--password", "admin-pw", "topic", "list"}, "--tls-ca"},
	}
	for _, d := range denied {
		out, err := runQXD(t, "", d.args...)
		if err == nil || !strings.Contains(err.Error(), d.want) {
			t.Errorf("%s: got %v (output %q), want an error containing %q", d.name, err, out, d.want)
		}
	}
	out, err = runQXD(t, "", as("admin", "topic", "list")...)
	if err != nil || !strings.Contains(out, "orders") {
		t.Fatalf("list after the refusals: %v\n%s", err, out)
	}

	// The same through the environment.
	t.Setenv("QXD_SERVER", node.ClientURL())
	t.Setenv("QXD_TLS_CA", certs.CA)
	t.Setenv("QXD_USER", "admin")
	t.Setenv("QXD_PASSWORD", "admin-pw")
	if out, err := runQXD(t, "", "topic", "describe", "orders"); err != nil {
		t.Fatalf("describe with QXD_* variables: %v\n%s", err, out)
	}
}

// TestServerConfigFile starts "qxd server --config" with a file that turns on
// users, and overrides its listen address with a flag.
func TestServerConfigFile(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`
name: confnode
listen: "127.0.0.1:1"  # overridden by --listen
data: data
auth {
  users: [ { user: ops, password: %q, permissions: { admin: ["*"] } } ]
}
`, hash)
	path := filepath.Join(dir, "qxd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	s := startServer(t, "--config", path, "--listen", addr)
	if got := s.out.String(); !strings.Contains(got, "qxd node confnode listening on nats://"+addr) || !strings.Contains(got, filepath.Join(dir, "data")) {
		t.Fatalf("server printed %q", got)
	}
	if out, err := runQXD(t, "", "--server", "nats://"+addr, "topic", "list"); err == nil {
		t.Fatalf("list without credentials worked:\n%s", out)
	}
	if out, err := runQXD(t, "", "--server", "nats://"+addr, "--user", "ops", "--password", "ops-pw", "topic", "list"); err != nil {
		t.Fatalf("list as ops: %v\n%s", err, out)
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestPasswd(t *testing.T) {
	t.Parallel()
	out, err := runQXD(t, "s3cret\n", "passwd", "--cost", "4")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out)), []byte("s3cret")) != nil {
		t.Fatalf("passwd printed %q, not a hash of the password", out)
	}
	for _, mech := range []string{kafka.MechSCRAMSHA256, kafka.MechSCRAMSHA512} {
		out, err := runQXD(t, "s3cret\n", "passwd", "--mechanism", mech, "--iterations", "8192")
		if err != nil {
			t.Fatal(err)
		}
		cred, err := kafka.ParseSCRAMCredential(mech, strings.TrimSpace(out))
		if err != nil || cred.Iterations != 8192 {
			t.Fatalf("passwd --mechanism %s printed %q: %v", mech, out, err)
		}
	}
	if _, err := runQXD(t, "s3cret\n", "passwd", "--mechanism", "SCRAM-SHA-1"); err == nil || !strings.Contains(err.Error(), "SCRAM-SHA-1") {
		t.Fatalf("passwd --mechanism SCRAM-SHA-1: %v, want an error naming it", err)
	}
}
