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

// TestKafkaRdkafkaFaultDrill is TestKafkaFaultDrill with librdkafka clients: the
// producer and the group member are Python processes with confluent-kafka
// (testdata/kafka_drill.py) on the same cluster, topic and faults
// (QXD_KAFKA_FAULT, QXD_CUT_HOLD). The producer is idempotent with acks=all and
// no linger, and sends each key's next record 5 ms after the previous one's
// delivery report; it prints every record it hands to the client and every
// report, which the test times and checks as the franz-go drill does (the same
// bounds, every record handed over acknowledged, and nothing lost, doubled,
// reordered or left unread by the group).
//
// The clients bound their requests to 5 s (socket.timeout.ms=5000), as
// docs/kafka.md recommends; QXD_KAFKA_TIMEOUTS=default keeps librdkafka's 60 s,
// and a pause is then reported without the faulty node's bound. (librdkafka's
// request.timeout.ms, 30 s, is the produce timeout the broker is told; what
// ends the client's wait for a request in flight is socket.timeout.ms.) QXD_RDKAFKA_CONF adds librdkafka settings to both
// clients ("name=value name=value"). It skips when /usr/bin/python3 (or
// QXD_KAFKA_PYTHON) cannot import confluent_kafka: `just kafka-clients`
// installs it.
func TestKafkaRdkafkaFaultDrill(t *testing.T) {
	needConfluentKafka(t)
	r := startKafkaDrill(t)
	d := newKafkaDrillLedger()
	var conf []string
	if r.short {
		conf = append(conf, "socket.timeout.ms=5000")
	}
	conf = append(conf, strings.Fields(os.Getenv("QXD_RDKAFKA_CONF"))...)
	t.Logf("librdkafka settings: %v", conf)

	member := startRdkafkaDrillClient(t, r, "consume", kafkaDrillGroup, conf, func(f []string) {
		if f[0] == "rec" && len(f) == 4 {
			d.consume(f[1])
		}
	})
	prod := startRdkafkaDrillClient(t, r, "produce", strconv.Itoa(kafkaDrillKeys), conf, func(f []string) {
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
	})
	r.warmUp(t, d)
	faultAt := r.faultAndBack(t)
	time.Sleep(10 * time.Second)
	prod.stop(t, 3*time.Minute)
	// Every record acknowledged reaches the member.
	for wait := time.Now(); d.missing() > 0 && time.Since(wait) < 45*time.Second; time.Sleep(200 * time.Millisecond) {
	}
	member.stop(t, time.Minute)
	r.verdict(t, d, "librdkafka", faultAt, time.Now())
}

// rdkafkaDrillClient is a running testdata/kafka_drill.py.
type rdkafkaDrillClient struct {
	mode string
	cmd  *exec.Cmd
	done chan struct{} // closed when its output ends
}

// startRdkafkaDrillClient starts testdata/kafka_drill.py in mode (produce or
// consume) with arg (the number of keys, or the group) and the librdkafka
// settings conf. Each line it prints goes to line split into fields; lines
// other than records and reports, and what it writes to stderr (librdkafka's
// own logs), go to the test's log, or with QXD_TEST_KEEP_LOGS=<dir> to a file
// there.
func startRdkafkaDrillClient(t *testing.T, r *kafkaDrill, mode, arg string, conf []string, line func([]string)) *rdkafkaDrillClient {
	t.Helper()
	args := append([]string{"testdata/kafka_drill.py", mode, strings.Join(r.seeds, ","), kafkaDrillTopic, arg}, conf...)
	if os.Getenv("QXD_KAFKA_DRILL_DEBUG") == "1" {
		args = append(args, "debug=broker,topic,metadata,msg,eos,protocol")
	}
	cmd := exec.CommandContext(r.ctx, eosPython(), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	logTo := func(s string) { t.Logf("%s: %s", mode, s) }
	if dir := os.Getenv("QXD_TEST_KEEP_LOGS"); dir != "" {
		f, err := os.CreateTemp(dir, "kafka-drill-rdkafka-"+mode+"-*.log")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		t.Logf("librdkafka %s log in %s", mode, f.Name())
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
	c := &rdkafkaDrillClient{mode: mode, cmd: cmd, done: make(chan struct{})}
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
			if len(f) > 0 && (f[0] == "ack" || f[0] == "rec" || f[0] == "sent") {
				line(f)
				if f[0] != "ack" || f[len(f)-1] == "-" {
					continue
				}
			}
			logTo(sc.Text())
		}
	}()
	return c
}

// stop asks the client to end (SIGTERM: the producer first waits for the
// reports of what it has in flight) and waits up to timeout for it.
func (c *rdkafkaDrillClient) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Errorf("the librdkafka %s did not end within %v of SIGTERM; killed", c.mode, timeout)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
