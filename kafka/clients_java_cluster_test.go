//go:build kafkaclients

package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// partitionLeaderNode returns the node that leads partition p of topic, as the
// Kafka Metadata of a node other than skip answers it.
func partitionLeaderNode(t *testing.T, ctx context.Context, nodes []*server.Node, skip *server.Node, topic string, p int32) *server.Node {
	t.Helper()
	for _, n := range nodes {
		if n == skip {
			continue
		}
		md, err := kadm.NewClient(kafkaClient(t, n)).Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		leader := md.Topics[topic].Partitions[p].Leader
		for _, b := range md.Brokers {
			if b.NodeID != leader {
				continue
			}
			for _, ln := range nodes {
				if ln.KafkaAddr() == fmt.Sprintf("%s:%d", b.Host, b.Port) {
					return ln
				}
			}
		}
		t.Fatalf("metadata from %s: partition %d led by broker %d, not one of the nodes", n.Name(), p, leader)
	}
	t.Fatal("no node to ask")
	return nil
}

// javaCluster starts three in-process nodes with Kafka listeners and returns
// them, a client of all three, and their Kafka addresses joined for
// bootstrap.servers.
func javaCluster(t *testing.T) ([]*server.Node, *qxd.Client, string) {
	t.Helper()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	var brokers []string
	for _, n := range nodes {
		brokers = append(brokers, n.KafkaAddr())
	}
	return nodes, qxdtest.ConnectCluster(t, nodes), strings.Join(brokers, ",")
}

// startJava starts Check.java's scenario against brokers, its standard output
// gathered in stdout, and returns its standard error to be read as it runs.
func startJava(t *testing.T, ctx context.Context, cp string, stdout *bytes.Buffer, scenario, brokers string, args ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "java", append([]string{"-cp", cp, "Check", scenario, brokers}, args...)...)
	cmd.Stdout = stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, pipe
}

// On the in-process 3-node cluster, a Java idempotent producer (acks=all) sends
// keyed records, ten keys, while a Java consumer reads every partition. A third of
// the way in, partition 0's leader steps down; two thirds of the way in, the node
// leading partition 1 stops. Every record is acknowledged, and every acknowledged
// record is read once, at the partition and offset the producer was told, each
// key's records in the order sent; the SDK reads the same.
func TestClientJavaClusterFailover(t *testing.T) {
	cp := needJava(t)
	nodes, c, brokers := javaCluster(t)
	const topic, partitions, n = "java-failover", 3, 600
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions, Replicas: 3})
	ctx := ctxFor(t, 150*time.Second)

	var stdout, stderr bytes.Buffer
	cmd, pipe := startJava(t, ctx, cp, &stdout, "failover", brokers, topic, fmt.Sprint(n))
	start := time.Now()
	var stopped *server.Node
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		stderr.WriteString(line + "\n")
		var acked int
		if _, err := fmt.Sscanf(line, "acked %d", &acked); err != nil {
			continue
		}
		switch {
		case acked == n/3:
			nc, err := nats.Connect(nodes[0].ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, semantics.StreamName(topic, 0)), nil); err != nil {
				t.Errorf("step partition 0's leader down: %v", err)
			}
			nc.Close()
			t.Logf("partition 0's leader stepped down after %d acknowledgements, %v in", acked, time.Since(start).Round(time.Millisecond))
		case acked == 2*n/3:
			stopped = partitionLeaderNode(t, ctx, nodes, nil, topic, 1)
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := stopped.Close(sctx)
			cancel()
			if err != nil {
				t.Errorf("stop %s: %v", stopped.Name(), err)
			}
			t.Logf("%s, leading partition 1, stopped after %d acknowledgements, %v in", stopped.Name(), acked, time.Since(start).Round(time.Millisecond))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("java Check failover: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("the Java clients ran %v", time.Since(start).Round(time.Millisecond))
	if stopped == nil {
		t.Fatalf("no node was stopped; stderr:\n%s", stderr.String())
	}
	var res struct {
		Version  string    `json:"version"`
		Acked    []javaRec `json:"acked"`
		Failures []string  `json:"failures"`
		Consumed []javaRec `json:"consumed"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("Check.java failover printed %q: %v", stdout.String(), err)
	}
	if len(res.Failures) > 0 || len(res.Acked) != n {
		t.Errorf("%d records acknowledged, %d failed: %v", len(res.Acked), len(res.Failures), res.Failures)
	}
	acked := map[string]rec{}
	for _, r := range res.Acked {
		acked[r.Value] = r.rec()
	}
	times := map[string]int{}
	last := map[string]int{}
	for _, r := range res.Consumed {
		times[r.Value]++
		if w, ok := acked[r.Value]; ok && r.rec() != w {
			t.Errorf("read %v, the producer was told %v", r.rec(), w)
		}
		var s int
		fmt.Sscanf(r.Value[strings.IndexByte(r.Value, ':')+1:], "%d", &s)
		if p, ok := last[r.Key]; ok && s <= p {
			t.Errorf("key %s: read %s after sequence %d", r.Key, r.Value, p)
		}
		last[r.Key] = s
	}
	for v, w := range acked {
		if times[v] != 1 {
			t.Errorf("acknowledged %v read %d times, want once", w, times[v])
		}
	}
	for _, r := range pollSDK(t, c, topic, partitions, len(acked)) {
		if g, w := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}), acked[string(r.Value)]; g != w {
			t.Errorf("SDK read %v, the Java producer was told %v", g, w)
		}
	}
}

// On the in-process 3-node cluster, one Java group member reads 600 keyed
// records slowly, committing after every poll. A third of the way in, the node
// running the group's coordinator (FindCoordinator) stops. The member finds the
// coordinator's successor and reads on: every record is read once, where it
// was produced, no commit fails, and the offsets committed at the end are the
// partitions' ends, as the SDK's group describe sees them.
func TestClientJavaCoordinatorFailover(t *testing.T) {
	cp := needJava(t)
	nodes, c, brokers := javaCluster(t)
	const topic, group, partitions, total = "java-coord", "java-coord-group", 3, 600
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions, Replicas: 3})
	produced := produceKeyed(t, nodes[0].KafkaAddr(), topic, total)
	ctx := ctxFor(t, 180*time.Second)

	var stdout, stderr bytes.Buffer
	cmd, pipe := startJava(t, ctx, cp, &stdout, "coordinator", brokers, topic, group, fmt.Sprint(total))
	start := time.Now()
	// The member's progress, read while the test stops a node: when each
	// commit was done and how many records it had read.
	type commit struct {
		at   time.Time
		read int
	}
	var mu sync.Mutex
	var commits []commit
	third := make(chan struct{})
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			var read int
			mu.Lock()
			stderr.WriteString(line + "\n")
			if _, err := fmt.Sscanf(line, "consumed %d", &read); err == nil {
				commits = append(commits, commit{time.Now(), read})
				if read >= total/3 && len(commits) > 0 && (len(commits) == 1 || commits[len(commits)-2].read < total/3) {
					close(third)
				}
			}
			mu.Unlock()
		}
	}()
	var stopped *server.Node
	var stopping, stoppedAt time.Time
	select {
	case <-third:
		fc := kadm.NewClient(kafkaClient(t, nodes[0])).FindGroupCoordinators(ctx, group)
		if err := fc.Error(); err != nil {
			t.Fatalf("find the coordinator of %s: %v", group, err)
		}
		addr := fmt.Sprintf("%s:%d", fc[group].Host, fc[group].Port)
		for _, n := range nodes {
			if n.KafkaAddr() == addr {
				stopped = n
			}
		}
		if stopped == nil {
			t.Fatalf("the coordinator of %s is at %s, not one of the nodes", group, addr)
		}
		stopping = time.Now()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := stopped.Close(sctx)
		cancel()
		if err != nil {
			t.Errorf("stop %s: %v", stopped.Name(), err)
		}
		stoppedAt = time.Now()
		t.Logf("%s, running the coordinator, stopped %v in (the stop took %v)", stopped.Name(),
			stopping.Sub(start).Round(time.Millisecond), stoppedAt.Sub(stopping).Round(time.Millisecond))
	case <-lines:
	}
	<-lines
	if err := cmd.Wait(); err != nil {
		t.Fatalf("java Check coordinator: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if stopped == nil {
		t.Fatalf("no node was stopped; stderr:\n%s", stderr.String())
	}
	// The longest wait between two commits from the stop's start on.
	var gap time.Duration
	for i := 1; i < len(commits); i++ {
		from := commits[i-1].at
		if from.Before(stopping) {
			from = stopping
		}
		if commits[i].at.After(stopping) {
			gap = max(gap, commits[i].at.Sub(from))
		}
	}
	t.Logf("longest wait between two of the member's commits from the stop's start on: %v", gap.Round(time.Millisecond))
	t.Logf("the Java member ran %v", time.Since(start).Round(time.Millisecond))
	if stopped == nil {
		t.Fatalf("no node was stopped; stderr:\n%s", stderr.String())
	}
	var res struct {
		Consumed       []javaRec        `json:"consumed"`
		CommitFailures []string         `json:"commitFailures"`
		Committed      map[string]int64 `json:"committed"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("Check.java coordinator printed %q: %v", stdout.String(), err)
	}
	if len(res.CommitFailures) > 0 {
		t.Errorf("%d commits failed: %v", len(res.CommitFailures), res.CommitFailures)
	}
	checkReadOnce(t, produced, res.Consumed)
	ends := map[string]int64{}
	for _, r := range produced {
		p := fmt.Sprint(r.partition)
		ends[p] = max(ends[p], r.offset+1)
	}
	for p, end := range ends {
		if res.Committed[p] != end {
			t.Errorf("partition %s: committed %d at the end, want its end %d", p, res.Committed[p], end)
		}
	}
	var alive *server.Node
	for _, n := range nodes {
		if n != stopped {
			alive = n
		}
	}
	gd, err := qxdtest.Connect(t, alive).Admin().DescribeGroup(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s through %s: %v", group, alive.Name(), err)
	}
	if len(gd.Partitions) != partitions {
		t.Errorf("the SDK's group describe lists %d partitions, want %d", len(gd.Partitions), partitions)
	}
	for _, o := range gd.Partitions {
		if w := ends[fmt.Sprint(o.Partition)]; o.Committed != w {
			t.Errorf("the SDK's group describe: partition %d committed %d, want %d", o.Partition, o.Committed, w)
		}
	}
}
