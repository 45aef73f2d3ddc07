package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// serverRun is a "qxd server" running in-process.
type serverRun struct {
	cancel context.CancelFunc
	done   chan error
	out    *syncBuffer
}

// startServer runs "qxd server args..." and waits until it says it listens.
func startServer(t *testing.T, args ...string) *serverRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serverRun{cancel: cancel, done: make(chan error, 1), out: &syncBuffer{}}
	errOut := &syncBuffer{}
	go func() {
		all := append([]string{"qxd", "--log-level", "warn", "server", "--kafka-listen", ""}, args...)
		s.done <- run(ctx, all, strings.NewReader(""), s.out, errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", errOut)
		}
	})
	waitListening(t, s.out, errOut, s.done)
	return s
}

// waitListening waits up to 30 s for a qxd server run in-process to say on out
// that it listens, and fails t, with what it wrote to errOut, if it stops first
// (run's result on done) or does not start in time.
func waitListening(t *testing.T, out, errOut *syncBuffer, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "listening on") {
		select {
		case err := <-done:
			t.Fatalf("qxd server stopped before listening: %v\n%s", err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("qxd server did not start:\n%s", errOut.String())
		}
	}
}

// stop interrupts the server and returns what run returned.
func (s *serverRun) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("qxd server did not stop within 20s of the interrupt")
		return nil
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	return qxdtest.FreeAddr(t)
}

// TestServerRestart runs "qxd server", writes through the CLI, stops it with an
// interrupt, and starts it again on the same data: the topic and records remain.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	addr, dir := freePort(t), t.TempDir()
	url := "nats://" + addr
	cliRun := func(stdin string, args ...string) string {
		t.Helper()
		var out syncBuffer
		all := append([]string{"qxd", "--server", url}, args...)
		if err := run(t.Context(), all, strings.NewReader(stdin), &out, &out); err != nil {
			t.Fatalf("qxd %q: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	s := startServer(t, "--listen", addr, "--data", dir, "--name", "n1")
	wantLine := "qxd node n1 listening on " + url + " (data in " + dir + ", sync always)\n"
	if got := s.out.String(); got != wantLine {
		t.Errorf("server printed %q, want %q", got, wantLine)
	}
	cliRun("", "topic", "create", "kept", "-p", "2")
	cliRun("a:1\nb:2\nc:3\n", "topic", "produce", "kept", "-K", ":")
	if err := s.stop(t); err != nil {
		t.Fatalf("interrupted server returned %v, want nil", err)
	}
	if !strings.HasSuffix(s.out.String(), "qxd node n1 stopped\n") {
		t.Errorf("server output %q", s.out.String())
	}

	startServer(t, "--listen", addr, "--data", dir, "--name", "n1")
	if got := cliRun("", "topic", "list"); !strings.Contains(got, "kept  2 ") {
		t.Errorf("after restart, list:\n%s", got)
	}
	got := cliRun("", "topic", "consume", "kept", "-e", "-f", `%k=%v\n`)
	for _, want := range []string{"a=1\n", "b=2\n", "c=3\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("after restart, consume lacks %q:\n%s", want, got)
		}
	}
}

func TestServerEnv(t *testing.T) {
	// Not parallel: it sets environment variables.
	addr := freePort(t)
	dir := filepath.Join(t.TempDir(), "from-env")
	t.Setenv("QXD_LISTEN", addr)
	t.Setenv("QXD_DATA", dir)
	t.Setenv("QXD_NAME", "envnode")
	s := startServer(t)
	if got := s.out.String(); !strings.Contains(got, "qxd node envnode listening on nats://"+addr) || !strings.Contains(got, dir) {
		t.Errorf("server printed %q", got)
	}
	// Client flags read QXD_* too; topic create's own flags QXD_TOPIC_*.
	t.Setenv("QXD_SERVER", "nats://"+addr)
	t.Setenv("QXD_TOPIC_PARTITIONS", "4")
	t.Setenv("QXD_TOPIC_RETENTION", "3d")
	var out syncBuffer
	if err := run(t.Context(), []string{"qxd", "topic", "create", "envtopic"}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "created topic envtopic (4 partitions") {
		t.Errorf("create with QXD_TOPIC_PARTITIONS=4 printed %q", out.String())
	}
	out = syncBuffer{}
	if err := run(t.Context(), []string{"qxd", "topic", "list"}, strings.NewReader(""), &out, &out); err != nil || !strings.Contains(out.String(), "3d") {
		t.Errorf("list: %v\n%s", err, out.String())
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
}

// A node started with --sync INTERVAL (here from QXD_SYNC) says so when it
// starts, warns of what a power failure can lose, and cluster info shows its mode.
func TestServerSyncInterval(t *testing.T) {
	// Not parallel: it sets an environment variable.
	t.Setenv("QXD_SYNC", "2m")
	addr, dir := freePort(t), t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"qxd", "server", "--listen", addr, "--data", dir, "--name", "lazy"}, strings.NewReader(""), &out, &errOut)
	}()
	waitListening(t, &out, &errOut, done)
	if got := out.String(); !strings.Contains(got, ", sync 2m)") {
		t.Errorf("server printed %q, want its sync mode 2m", got)
	}
	if got := errOut.String(); !strings.Contains(got, "does not sync appends to disk before acknowledging them: a power failure can lose") ||
		!strings.Contains(got, "sync=2m") {
		t.Errorf("server logged no warning naming what a power failure can lose:\n%s", got)
	}
	var info syncBuffer
	if err := run(t.Context(), []string{"qxd", "--server", "nats://" + addr, "cluster", "info"}, strings.NewReader(""), &info, &info); err != nil {
		t.Fatalf("cluster info: %v\n%s", err, info.String())
	}
	if !strings.Contains(info.String(), "SYNC") || !strings.Contains(info.String(), " 2m ") {
		t.Errorf("cluster info does not show the node's sync mode 2m:\n%s", info.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("interrupted server returned %v", err)
	}
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // not defer: the parallel subtests run after this function returns
	busy := l.Addr().String()

	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"port in use", []string{"--listen", busy, "--data", t.TempDir()}, busy},
		{"data dir is a file", []string{"--listen", "127.0.0.1:0", "--data", file}, file},
		{"data dir under a file", []string{"--listen", "127.0.0.1:0", "--data", filepath.Join(file, "sub")}, file},
		{"bad listen address", []string{"--listen", "localhost", "--data", t.TempDir()}, `"localhost"`},
		{"arguments", []string{"now"}, `"now"`},
		{"sync zero", []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--sync", "0"}, `--sync "0" is neither always nor a positive interval`},
		{"sync word", []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--sync", "sometimes"}, `"sometimes"`},
		{"sync negative", []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--sync", "-1s"}, `"-1s"`},
		{"fetch session slots negative", []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--kafka-fetch-session-slots", "-1"}, `--kafka-fetch-session-slots "-1" is not a number of sessions`},
		{"fetch session slots word", []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--kafka-fetch-session-slots", "many"}, `--kafka-fetch-session-slots "many" is not a number of sessions`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var out syncBuffer
			err := run(ctx, append([]string{"qxd", "server"}, tc.args...), strings.NewReader(""), &out, &out)
			if err == nil {
				t.Fatalf("qxd server %q: no error", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("qxd server %q: error %q, want one line naming %s", tc.args, err, tc.want)
			}
		})
	}
}

// TestServerNATSDebug runs "qxd --log-level debug server" with and without
// --nats-debug and connects a client: the embedded NATS server's debug lines
// (its "Client connection created" among them, and RAFT's in a cluster) reach
// the log only with the flag.
func TestServerNATSDebug(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags []string
		want  bool
	}{
		{"without --nats-debug", nil, false},
		{"with --nats-debug", []string{"--nats-debug"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := freePort(t)
			ctx, cancel := context.WithCancel(context.Background())
			var out, errOut syncBuffer
			done := make(chan error, 1)
			go func() {
				args := append([]string{"qxd", "--log-level", "debug", "server", "--kafka-listen", "", "--http-listen", "",
					"--listen", addr, "--data", t.TempDir()}, tc.flags...)
				done <- run(ctx, args, strings.NewReader(""), &out, &errOut)
			}()
			t.Cleanup(func() {
				cancel()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
				}
			})
			waitListening(t, &out, &errOut, done)
			nc, err := nats.Connect("nats://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			nc.Close()
			cancel()
			select {
			case err := <-done:
				done <- err // for the cleanup
				if err != nil {
					t.Fatalf("qxd server: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("qxd server did not stop within 20s of the interrupt")
			}
			if got := strings.Contains(errOut.String(), "Client connection created"); got != tc.want {
				t.Errorf("NATS's debug line %q in the log: %v, want %v; log:\n%s", "Client connection created", got, tc.want, errOut.String())
			}
		})
	}
}
