package main

import (
	"strings"
	"testing"
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
