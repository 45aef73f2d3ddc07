package main

import (
	"strings"
	"testing"
)

// 'topic create --durability async' makes a topic whose partitions flush lazily;
// describe shows it; bad values and changing it later are refused in one line.
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
		{[]string{"topic", "alter-config", "metrics", "--set", "durability=sync"}, `config key "durability" cannot be changed: durability is fixed when the topic is created`},
	} {
		_, err := c.run("", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("qxd %q: %v, want one line containing %q", tc.args, err, tc.want)
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
