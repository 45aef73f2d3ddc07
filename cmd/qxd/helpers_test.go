package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// qxdCLI runs the qxd command line in-process against one node.
type qxdCLI struct {
	t      *testing.T
	node   *server.Node
	stderr *syncBuffer // logged when the test fails
}

// startCLI starts a real embedded node for t and returns a runner pointed at it.
func startCLI(t *testing.T) *qxdCLI {
	t.Helper()
	return newCLI(t, qxdtest.StartNode(t))
}

func newCLI(t *testing.T, n *server.Node) *qxdCLI {
	c := &qxdCLI{t: t, node: n, stderr: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() && c.stderr.String() != "" {
			t.Logf("stderr of the qxd runs:\n%s", c.stderr)
		}
	})
	return c
}

// run runs "qxd --server <node> args..." with stdin and returns stdout and the error.
// Stderr is logged if the test fails.
func (c *qxdCLI) run(stdin string, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.runCtx(ctx, stdin, args...)
}

func (c *qxdCLI) runCtx(ctx context.Context, stdin string, args ...string) (string, error) {
	c.t.Helper()
	var out bytes.Buffer
	all := append([]string{"qxd", "--server", c.node.ClientURL(), "--log-level", "warn"}, args...)
	err := run(ctx, all, strings.NewReader(stdin), &out, c.stderr)
	return out.String(), err
}

// must runs args and fails the test on an error.
func (c *qxdCLI) must(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("qxd %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// golden compares got with testdata/<name>.golden, or rewrites that file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v (run 'go test ./cmd/qxd -update' to create it)", path, err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update if the change is intended)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

var (
	idText      = regexp.MustCompile(`id [A-Za-z0-9_-]{22}\b`)
	idLine      = regexp.MustCompile(`(?m)^(id:\s+)\S+$`)
	createdLine = regexp.MustCompile(`(?m)^(created:\s+)\S+$`)
	idJSON      = regexp.MustCompile(`"id": "[A-Za-z0-9_-]{22}"`)
	createdJSON = regexp.MustCompile(`"created": "[^"]+"`)
)

// mask replaces what changes from run to run, topic ids, creation times and the
// node's name, with fixed text. The node's name is masked with as many characters
// so that table columns stay aligned.
func mask(s, node string) string {
	s = idText.ReplaceAllString(s, "id <ID>")
	s = idLine.ReplaceAllString(s, "${1}<ID>")
	s = createdLine.ReplaceAllString(s, "${1}<CREATED>")
	s = idJSON.ReplaceAllString(s, `"id": "<ID>"`)
	s = createdJSON.ReplaceAllString(s, `"created": "<CREATED>"`)
	if node != "" {
		s = regexp.MustCompile(`\b`+regexp.QuoteMeta(node)+`\b`).ReplaceAllString(s, strings.Repeat("N", len(node)))
	}
	return s
}

// createTopicAt creates topic with partitions partitions through the CLI on the
// node whose NATS listener is natsAddr.
func createTopicAt(t *testing.T, natsAddr, topic string, partitions int) {
	t.Helper()
	var out syncBuffer
	args := []string{"qxd", "--server", "nats://" + natsAddr, "topic", "create", topic, "--partitions", strconv.Itoa(partitions)}
	if err := run(t.Context(), args, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("topic create %s: %v\n%s", topic, err, out.String())
	}
}

// newFetchV12Client returns a franz-go client of the Kafka listener at addr that
// speaks at most Kafka 2.8's versions (Fetch v12: topics by name), with opts; the
// caller closes it.
func newFetchV12Client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	kc, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MaxVersions(kversion.V2_8_0())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// fetchV12 sends kc one Fetch v12 of partitions 0..partitions-1 of topic from
// offset 0, up to maxBytes in all and partitionMaxBytes a partition, at session
// epoch epoch (0 asks for a session, -1 fetches without one), and returns the
// answer.
func fetchV12(t *testing.T, kc *kgo.Client, topic string, partitions int32, maxBytes, partitionMaxBytes, epoch int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxBytes, req.SessionID, req.SessionEpoch = 12, maxBytes, 0, epoch
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	for p := range partitions {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.PartitionMaxBytes = p, partitionMaxBytes
		ft.Partitions = append(ft.Partitions, fp)
	}
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(t.Context(), kc)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
