package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestKafkaConsumeRecyclesRecords: the Kafka side's franz-go consumers decode
// every batch's records into a slice from the bench's pool, and every slice goes
// back once its records are counted, so a read reuses slices rather than making
// a fresh one for every batch.
func TestKafkaConsumeRecyclesRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := Run(ctx, e, Config{Mode: ModeConsume, Records: 20000, Partitions: 2, BatchBytes: 16 << 10, CompareKafka: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kafka == nil || r.Kafka.Records != 20000 {
		t.Fatalf("kafka side moved %+v records, want 20000", r.Kafka)
	}
	gets, puts := e.kafkaRecords.gets.Load(), e.kafkaRecords.puts.Load()
	if gets < 2 {
		t.Fatalf("%d record slices taken from the pool for a read of many batches: the consumers do not use it", gets)
	}
	if puts != gets {
		t.Errorf("%d record slices taken from the pool, %d put back: records not recycled", gets, puts)
	}
}

// TestKafkaConsumeConnectsBeforeClock: the Kafka side's clients are connected
// before its clock starts, as the SDK side's client is: the clock covers giving
// the consumers their partitions and reading, not a TCP connection and Kafka's
// API versions handshake. The clients reach the node through a proxy here that
// counts the connections it accepted when the clock started.
func TestKafkaConsumeConnectsBeforeClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	node := e.KafkaAddrs
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				n, err := net.Dial("tcp", node[0])
				if err != nil {
					return
				}
				defer n.Close()
				go io.Copy(n, c)
				io.Copy(c, n)
			}()
		}
	}()
	e.KafkaAddrs = []string{ln.Addr().String()}
	defer func() { e.KafkaAddrs = node }()
	atClock := int64(-1)
	onPhase := func(system, phase string) func() {
		if system == "kafka" && phase == "run" {
			atClock = accepted.Load()
		}
		return nil
	}
	r, err := Run(ctx, e, Config{Mode: ModeConsume, Records: 2000, Partitions: 2, CompareKafka: true, OnPhase: onPhase})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kafka == nil || r.Kafka.Records != 2000 {
		t.Fatalf("kafka side moved %+v records, want 2000", r.Kafka)
	}
	if atClock < 1 {
		t.Errorf("%d connections to the node's Kafka listener when the Kafka side's clock started: its clients connect on the clock", atClock)
	}
}

// TestKafkaConsumeFetchConnectionBeforeClock: franz-go fetches on a connection
// of its own to each broker, and the Kafka side makes it before its clock
// starts, as the SDK side's fetches use the connection its client already has:
// no connection to the node's Kafka listener is opened while the clock runs.
// The listener's end of every open connection is read from /proc/net/tcp when
// the clock starts and when it stops.
func TestKafkaConsumeFetchConnectionBeforeClock(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs /proc/net/tcp:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := NewEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, port, err := net.SplitHostPort(e.KafkaAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	var atStart, atStop map[string]bool
	onPhase := func(system, phase string) func() {
		if system != "kafka" || phase != "run" {
			return nil
		}
		atStart = listenerConns(t, port)
		return func() { atStop = listenerConns(t, port) }
	}
	r, err := Run(ctx, e, Config{Mode: ModeConsume, Records: 2000, Partitions: 2, CompareKafka: true, OnPhase: onPhase})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kafka == nil || r.Kafka.Records != 2000 {
		t.Fatalf("kafka side moved %+v records, want 2000", r.Kafka)
	}
	if len(atStart) == 0 {
		t.Fatalf("no connection to the Kafka listener (port %s) when the clock started", port)
	}
	for c := range atStop {
		if !atStart[c] {
			t.Errorf("connection %s to the Kafka listener opened on the clock (open at its start: %v)", c, atStart)
		}
	}
}

// listenerConns returns the established TCP connections (IPv4 and IPv6) whose
// local port is port, as "local remote" from /proc/net/tcp{,6}.
func listenerConns(t *testing.T, port string) map[string]bool {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf(":%04X", p)
	conns := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 3 && fs[3] == "01" && strings.HasSuffix(fs[1], suffix) {
				conns[fs[1]+" "+fs[2]] = true
			}
		}
	}
	return conns
}
