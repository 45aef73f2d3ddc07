package qxdtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd/server"
)

// childNodeEnv carries the config of the node RunChildNode runs.
const childNodeEnv = "QXD_TEST_CHILD_NODE"

// childNode is the part of a node's config the child process needs.
type childNode struct {
	Name, Listen, ClusterName, ClusterListen, DataDir string
	Peers                                             []string
	KafkaListen                                       string // "": no Kafka listener
	// ScrubInterval and ScrubRate: 0 keeps the test config's.
	ScrubInterval time.Duration
	ScrubRate     int64
}

// RunChildNode is the body of a package's child-node entry, a test function
// that is not a test (the server package's TestElectionChildNode): it runs one
// node (of a cluster, or alone) in its own process, for tests that pause
// (SIGSTOP) or kill (SIGKILL: a crash, no step-down, no goodbye, its sockets
// closed by the kernel) it. It runs only in the child process StartChildNode
// starts, and skips t anywhere else.
func RunChildNode(t *testing.T) {
	spec := os.Getenv(childNodeEnv)
	if spec == "" {
		t.Skip("runs only as the child process of a test that pauses or kills a node (qxdtest.StartChildNode)")
	}
	var c childNode
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	cfg := NodeConfig(t, c.DataDir)
	cfg.Name, cfg.Listen, cfg.ClusterName, cfg.ClusterListen, cfg.Peers = c.Name, c.Listen, c.ClusterName, c.ClusterListen, c.Peers
	cfg.KafkaListen = c.KafkaListen
	if c.ScrubInterval != 0 {
		cfg.ScrubInterval = c.ScrubInterval
	}
	if c.ScrubRate != 0 {
		cfg.ScrubRate = c.ScrubRate
	}
	n, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("child node ready:", n.Name())
	select {} // until killed
}

// StartChildNode starts the node of cfg in a child process, the test binary
// run with -test.run of entry (a test whose body is RunChildNode), and returns
// it once the node is ready; the test kills it at the end if it still runs.
// Only cfg's names, addresses, peers, data dir, Kafka listener and scrub pace
// reach the child; the rest is NodeConfig's.
func StartChildNode(t *testing.T, entry string, cfg server.Config) *exec.Cmd {
	t.Helper()
	spec, err := json.Marshal(childNode{Name: cfg.Name, Listen: cfg.Listen, ClusterName: cfg.ClusterName,
		ClusterListen: cfg.ClusterListen, DataDir: cfg.DataDir, Peers: cfg.Peers, KafkaListen: cfg.KafkaListen,
		ScrubInterval: cfg.ScrubInterval, ScrubRate: cfg.ScrubRate})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+entry+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childNodeEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child node %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "child node ready:") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
		return cmd
	case <-time.After(90 * time.Second):
		t.Fatalf("the child node %s did not get ready within 90s", cfg.Name)
		return nil
	}
}

// ClusterWithChild starts a three-node cluster whose third node runs in a
// child process (StartChildNode with entry), and returns the two in-process
// nodes, the child and its name. Each of edits may change the in-process
// nodes' configs (the first two of cfgs) before they start. The child is
// killed before the in-process nodes close (cleanups run last first): a
// paused peer would hold up their stop.
func ClusterWithChild(t *testing.T, ctx context.Context, entry string, edits ...func(cfgs []server.Config)) ([]*server.Node, *exec.Cmd, string) {
	t.Helper()
	cfgs := ClusterConfigs(t, 3)
	for _, edit := range edits {
		edit(cfgs)
	}
	var (
		wg    sync.WaitGroup
		nodes = make([]*server.Node, 2)
		errs  = make([]error, 2)
	)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = server.Start(ctx, cfgs[i])
		}()
	}
	child := StartChildNode(t, entry, cfgs[2])
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %s: %v", cfgs[i].Name, err)
		}
		n := nodes[i]
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = n.Close(cctx)
		})
	}
	t.Cleanup(func() { _ = child.Process.Kill() })
	return nodes, child, cfgs[2].Name
}

// WaitStopped waits until every thread of the process pid, sent SIGSTOP, has
// stopped (state T in /proc/PID/task/TID/stat): the signal takes effect on
// each thread when the kernel next runs it, and until then it may still
// answer. It fails the test if ctx ends first.
func WaitStopped(ctx context.Context, t testing.TB, pid int) {
	t.Helper()
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		running := ""
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if err != nil {
				continue // the thread ended
			}
			// The state follows the command's closing parenthesis.
			if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				running = string(b)
			}
		}
		if running == "" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("process %d did not stop: %s", pid, running)
		}
		time.Sleep(time.Millisecond)
	}
}
