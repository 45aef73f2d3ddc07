package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

func TestTopicAlterConfigGolden(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "orders", "-p", "2", "--retention-bytes", "1GiB")
	var out strings.Builder
	out.WriteString(c.must("", "topic", "alter-config", "orders", "--set", "retention=3d", "--set", "retention.bytes=10MiB", "--set", "max.message.bytes=2MiB"))
	out.WriteString(c.must("", "topic", "alter-config", "orders", "--delete", "max-record-bytes", "--set", "retention.ms=3600000"))
	c.must("", "topic", "create", "users", "--compact")
	out.WriteString(c.must("", "topic", "alter-config", "users", "-s", "delete-retention=2h"))
	golden(t, "topic_alter_config", out.String())

	var d describeJSON
	if err := json.Unmarshal([]byte(c.must("", "topic", "describe", "orders", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Topic.RetentionMs != 3600000 || d.Topic.RetentionBytes != 10<<20 || d.Topic.MaxMessageBytes != 1<<20 {
		t.Errorf("describe after alter-config: %+v", d.Topic)
	}
	if len(d.Config) != 3 || d.Config[0].Source != "set" || d.Config[2].Source != "default" {
		t.Errorf("describe --json config: %+v", d.Config)
	}
}

func TestTopicAlterConfigErrors(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "orders")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"orders"}, "needs --set KEY=VALUE or --delete KEY"},
		{[]string{"orders", "--set", "retention"}, `--set "retention" is not KEY=VALUE`},
		{[]string{"orders", "--set", "segment.bytes=1"}, `unknown config key "segment.bytes": use retention (retention.ms), retention-bytes (retention.bytes), max-record-bytes (max.message.bytes) or delete-retention (delete.retention.ms)`},
		{[]string{"orders", "--set", "retention=soon"}, `config retention=soon: "soon" is not a duration`},
		{[]string{"orders", "--set", "replication.factor=3"}, "replication factor is fixed"},
		{[]string{"nope", "--set", "retention=1d"}, `"nope" does not exist`},
	}
	for _, tc := range cases {
		_, err := c.run("", append([]string{"topic", "alter-config"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("alter-config %v: %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
	if got := c.must("", "topic", "describe", "orders"); !regexp.MustCompile(`retention +retention.ms +7d +default`).MatchString(got) {
		t.Errorf("refused changes changed the topic:\n%s", got)
	}
}

func TestTopicIfExists(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	if got := c.must("", "topic", "create", "t1", "-p", "2", "--if-not-exists"); !strings.HasPrefix(got, "created topic t1 (2 partitions") {
		t.Errorf("first create --if-not-exists: %q", got)
	}
	if got := c.must("", "topic", "create", "t1", "-p", "4", "--if-not-exists"); !strings.HasPrefix(got, "topic t1 exists already (2 partitions") {
		t.Errorf("second create --if-not-exists: %q", got)
	}
	if _, err := c.run("", "topic", "create", "t1"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("create without --if-not-exists: %v", err)
	}
	if got := c.must("", "topic", "delete", "t1", "--if-exists"); got != "deleted topic t1\n" {
		t.Errorf("delete --if-exists: %q", got)
	}
	if got := c.must("", "topic", "delete", "t1", "--if-exists"); got != "topic t1 does not exist: nothing deleted\n" {
		t.Errorf("second delete --if-exists: %q", got)
	}
	if _, err := c.run("", "topic", "delete", "t1"); err == nil || !strings.Contains(err.Error(), `"t1" does not exist`) {
		t.Errorf("delete without --if-exists: %v", err)
	}
}

func TestTopicTrim(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "log")
	// Three batches of three records: offsets 0-2, 3-5, 6-8.
	for _, in := range []string{"a\nb\nc\n", "d\ne\nf\n", "g\nh\ni\n"} {
		c.must(in, "topic", "produce", "log")
	}
	if got, want := c.must("", "topic", "trim", "log", "-p", "0", "-o", "4"), "partition log/0: log start offset 4\n"; got != want {
		t.Errorf("trim printed %q, want %q", got, want)
	}
	if got := c.must("", "topic", "consume", "log", "-n", "5"); got != "e\nf\ng\nh\ni\n" {
		t.Errorf("consume after trim to 4: %q, want e to i", got)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"log", "-p", "0", "-o", "10"}, "offset 10 is out of range: give an offset from 4 (the log start) to 9 (the high watermark)"},
		{[]string{"log", "-o", "1"}, "needs --partition P and --offset N"},
		{[]string{"log", "-p", "3", "-o", "1"}, "partition 3 does not exist"},
		{[]string{"log", "-p", "0", "-o", "x"}, `--offset "x" is not an offset`},
	}
	for _, tc := range cases {
		_, err := c.run("", append([]string{"topic", "trim"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("trim %v: %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
	if got := c.must("", "topic", "trim", "log", "-p", "0", "-o", "end"); got != "partition log/0: log start offset 9\n" {
		t.Errorf("trim to the end: %q", got)
	}
}

func TestClusterMetadata(t *testing.T) {
	t.Parallel()
	t.Run("single node", func(t *testing.T) {
		t.Parallel()
		c := startCLI(t)
		c.must("", "topic", "create", "orders", "-p", "2")
		c.must("", "topic", "create", "audit")
		// The address's length varies with its port: mask it and the padding after it.
		addr := regexp.MustCompile(regexp.QuoteMeta(strings.TrimPrefix(c.node.ClientURL(), "nats://")) + ` +|ADDRESS +`)
		maskAddr := func(s string) string {
			return addr.ReplaceAllStringFunc(s, func(m string) string {
				if strings.HasPrefix(m, "ADDRESS") {
					return "ADDRESS  "
				}
				return "<ADDR>   "
			})
		}
		golden(t, "cluster_metadata", mask(maskAddr(c.must("", "cluster", "metadata")), c.node.Name()))
		golden(t, "cluster_metadata_topics", mask(maskAddr(c.must("", "cluster", "metadata", "--topic", "audit", "-t", "nope")), c.node.Name()))
	})
	t.Run("cluster of three", func(t *testing.T) {
		t.Parallel()
		nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
		c := newCLI(t, nodes[0])
		c.must("", "topic", "create", "rep", "-p", "3", "-r", "3")
		var md qxd.Metadata
		deadline := time.Now().Add(20 * time.Second)
		for {
			if err := json.Unmarshal([]byte(c.must("", "cluster", "metadata", "--json")), &md); err != nil {
				t.Fatal(err)
			}
			synced := len(md.Topics) == 1
			for _, p := range md.Topics[0].Partitions {
				synced = synced && len(p.InSync) == 3
			}
			if synced {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replicas not in sync within 20s: %+v", md)
			}
			time.Sleep(100 * time.Millisecond)
		}
		out := c.must("", "cluster", "metadata")
		for _, n := range nodes {
			addr := strings.TrimPrefix(n.ClientURL(), "nats://")
			if !regexp.MustCompile(`(?m)^` + n.Name() + ` +` + regexp.QuoteMeta(addr) + ` +true$`).MatchString(out) {
				t.Errorf("node %s at %s missing:\n%s", n.Name(), addr, out)
			}
		}
		if !regexp.MustCompile(`(?m)^rep +2 +n\d +n1,n2,n3 +n1,n2,n3 +-$`).MatchString(out) {
			t.Errorf("partition 2 of rep is not led, on three nodes, all in sync:\n%s", out)
		}
		if d := c.must("", "topic", "describe", "rep"); !strings.Contains(d, "ISR") {
			t.Errorf("describe has no ISR column:\n%s", d)
		}
	})
}
