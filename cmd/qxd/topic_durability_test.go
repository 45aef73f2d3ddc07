package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qxd-io/qxd"
)

// 'topic create --durability async' makes a topic whose partitions flush lazily;
// alter-config changes it both ways; describe shows it, for the topic and as
// each partition's store writes; bad values are refused in one line.
func TestTopicDurability(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "metrics", "-p", "2", "--durability", "async")
	c.must("", "topic", "create", "orders", "--durability", "SYNC")
	c.must("", "topic", "create", "plain")
	for topic, want := range map[string]string{"metrics": "async", "orders": "sync", "plain": "sync"} {
		out := c.must("", "topic", "describe", topic)
		if !strings.Contains(out, "durability:  "+want+"\n") {
			t.Errorf("describe %s does not show durability %s:\n%s", topic, want, out)
		}
		if js := c.must("", "topic", "describe", topic, "--json"); !strings.Contains(js, `"durability": "`+want+`"`) {
			t.Errorf("describe %s --json does not show durability %s:\n%s", topic, want, js)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create", "x", "--durability", "sometimes"}, `--durability: durability "sometimes" is not known: use sync`},
		{[]string{"topic", "create", "x", "--durability", "async", "-r", "3"}, "--durability async needs --replicas 1, not 3"},
		{[]string{"topic", "alter-config", "metrics", "--set", "durability=sometimes"}, `config durability=sometimes: durability "sometimes" is not known: use sync`},
	} {
		_, err := c.run("", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("qxd %q: %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
	// Altered both ways: alter-config says so, describe shows it.
	for _, tc := range []struct{ topic, set, want string }{
		{"metrics", "durability=always", "sync"}, {"orders", "durability=async", "async"}, {"metrics", "DURABILITY=async", "async"},
	} {
		out := c.must("", "topic", "alter-config", tc.topic, "--set", tc.set)
		if !strings.Contains(out, "durability: "+tc.want+" (in effect on every partition)\n") {
			t.Errorf("alter-config %s --set %s does not say durability %s:\n%s", tc.topic, tc.set, tc.want, out)
		}
		if out := c.must("", "topic", "describe", tc.topic); !strings.Contains(out, "durability:  "+tc.want+"\n") || strings.Contains(out, "NOTE") {
			t.Errorf("describe %s after --set %s:\n%s", tc.topic, tc.set, out)
		}
		if js := c.must("", "topic", "describe", tc.topic, "--json"); strings.Count(js, `"durability": "`+tc.want+`"`) != 1+strings.Count(js, `"partition":`) {
			t.Errorf("describe %s --json does not show durability %s for the topic and every partition:\n%s", tc.topic, tc.want, js)
		}
	}
	if out := c.must("", "topic", "list"); strings.Contains(out, "x ") {
		t.Errorf("a refused create left a topic:\n%s", out)
	}
	help := c.must("", "topic", "create", "--help")
	if !strings.Contains(help, "a power failure can lose acknowledged records") {
		t.Errorf("topic create --help does not say what async gives up:\n%s", help)
	}
}

// describe's notes on partitions that do not write the topic's durability: one
// for a partition whose writer has not applied it yet, and, for partitions whose
// node cannot apply it, one for each node and reason, naming the partitions,
// the durability they write and why. (What a node says when it cannot apply a
// durability is tested in server, TestTopicDurabilityCannotApply: only tests
// there can make a node's store unusable.)
func TestTopicDurabilityNotes(t *testing.T) {
	t.Parallel()
	why := func(node string) string {
		return "node " + node + " cannot set its store of the partition to async: the file store has no field fip"
	}
	var d qxd.TopicDescription
	d.Topic.Name, d.Topic.Config.Durability = "metrics", "async"
	d.Partitions = []qxd.PartitionInfo{
		{Partition: 0, Leader: "n1", Durability: "sync", DurabilityNote: why("n1")},
		{Partition: 1, Leader: "n2", Durability: "async"},
		{Partition: 2, Leader: "n1", Durability: "sync", DurabilityNote: why("n1")},
		{Partition: 3, Leader: "n3", Durability: "sync"},
		{Partition: 4, Leader: "n2", Durability: "sync", DurabilityNote: why("n2")},
		{Partition: 5},
	}
	var out strings.Builder
	writeDurabilityNote(&out, d)
	want := "\nNOTE: partition 3 is written sync on node n3, not async as the topic says: its writer applies the topic's durability shortly\n" +
		"\nNOTE: partition(s) 0, 2 are written sync on node n1, not async as the topic says: " + why("n1") + "\n" +
		"\nNOTE: partition(s) 4 are written sync on node n2, not async as the topic says: " + why("n2") + "\n"
	if out.String() != want {
		t.Errorf("notes:\n%s\nwant:\n%s", out.String(), want)
	}
	js, err := json.Marshal(newPartitionJSON(d.Partitions[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"durability":"sync","durability_note":"`+why("n1")+`"`) {
		t.Errorf("describe --json of a partition whose node cannot apply the durability: %s", js)
	}
}
