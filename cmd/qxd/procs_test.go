package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// This file holds the helpers of the tests that run qxd as real operating-system
// processes (process_test.go, netns_test.go, chaos_test.go): building the binary,
// starting, killing, pausing and restarting nodes, a keyed producer and a consumer
// group that record what was acknowledged and read, and the check of a topic's log.

// buildQxd returns the path of the qxd command built from this tree, built once
// for all the tests of this process into a temporary directory that TestMain
// removes (linking it takes seconds, more under -race's load, and a dozen
// tests run it). It skips the test when the go tool is not installed.
func buildQxd(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH, so the qxd binary cannot be built for a multi-process test")
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "qxd-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir, built.bin = dir, filepath.Join(dir, "qxd")
		cmd := exec.Command(goTool, "build", "-o", built.bin, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("go build the qxd binary: %v", built.err)
	}
	return built.bin
}

// built is the qxd binary buildQxd built, once per test process.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// removeBuilt removes the directory of the binary buildQxd built, if any.
func removeBuilt() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// procNode is one qxd node run as its own process ("qxd server"), optionally inside a
// network namespace. It can be killed, paused and restarted on the same data dir and
// addresses.
type procNode struct {
	name    string
	bin     string
	netns   string // "" runs the node in the test's own namespace
	client  string // HOST:PORT clients connect to
	cluster string // HOST:PORT other nodes route to
	kafka   string // HOST:PORT of the Kafka listener; "" picks a free port at each start
	peers   []string
	cname   string
	data    string
	logDir  string
	extra   []string // more "qxd server" flags

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current process has exited
	logPath string
	starts  int
	paused  bool
}

// url is the node's client URL.
func (n *procNode) url() string { return "nats://" + n.client }

func (n *procNode) args() []string {
	level := "info"
	if l := os.Getenv("QXD_TEST_NODE_LOG_LEVEL"); l != "" {
		level = l
	}
	kafka := n.kafka
	if kafka == "" {
		kafka = "127.0.0.1:0"
	}
	args := []string{"--log-level", level, "server",
		"--name", n.name, "--listen", n.client, "--data", n.data, "--kafka-listen", kafka}
	if n.cluster != "" {
		args = append(args, "--cluster-name", n.cname, "--cluster-listen", n.cluster,
			"--peers", strings.Join(n.peers, ","))
	}
	args = append(args, n.extra...)
	if n.netns != "" {
		return append([]string{"netns", "exec", n.netns, n.bin}, args...)
	}
	return args
}

// start starts the node's process; it does not wait for it to be ready.
func (n *procNode) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("node %s is already running", n.name)
	}
	n.starts++
	n.logPath = filepath.Join(n.logDir, fmt.Sprintf("%s-%d.log", n.name, n.starts))
	f, err := os.Create(n.logPath)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own copy
	prog := n.bin
	if n.netns != "" {
		// "ip netns exec" execs the command in place: the pid is qxd's own, so
		// signals reach the node itself.
		prog = "ip"
	}
	cmd := exec.Command(prog, n.args()...)
	cmd.Stdout, cmd.Stderr = f, f
	// Kill the node if the test binary dies without running its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited, n.paused = cmd, exited, false
	return nil
}

// signal sends sig to the node's process.
func (n *procNode) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("node %s is not running", n.name)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.cmd.Process.Signal(sig)
}

// kill SIGKILLs the node and waits (bounded) for the process to be gone.
func (n *procNode) kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd, n.paused = nil, false
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("node %s (pid %d) did not exit within 10s of SIGKILL", n.name, cmd.Process.Pid)
	}
}

// stop stops the node with SIGTERM (a clean shutdown), SIGKILL after timeout.
func (n *procNode) stop(timeout time.Duration) error {
	return n.stopWith(syscall.SIGTERM, timeout)
}

// stopWith stops the node with sig (SIGTERM or SIGINT: a clean shutdown), SIGKILL
// after timeout.
func (n *procNode) stopWith(sig syscall.Signal, timeout time.Duration) error {
	n.mu.Lock()
	cmd, exited, paused := n.cmd, n.exited, n.paused
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
		return nil
	case <-time.After(timeout):
		_ = n.kill()
		return fmt.Errorf("node %s did not stop within %v of %v; killed it", n.name, timeout, sig)
	}
}

// log returns the last size bytes of the node's current log.
func (n *procNode) log(size int) string {
	n.mu.Lock()
	path := n.logPath
	n.mu.Unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > size {
		b = b[len(b)-size:]
	}
	return string(b)
}

// waitListening waits until the node's current process says it is ready ("qxd node
// ... listening on", printed once its JetStream has a meta leader), or fails.
//
// A node's addresses are free ports chosen before it starts (qxdtest.FreeAddr),
// and on this machine other tests and other test runs choose ports too: one may
// hold a port for a moment (a probe of whether it is free) or take it for good
// between the choice and the node's bind, or while the node is down between a
// kill and its restart. When the process exits because an address it listens on
// is taken, waitListening starts it again: on the same addresses at first, then,
// outside a network namespace, with the taken one moved to a fresh free port
// (other nodes find a node at its new cluster address when it routes to them; a
// client learns a new client address from the cluster, or from urls).
func (n *procNode) waitListening(ctx context.Context) error {
	taken := 0
	for {
		n.mu.Lock()
		path, exited := n.logPath, n.exited
		n.mu.Unlock()
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), "listening on") {
			return nil
		}
		select {
		case <-exited:
			if addr := n.takenAddr(); addr != "" && taken < portTakenStarts && ctx.Err() == nil {
				taken++
				if err := n.startAgain(addr, taken); err != nil {
					return fmt.Errorf("node %s: start again after its address %s was taken: %w", n.name, addr, err)
				}
				continue
			}
			return fmt.Errorf("node %s exited before it was ready:\n%s", n.name, n.log(4000))
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w\n%s", n.name, ctx.Err(), n.log(4000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// portTakenStarts bounds the starts waitListening makes of a node whose address
// was taken; the later half of them on a fresh port.
const portTakenStarts = 6

// takenRE matches the line a node exits with when an address it is to listen on
// is taken: qxd's own check ("cluster listen address 127.0.0.1:26748 is not
// available: listen tcp ...: bind: address already in use (...)") or, when the
// port was taken after that check, nats-server's ("Error listening on port:
// 127.0.0.1:24435, \"listen tcp ...: bind: address already in use\""); the
// address is its first or second group.
var takenRE = regexp.MustCompile(`(?:listen address (\S+) is not available|Error listening on port: (\S+?),)[^\n]*address already in use`)

// takenAddr returns the address the node's current process found taken, from
// its log, or "".
func (n *procNode) takenAddr() string {
	if m := takenRE.FindStringSubmatch(n.log(4000)); m != nil {
		return m[1] + m[2]
	}
	return ""
}

// startAgain starts the node again after its process exited because addr was
// taken: after a pause, on the same addresses for the first half of
// portTakenStarts, then, outside a network namespace, with addr moved to a
// fresh free port.
func (n *procNode) startAgain(addr string, try int) error {
	time.Sleep(time.Duration(try) * 200 * time.Millisecond)
	n.mu.Lock()
	n.cmd = nil
	if try > portTakenStarts/2 && n.netns == "" {
		fresh, err := qxdtest.FreeLoopbackAddr()
		if err != nil {
			n.mu.Unlock()
			return err
		}
		for _, a := range []*string{&n.client, &n.cluster, &n.kafka} {
			if *a == addr {
				*a = fresh
			}
		}
	}
	n.mu.Unlock()
	return n.start()
}

// procCluster is a cluster of qxd node processes. Every process is killed at the
// test's cleanup, whether the test passed or not.
type procCluster struct {
	nodes []*procNode
}

// clusterLayout says where each node listens: client and cluster addresses (and the
// network namespace it runs in, if any).
type clusterLayout struct {
	netns   []string
	client  []string
	cluster []string
	kafka   []string // Kafka listeners; none: a free port at each start
}

// loopbackLayout puts n nodes on free 127.0.0.1 ports.
func loopbackLayout(t *testing.T, n int) clusterLayout {
	var l clusterLayout
	for range n {
		l.netns = append(l.netns, "")
		l.client = append(l.client, qxdtest.FreeAddr(t))
		l.cluster = append(l.cluster, qxdtest.FreeAddr(t))
		l.kafka = append(l.kafka, qxdtest.FreeAddr(t))
	}
	return l
}

// startProcCluster starts one node process per address of the layout, each with its
// own data dir, and waits until every node is ready and answers admin requests.
func startProcCluster(t *testing.T, bin string, l clusterLayout) *procCluster {
	t.Helper()
	c := &procCluster{}
	var peers []string
	for _, a := range l.cluster {
		peers = append(peers, "nats://"+a)
	}
	logDir := t.TempDir()
	if keep := os.Getenv("QXD_TEST_KEEP_LOGS"); keep != "" {
		// Logs survive the test, for reading after a failure.
		var err error
		if logDir, err = os.MkdirTemp(keep, t.Name()+"-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("node logs in %s", logDir)
	}
	// A cluster name of its own, so that nodes of two tests never join up if one
	// takes a port the other freed.
	cname := fmt.Sprintf("qxdproc-%08x", rand.Uint32())
	for i := range l.client {
		c.nodes = append(c.nodes, &procNode{
			name: fmt.Sprintf("n%d", i+1), bin: bin, netns: l.netns[i],
			client: l.client[i], cluster: l.cluster[i], peers: peers, cname: cname,
			data: t.TempDir(), logDir: logDir,
		})
		if i < len(l.kafka) {
			c.nodes[i].kafka = l.kafka[i]
		}
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if err := n.kill(); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("last log lines of node %s (%s):\n%s", n.name, n.logPath, n.log(3000))
			}
		}
	})
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if err := c.waitReady(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// A node is ready once JetStream has a meta leader, which a majority gives; a
	// topic with a replica per node needs every node known and up.
	cl, err := qxd.Connect(ctx, c.urls())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := waitInSync(ctx, cl, len(c.nodes)); err != nil {
		t.Fatal(err)
	}
	return c
}

// urls is the client URLs of every node, for a client that fails over between them.
func (c *procCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.url())
	}
	return strings.Join(us, ",")
}

// node returns the node named name.
func (c *procCluster) node(name string) *procNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// waitReady waits until n says it is ready and an SDK client connected to it alone
// can list topics.
func (c *procCluster) waitReady(ctx context.Context, n *procNode) error {
	if err := n.waitListening(ctx); err != nil {
		return err
	}
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		cl, err := qxd.Connect(actx, n.url(), qxd.WithRequestTimeout(2*time.Second))
		if err == nil {
			_, err = cl.Admin().ListTopics(actx)
			cl.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s does not answer admin requests: %v\n%s", n.name, last, n.log(4000))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restart starts a stopped or killed node again on its data dir and addresses and
// waits until it is ready.
func (c *procCluster) restart(ctx context.Context, n *procNode) error {
	if err := n.start(); err != nil {
		return err
	}
	return c.waitReady(ctx, n)
}

// connect connects an SDK client to urls that reconnects fast, closed at cleanup.
func connect(t *testing.T, urls string, opts ...nats.Option) *qxd.Client {
	t.Helper()
	return connectWith(t, urls, opts)
}

// connectWith is connect with client options besides the NATS ones.
func connectWith(t *testing.T, urls string, opts []nats.Option, copts ...qxd.ClientOption) *qxd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nopts := append([]nats.Option{nats.ReconnectWait(100 * time.Millisecond)}, opts...)
	c, err := qxd.Connect(ctx, urls, append([]qxd.ClientOption{qxd.WithNATSOptions(nopts...), qxd.WithRequestTimeout(10 * time.Second)}, copts...)...)
	if err != nil {
		t.Fatalf("connect to %s: %v", urls, err)
	}
	t.Cleanup(c.Close)
	return c
}

// connectJetStream connects plain NATS to urls (a raw JetStream client, beside
// qxd's), closed at cleanup.
func connectJetStream(t *testing.T, urls string, nopts []nats.Option, jopts ...jetstream.JetStreamOpt) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls, nopts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jopts...)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitInSync waits until the cluster reports every node up and no partition under
// replicated, or ctx ends.
func waitInSync(ctx context.Context, c *qxd.Client, nodes int) error {
	var last string
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		info, err := c.Admin().ClusterInfo(actx)
		cancel()
		if err == nil {
			up := 0
			var lag uint64
			for _, n := range info.Nodes {
				if n.Up {
					up++
				}
				lag += n.Lag
			}
			if up == nodes && len(info.UnderReplicated) == 0 && lag == 0 && info.MetaLeader != "" {
				return nil
			}
			last = fmt.Sprintf("%d of %d nodes up, %d partitions under-replicated, lag %d", up, nodes, len(info.UnderReplicated), lag)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not in sync: %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leaderOf returns the node that leads a partition, as describe reports it.
func leaderOf(ctx context.Context, c *qxd.Client, topic string, p int32) (string, error) {
	d, err := c.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		return "", err
	}
	for _, pi := range d.Partitions {
		if pi.Partition == p {
			if pi.Leader == "" {
				return "", fmt.Errorf("partition %s/%d has no leader", topic, p)
			}
			return pi.Leader, nil
		}
	}
	return "", fmt.Errorf("topic %s has no partition %d", topic, p)
}

// position is where an acknowledged record was stored.
type position struct {
	partition int32
	offset    int64
}

// ledger records what producers sent and had acknowledged, and what consumers read.
// Record values are "<producer>-<sequence>", keys "<producer>-k<sequence mod 23>",
// so the log can be checked per key for order.
type ledger struct {
	mu       sync.Mutex
	produced int                 // records handed to Produce and accepted
	acked    map[string]position // value → where it was stored
	failed   int                 // records whose result was an error
	lastErr  error
	read     map[string]int // value → how many times a group member got it
	stall    time.Duration  // the longest produce call
	stallAt  time.Time      // when that call began
	stalls   []stallRec     // produce calls that took over a second
	// reads, when not nil, gets every record a group member read, in order.
	reads []readRec
	// pollErrs, when not nil, gets the first errors group members' Poll returned.
	pollErrs []string
	// memberLog, when not nil, gets each group member's client's log lines.
	memberLog func(member int, line string)
}

// readRec is one record a group member read, which member (its index), and when.
type readRec struct {
	value  string
	member int
	at     time.Time
}

// stallRec is one slow produce call.
type stallRec struct {
	at   time.Time
	took time.Duration
}

// stallText describes the longest produce call still running at or begun after
// from.
func (l *ledger) stallText(from time.Time) string {
	d, at := l.longestSince(from)
	if d == 0 {
		return "none over 1s"
	}
	return fmt.Sprintf("%v, begun %v after it", d.Round(time.Millisecond), at.Sub(from).Round(time.Millisecond))
}

// longestSince returns the longest produce call still running at or begun after
// from, and when it began.
func (l *ledger) longestSince(from time.Time) (time.Duration, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	var at time.Time
	for _, s := range l.stalls {
		if s.at.Add(s.took).After(from) && s.took > d {
			d, at = s.took, s.at
		}
	}
	return d, at
}

// longestBetween returns the longest produce call (of those over a second) still
// running at from or begun before to.
func (l *ledger) longestBetween(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for _, s := range l.stalls {
		if s.at.Add(s.took).After(from) && s.at.Before(to) {
			d = max(d, s.took)
		}
	}
	return d
}

func newLedger() *ledger {
	return &ledger{acked: map[string]position{}, read: map[string]int{}}
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// unread counts the acknowledged values no member has read and lists up to limit.
func (l *ledger) unread(limit int) (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	var some []string
	for v := range l.acked {
		if l.read[v] == 0 {
			n++
			if len(some) < limit {
				some = append(some, v)
			}
		}
	}
	sort.Strings(some)
	return n, some
}

// keyedProducer produces keyed records in calls of 20, one call at a time, until
// stopped, recording every result in its ledger.
type keyedProducer struct {
	prefix      string
	p           *qxd.Producer
	led         *ledger
	stop        chan struct{}
	done        chan struct{}
	callTimeout time.Duration
}

// startProducer starts a keyed producer for topic on c. Its records' values start
// with prefix.
func startProducer(ctx context.Context, t *testing.T, c *qxd.Client, topic, prefix string, led *ledger, opts ...qxd.ProducerOption) *keyedProducer {
	t.Helper()
	p, err := c.NewProducer(append([]qxd.ProducerOption{qxd.Linger(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	return runProducer(ctx, p, topic, prefix, led, 0)
}

// runProducer runs a keyed producer for topic on p; halt closes p. Each Produce
// call gets a context that ends after callTimeout (0: 30s): what blocks inside
// Produce is bounded by the caller's context only.
func runProducer(ctx context.Context, p *qxd.Producer, topic, prefix string, led *ledger, callTimeout time.Duration) *keyedProducer {
	if callTimeout == 0 {
		callTimeout = 30 * time.Second
	}
	kp := &keyedProducer{prefix: prefix, p: p, led: led, stop: make(chan struct{}), done: make(chan struct{}), callTimeout: callTimeout}
	go kp.run(ctx, topic)
	return kp
}

func (kp *keyedProducer) run(ctx context.Context, topic string) {
	defer close(kp.done)
	const per = 20
	for i := 0; ; i += per {
		select {
		case <-kp.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		var wg sync.WaitGroup
		began := time.Now()
		cctx, cancel := context.WithTimeout(ctx, kp.callTimeout)
		for j := range per {
			r := &qxd.Record{
				Topic: topic,
				Key:   []byte(fmt.Sprintf("%s-k%d", kp.prefix, (i+j)%23)),
				Value: []byte(fmt.Sprintf("%s-%09d", kp.prefix, i+j)),
			}
			wg.Add(1)
			err := kp.p.Produce(cctx, r, func(r *qxd.Record, err error) {
				defer wg.Done()
				kp.led.mu.Lock()
				defer kp.led.mu.Unlock()
				if err != nil {
					kp.led.failed++
					kp.led.lastErr = err
					return
				}
				kp.led.acked[string(r.Value)] = position{r.Partition, r.Offset}
			})
			if err != nil {
				wg.Done()
				kp.led.mu.Lock()
				kp.led.lastErr = err
				kp.led.mu.Unlock()
				break
			}
			kp.led.mu.Lock()
			kp.led.produced++
			kp.led.mu.Unlock()
		}
		wg.Wait() // bounded by the producer's delivery timeout
		cancel()
		took := time.Since(began)
		kp.led.mu.Lock()
		if took > kp.led.stall {
			kp.led.stall, kp.led.stallAt = took, began
		}
		if took > time.Second {
			kp.led.stalls = append(kp.led.stalls, stallRec{began, took})
		}
		kp.led.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// halt stops producing and closes the producer (bounded).
func (kp *keyedProducer) halt() {
	select {
	case <-kp.stop:
	default:
		close(kp.stop)
	}
	<-kp.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = kp.p.Close(ctx)
}

// group is a consumer group of members, each on its own connection, recording what
// they read in a ledger.
type group struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	members []*qxd.Consumer
}

// startGroup starts n members of group id reading topic, each with its own client of
// urls, with a 10 s session timeout.
func startGroup(ctx context.Context, t *testing.T, urls, id, topic string, n int, led *ledger) *group {
	t.Helper()
	g := &group{stop: make(chan struct{})}
	for i := range n {
		var cl *qxd.Client
		if led.memberLog != nil {
			cl = connectWith(t, urls, nil, qxd.Logger(slog.New(logfHandler{func(line string) { led.memberLog(i, line) }})))
		} else {
			cl = connect(t, urls)
		}
		cons := qxdtest.NewConsumer(t, cl, qxd.Group(id), qxd.SessionTimeout(10*time.Second), qxd.AutoCommit(time.Second))
		if err := cons.Subscribe(ctx, topic); err != nil {
			t.Fatalf("subscribe member of %s: %v", id, err)
		}
		g.members = append(g.members, cons)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				recs, err := cons.Poll(pctx)
				cancel()
				if len(recs) > 0 {
					led.mu.Lock()
					now := time.Now()
					for _, r := range recs {
						led.read[string(r.Value)]++
						if led.reads != nil {
							led.reads = append(led.reads, readRec{string(r.Value), i, now})
						}
					}
					led.mu.Unlock()
				}
				if err != nil && pctx.Err() == nil {
					led.mu.Lock()
					if led.pollErrs != nil && len(led.pollErrs) < 20 {
						led.pollErrs = append(led.pollErrs, fmt.Sprintf("%s member %d: %v", time.Now().Format("15:04:05.000"), i, err))
					}
					led.mu.Unlock()
					time.Sleep(50 * time.Millisecond) // a stopped member keeps failing
				}
			}
		}()
	}
	return g
}

// halt stops the members and closes them.
func (g *group) halt() {
	close(g.stop)
	g.wg.Wait()
	for _, m := range g.members {
		_ = m.Close(context.Background())
	}
}

// state describes each member as it sees itself: generation, member id, partitions
// and positions.
func (g *group) state() string {
	var b strings.Builder
	for i, m := range g.members {
		gen, id := m.Generation()
		fmt.Fprintf(&b, "member %d (%s, generation %d):", i, id, gen)
		for _, tp := range m.Assigned() {
			pos, ok := m.Position(tp.Topic, tp.Partition)
			fmt.Fprintf(&b, " %d@%d", tp.Partition, pos)
			if !ok {
				b.WriteString("?")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// waitRead waits until the group read every acknowledged record, or ctx ends. Its
// error says, per partition, how many acknowledged records were not read and the
// lowest offset among them.
func waitRead(ctx context.Context, led *ledger) error {
	for {
		n, _ := led.unread(5)
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			led.mu.Lock()
			type miss struct {
				n     int
				first int64
				offs  []int64
			}
			per := map[int32]*miss{}
			for v, at := range led.acked {
				if led.read[v] > 0 {
					continue
				}
				m := per[at.partition]
				if m == nil {
					m = &miss{first: at.offset}
					per[at.partition] = m
				}
				m.n++
				m.first = min(m.first, at.offset)
				m.offs = append(m.offs, at.offset)
			}
			led.mu.Unlock()
			var parts []string
			for p := int32(0); p < 1000 && len(parts) < len(per); p++ {
				if m := per[p]; m != nil {
					text := fmt.Sprintf("partition %d: %d unread from offset %d", p, m.n, m.first)
					if m.n <= 10 {
						sort.Slice(m.offs, func(i, j int) bool { return m.offs[i] < m.offs[j] })
						text += fmt.Sprintf(" (offsets %v)", m.offs)
					}
					parts = append(parts, text)
				}
			}
			return fmt.Errorf("the group never read %d acknowledged records (%s)", n, strings.Join(parts, "; "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// storedRecord is one record of a partition's log.
type storedRecord struct {
	offset int64
	key    string
	value  string
}

// readLog reads every record of topic from the log start of each partition with an
// assign-mode consumer, per partition in offset order.
func readLog(ctx context.Context, c *qxd.Client, topic string) (map[int32][]storedRecord, error) {
	// Describe until every partition answers: right after a leader change a
	// partition's stream may briefly have no leader.
	var d qxd.TopicDescription
	for {
		var err error
		d, err = c.Admin().DescribeTopic(ctx, topic)
		problem := err
		if err == nil {
			for _, p := range d.Partitions {
				if p.Problem != "" {
					problem = fmt.Errorf("partition %d: %s", p.Partition, p.Problem)
				}
			}
		}
		if problem == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("describe %s: %w", topic, problem)
		case <-time.After(250 * time.Millisecond):
		}
	}
	cons, err := c.NewConsumer()
	if err != nil {
		return nil, err
	}
	defer cons.Close(context.Background())
	var as []qxd.Assignment
	want := map[int32]int64{}
	for _, p := range d.Partitions {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p.Partition, Offset: qxd.AtStart()})
		want[p.Partition] = p.HighWatermark
	}
	if err := cons.Assign(ctx, as...); err != nil {
		return nil, err
	}
	out := map[int32][]storedRecord{}
	pos := map[int32]int64{}
	done := func() bool {
		for p, hw := range want {
			if pos[p] < hw {
				return false
			}
		}
		return true
	}
	for !done() {
		recs, err := cons.Poll(ctx)
		if err != nil {
			return out, fmt.Errorf("read %s: %w (read up to %v of %v)", topic, err, pos, want)
		}
		for _, r := range recs {
			out[r.Partition] = append(out[r.Partition], storedRecord{offset: r.Offset, key: string(r.Key), value: string(r.Value)})
			pos[r.Partition] = r.Offset + 1
		}
	}
	return out, nil
}

// logReport is what checkLog found.
type logReport struct {
	stored      int      // records in the log
	duplicates  int      // values stored more than once (extra copies)
	lost        []string // acknowledged values not in the log
	unacked     int      // stored values that were never acknowledged
	orderBroken int      // records stored after a later record of their key
	problems    []string // broken invariants: gaps, order, misplaced acknowledgements
}

// checkLog checks a topic's log against what was acknowledged: offsets dense from 0
// in every partition, every acknowledged value stored exactly once and where its
// acknowledgement said, and the values of each key in the order produced.
func checkLog(log map[int32][]storedRecord, acked map[string]position) logReport {
	var rep logReport
	stored := map[string][]position{}
	type keyLast struct {
		seq    int
		value  string
		offset int64
	}
	lastByKey := map[string]keyLast{}
	parts := make([]int32, 0, len(log))
	for p := range log {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		for i, r := range log[p] {
			if r.offset != int64(i) && len(rep.problems) < 20 {
				rep.problems = append(rep.problems, fmt.Sprintf("partition %d: offset %d at position %d: offsets are not dense", p, r.offset, i))
			}
			rep.stored++
			stored[r.value] = append(stored[r.value], position{p, r.offset})
			seq, err := strconv.Atoi(r.value[strings.LastIndexByte(r.value, '-')+1:])
			if err != nil {
				rep.problems = append(rep.problems, fmt.Sprintf("partition %d offset %d: value %q is not one the test produced", p, r.offset, r.value))
				continue
			}
			if prev, ok := lastByKey[r.key]; ok && seq < prev.seq {
				_, ackedThis := acked[r.value]
				_, ackedPrev := acked[prev.value]
				rep.orderBroken++
				if len(rep.problems) < 20 {
					rep.problems = append(rep.problems, fmt.Sprintf("key %s: %s (%s) stored at partition %d offset %d, after %s (%s) at offset %d: per-key order broken",
						r.key, r.value, ackState(ackedThis), p, r.offset, prev.value, ackState(ackedPrev), prev.offset))
				}
			}
			lastByKey[r.key] = keyLast{seq: seq, value: r.value, offset: r.offset}
		}
	}
	for v, ps := range stored {
		if len(ps) > 1 {
			rep.duplicates += len(ps) - 1
			if len(rep.problems) < 20 {
				rep.problems = append(rep.problems, fmt.Sprintf("value %s stored %d times, at %v", v, len(ps), ps))
			}
		}
		if _, ok := acked[v]; !ok {
			rep.unacked++
		}
	}
	for v, at := range acked {
		ps := stored[v]
		if len(ps) == 0 {
			rep.lost = append(rep.lost, v)
			continue
		}
		// Offset -1: the writer found the batch already stored, older than the
		// batches it remembers per producer (Kafka's DUPLICATE_SEQUENCE_NUMBER,
		// which its producer also completes as stored with offset -1).
		if (ps[0] != at && !(at.offset == -1 && ps[0].partition == at.partition)) && len(rep.problems) < 20 {
			rep.problems = append(rep.problems, fmt.Sprintf("value %s acknowledged at partition %d offset %d but stored at %v", v, at.partition, at.offset, ps))
		}
	}
	sort.Strings(rep.lost)
	return rep
}

func ackState(acked bool) string {
	if acked {
		return "acknowledged"
	}
	return "not acknowledged"
}

// dumpAnomalies logs the records around the first offset gap of each partition and
// around the copies of the first few values stored more than once, to tell which
// producer's records are involved.
func dumpAnomalies(t *testing.T, log map[int32][]storedRecord, limit int) {
	t.Helper()
	around := func(p int32, from, to int64) string {
		recs := log[p]
		var b strings.Builder
		for _, r := range recs[max(0, from):min(int64(len(recs)), to)] {
			fmt.Fprintf(&b, " %d:%s", r.offset, r.value)
		}
		return b.String()
	}
	seen := map[string][]position{}
	for p, recs := range log {
		gap := false
		for i, r := range recs {
			seen[r.value] = append(seen[r.value], position{p, r.offset})
			if !gap && r.offset != int64(i) {
				gap = true
				t.Logf("partition %d: offset %d at position %d; records around it (offset:value):%s", p, r.offset, i, around(p, int64(i)-6, int64(i)+6))
			}
		}
	}
	n := 0
	for v, ps := range seen {
		if len(ps) < 2 || n >= limit {
			continue
		}
		n++
		t.Logf("%s stored at %v; records around it (offset:value):%s", v, ps, around(ps[0].partition, ps[0].offset-4, ps[len(ps)-1].offset+5))
	}
}

// report fails t for every broken invariant in rep.
func (rep logReport) report(t *testing.T) {
	t.Helper()
	if n := len(rep.lost); n > 0 {
		t.Errorf("%d acknowledged records are lost, e.g. %v", n, rep.lost[:min(n, 10)])
	}
	if rep.duplicates > 0 {
		t.Errorf("%d records stored more than once", rep.duplicates)
	}
	for _, p := range rep.problems {
		t.Error(p)
	}
}

// logfHandler is a slog handler that hands each record, with its attributes, to
// logf.
type logfHandler struct{ logf func(string) }

func (h logfHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h logfHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.logf(b.String())
	return nil
}
func (h logfHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logfHandler) WithGroup(string) slog.Handler      { return h }
