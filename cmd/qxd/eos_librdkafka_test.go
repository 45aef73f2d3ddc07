package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The librdkafka members of the exactly-once pipeline (eos_test.go): each
// incarnation a Python process with confluent-kafka (librdkafka) on the nodes'
// Kafka listeners, a read_committed consumer of group "eos" and a transactional
// producer whose transactions carry the input offsets
// (send_offsets_to_transaction), as Kafka's consume-transform-produce loop does.

// eosPython is the Python with confluent-kafka: QXD_KAFKA_PYTHON, else Debian's.
func eosPython() string {
	if p := os.Getenv("QXD_KAFKA_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// needConfluentKafka skips the test when eosPython cannot import confluent_kafka.
func needConfluentKafka(t *testing.T) {
	t.Helper()
	py := eosPython()
	if out, err := exec.Command(py, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import confluent_kafka (%v: %s): apt-get install -y python3-confluent-kafka (or run `just kafka-clients`)",
			py, err, strings.TrimSpace(string(out)))
	}
}

// eosConfluentProgram is one member incarnation. Arguments: the bootstrap
// servers, the transactional id and librdkafka's debug contexts (none when
// empty). It prints one line an event: "begin N", "commit N",
// "fail N <error>[; deliveries failed: {<error>: count}]", "died N", "fatal <what> <error>", "log <text>". SIGTERM
// stops it after the current transaction; SIGUSR1 makes it SIGKILL itself in
// the middle of the next transaction, its records flushed to the log.
const eosConfluentProgram = `
import os, signal, sys, time
import confluent_kafka
from confluent_kafka import Consumer, Producer, KafkaException, TopicPartition, OFFSET_BEGINNING
seeds, tid, debug = sys.argv[1:4]
extra = {"debug": debug} if debug else {}
state = {"stop": False, "die": False}
signal.signal(signal.SIGTERM, lambda *a: state.__setitem__("stop", True))
signal.signal(signal.SIGUSR1, lambda *a: state.__setitem__("die", True))

def say(*a):
    print(*a, flush=True)

def leave(code, *a):
    say(*a)
    sys.stdout.flush()
    os._exit(code)

say("log confluent-kafka %s (librdkafka %s), transactional.id %s" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0], tid))
c = Consumer({"bootstrap.servers": seeds, "group.id": "eos", "isolation.level": "read_committed",
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **extra})
failed = {}  # the current transaction's delivery errors, counted by error

def delivered(err, msg):
    if err is not None:
        failed[str(err)] = failed.get(str(err), 0) + 1

p = Producer({"bootstrap.servers": seeds, "transactional.id": tid, "transaction.timeout.ms": 15000,
              "on_delivery": delivered, **extra})

def retrying(what, f):
    # f until it succeeds or fails with an error that retrying does not cure.
    while True:
        try:
            return f()
        except KafkaException as e:
            err = e.args[0]
            if err.retriable() and not err.fatal() and not err.txn_requires_abort() and not state["stop"]:
                say("log %s: %s; retrying" % (what, err))
                continue
            raise

try:
    retrying("init_transactions", lambda: p.init_transactions(30))
except KafkaException as e:
    leave(1, "fatal init_transactions", e)
c.subscribe(["eos-in"])

def rewind():
    # Back to the group's committed offsets: the aborted records are read again.
    tps = c.assignment()
    if not tps:
        return
    for tp in c.committed(tps, timeout=20):
        if tp.offset < 0:
            tp.offset = OFFSET_BEGINNING
        c.seek(tp)

quiet = time.time()
while not state["stop"]:
    recs = []
    for m in c.consume(num_messages=60, timeout=0.3):
        if m.error():
            say("log consume: %s" % m.error())
            continue
        recs.append(m)
    if not recs:
        if time.time() - quiet > 15:
            # Long without records: where its partitions stand, for the log.
            quiet = time.time()
            tps = c.assignment()
            say("log nothing to read for 15 s; assigned %s at %s" % (
                sorted(tp.partition for tp in tps),
                sorted((tp.partition, tp.offset) for tp in c.position(tps))))
        continue
    quiet = time.time()
    failed.clear()
    say("begin %d" % len(recs))
    try:
        p.begin_transaction()
        nxt = {}
        for m in recs:
            v = b"%s@%d/%d" % (m.value(), m.partition(), m.offset())
            while True:
                try:
                    p.produce("eos-out", key=m.key(), value=v)
                    break
                except BufferError:
                    p.poll(0.1)
            nxt[(m.topic(), m.partition())] = m.offset() + 1
        if state["die"]:
            p.flush(10)
            say("died %d" % len(recs))
            os.kill(os.getpid(), signal.SIGKILL)
        offs = [TopicPartition(t, q, o) for (t, q), o in nxt.items()]
        retrying("send_offsets_to_transaction", lambda: p.send_offsets_to_transaction(offs, c.consumer_group_metadata(), 30))
        retrying("commit_transaction", lambda: p.commit_transaction(30))
        say("commit %d" % len(recs))
    except KafkaException as e:
        err = e.args[0]
        if err.fatal():
            leave(1, "fatal transaction of %d records: %s" % (len(recs), err))
        say("fail %d %s" % (len(recs), err) + ("; deliveries failed: %s" % failed if failed else ""))
        try:
            retrying("abort_transaction", lambda: p.abort_transaction(30))
            rewind()
        except KafkaException as e2:
            leave(2, "fatal abort and rewind: %s" % e2)
c.close()
leave(0, "log stopped")
`

// eosHung is how long a librdkafka member may take from the start of a
// transaction to its end before it counts as hung and is killed: the calls it
// makes have 30 s timeouts, retried with a logged line. librdkafka's
// send_offsets_to_transaction can wait past its timeout when the group
// coordinator's node goes away (confluentinc/librdkafka#5456).
const eosHung = 2 * time.Minute

// pythonIncarnation runs one incarnation of the member as a confluent-kafka
// process; it returns false when the run stops.
func (m *eosMember) pythonIncarnation(ctx context.Context) bool {
	cmd := exec.CommandContext(ctx, eosPython(), "-c", eosConfluentProgram,
		strings.Join(m.run.seeds, ","), fmt.Sprintf("eos-%d", m.id), os.Getenv("QXD_EOS_LIBRDKAFKA_DEBUG"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		m.logf("python stdout: %v", err)
		return true
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		m.logf("python stderr: %v", err)
		return true
	}
	if err := cmd.Start(); err != nil {
		m.logf("start python: %v", err)
		return true
	}
	done := make(chan struct{})
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		m.pythonLines(stderr, "stderr: ")
	}()
	go func() {
		defer close(done)
		m.pythonLines(stdout, "")
	}()
	stopped := false
	stop := m.run.stop
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-stop:
			stop, stopped = nil, true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			go func() {
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
				}
			}()
		case <-tick.C:
			if m.kill.Swap(false) {
				_ = cmd.Process.Signal(syscall.SIGUSR1)
			}
			if b := m.begun.Load(); b != 0 && time.Since(time.Unix(0, b)) > eosHung && !stopped {
				// Every call it makes has a 30 s timeout and a retry logs a
				// line: the client hangs. As a supervisor would, kill it.
				m.run.hung.Add(1)
				m.logf("HUNG: no end of its transaction %v after it began; SIGKILL", eosHung)
				m.begun.Store(0)
				_ = cmd.Process.Kill()
			}
		}
	}
	<-errDone
	m.begun.Store(0)
	err = cmd.Wait()
	if stopped {
		return false
	}
	m.logf("python exited: %v; starting again", err)
	return ctx.Err() == nil
}

// pythonLines reads a member process's lines, counting its transactions.
func (m *eosMember) pythonLines(r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if prefix == "" {
			switch word, _, _ := strings.Cut(line, " "); word {
			case "begin":
				m.begun.Store(time.Now().UnixNano())
				continue
			case "commit":
				m.begun.Store(0)
				m.run.commits.Add(1)
				continue
			case "fail":
				m.begun.Store(0)
				m.run.failures.Add(1)
			}
		}
		m.logf("%s%s", prefix, line)
	}
}
