//go:build chaos

package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kafkaDrillClient is a running drill client program of another language
// (testdata/kafka_drill.py, testdata/java/KafkaDrill.java). Both print the same
// lines: "sent <value> <send ns>" and "ack <value> <partition> <offset> <send ns>
// <report ns> <error or ->" for the producer, "rec <value> <partition> <offset>"
// for the group member (the Java one also "back <partition> <from> <to>", see
// consumed), anything else for the log.
type kafkaDrillClient struct {
	client, mode string
	cmd          *exec.Cmd
	done         chan struct{} // closed when its output ends
}

// startKafkaDrillClient starts the program name with args as the drill's client
// (named client, running as mode: produce or consume). Each sent, ack or rec
// line it prints goes to line split into fields; other lines, and what it writes
// to stderr, go to the test's log, or with QXD_TEST_KEEP_LOGS=<dir> to a file
// there.
func startKafkaDrillClient(t *testing.T, r *kafkaDrill, client, mode, name string, args []string, line func([]string)) *kafkaDrillClient {
	t.Helper()
	cmd := exec.CommandContext(r.ctx, name, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	logTo := func(s string) { t.Logf("%s: %s", mode, s) }
	if dir := os.Getenv("QXD_TEST_KEEP_LOGS"); dir != "" {
		f, err := os.CreateTemp(dir, "kafka-drill-"+client+"-"+mode+"-*.log")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		t.Logf("%s %s log in %s", client, mode, f.Name())
		logTo = func(s string) {
			logMu.Lock()
			defer logMu.Unlock()
			_, _ = f.WriteString(time.Now().Format("15:04:05.000 ") + s + "\n")
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	c := &kafkaDrillClient{client: client, mode: mode, cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logTo("stderr: " + sc.Text())
		}
	}()
	go func() {
		defer close(c.done)
		defer func() { <-errDone; _ = cmd.Wait() }()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 0 && (f[0] == "ack" || f[0] == "rec" || f[0] == "sent" || f[0] == "back") {
				line(f)
				if f[0] == "rec" || f[0] == "sent" || f[0] == "ack" && f[len(f)-1] == "-" {
					continue
				}
			}
			logTo(sc.Text())
		}
	}()
	return c
}

// stop asks the client to end (SIGTERM: the producer first waits for the
// acknowledgements of what it has in flight) and waits up to timeout for it.
func (c *kafkaDrillClient) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Errorf("the %s %s did not end within %v of SIGTERM; killed", c.client, c.mode, timeout)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// produced enters a drill producer's sent and ack lines in d.
func produced(t *testing.T, d *kafkaDrillLedger) func([]string) {
	return func(f []string) {
		if f[0] == "sent" && len(f) == 3 {
			sent, _ := strconv.ParseInt(f[2], 10, 64)
			d.send(f[1], time.Unix(0, sent))
			return
		}
		if f[0] != "ack" || len(f) != 7 {
			return
		}
		if f[6] != "-" {
			d.fail(f[1])
			t.Logf("delivery of %s failed: %s", f[1], f[6])
			return
		}
		p, _ := strconv.ParseInt(f[2], 10, 32)
		off, _ := strconv.ParseInt(f[3], 10, 64)
		sent, _ := strconv.ParseInt(f[4], 10, 64)
		at, _ := strconv.ParseInt(f[5], 10, 64)
		d.ack(f[1], int32(p), off, time.Unix(0, sent), time.Unix(0, at))
	}
}

// consumed enters a drill member's rec lines in d, and fails the test on a
// back line: a read that went back in a partition the member kept assigned.
// Nothing the drill does trims or truncates the log, so only a wrong answer
// sends a client back there (OFFSET_OUT_OF_RANGE below the log's end, which
// sends it to its reset policy: earliest, offset 0).
func consumed(t *testing.T, d *kafkaDrillLedger) func([]string) {
	return func(f []string) {
		switch {
		case f[0] == "rec" && len(f) == 4:
			d.consume(f[1])
		case f[0] == "back" && len(f) == 4:
			t.Errorf("the group member's read of partition %s went back from offset %s to %s while it kept the partition (no rebalance between)", f[1], f[2], f[3])
		}
	}
}

// runKafkaDrillClients runs the drill with a producer and a group member
// started by start (with mode, the argument, and the function their lines go
// to), and judges it as client.
func runKafkaDrillClients(t *testing.T, r *kafkaDrill, client string, start func(mode, arg string, line func([]string)) *kafkaDrillClient) {
	t.Helper()
	d := newKafkaDrillLedger()
	member := start("consume", kafkaDrillGroup, consumed(t, d))
	prod := start("produce", strconv.Itoa(kafkaDrillKeys), produced(t, d))
	r.warmUp(t, d)
	faultAt := r.faultAndBack(t)
	time.Sleep(10 * time.Second)
	prod.stop(t, 3*time.Minute)
	// Every record acknowledged reaches the member.
	for wait := time.Now(); d.missing() > 0 && time.Since(wait) < 45*time.Second; time.Sleep(200 * time.Millisecond) {
	}
	member.stop(t, time.Minute)
	r.verdict(t, d, client, faultAt, time.Now())
}

// clientConf is a drill client's settings: short, the setting that bounds a
// request at 5 s, when the drill runs with short timeouts, then those listed in
// the environment variable env ("name=value name=value").
func (r *kafkaDrill) clientConf(short, env string) []string {
	var conf []string
	if r.short {
		conf = append(conf, short)
	}
	return append(conf, strings.Fields(os.Getenv(env))...)
}
