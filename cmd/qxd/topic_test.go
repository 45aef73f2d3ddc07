package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestTopicCreateGolden(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	var out strings.Builder
	out.WriteString(c.must("", "topic", "create", "orders", "--partitions", "3"))
	out.WriteString(c.must("", "topic", "create", "--partitions", "1", "audit.log", "--retention", "forever", "--retention-bytes", "1GiB"))
	out.WriteString(c.must("", "topic", "create", "users", "--compact", "--delete-retention", "12h", "--max-record-bytes", "64KiB"))
	golden(t, "topic_create", mask(out.String(), ""))
}

func TestTopicListGolden(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	if got := c.must("", "topic", "list"); got != "NAME  PARTITIONS  REPLICAS  STATE  COMPACT  RETENTION\n" {
		t.Errorf("list of no topics = %q, want the header alone", got)
	}
	if got := c.must("", "topic", "list", "--json"); got != "[]\n" {
		t.Errorf("list --json of no topics = %q, want []", got)
	}
	c.must("", "topic", "create", "zeta", "-p", "2")
	c.must("", "topic", "create", "alpha", "--retention", "36h")
	c.must("", "topic", "create", "kv", "--compact")
	c.must("", "topic", "create", "metrics_1m", "-p", "12", "--retention", "90m", "--retention-bytes", "100MB")
	golden(t, "topic_list", c.must("", "topic", "list"))

	js := c.must("", "topic", "list", "--json")
	var topics []map[string]any
	if err := json.Unmarshal([]byte(js), &topics); err != nil {
		t.Fatalf("list --json is not a JSON array: %v\n%s", err, js)
	}
	if len(topics) != 4 || topics[0]["name"] != "alpha" || topics[3]["name"] != "zeta" {
		t.Errorf("list --json: want 4 topics sorted by name, got %v", topics)
	}
	golden(t, "topic_list_json", mask(js, ""))
}

var storedBytes = regexp.MustCompile(`"bytes": [1-9][0-9]*`)

func TestTopicDescribeGolden(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "orders", "-p", "3", "--retention", "2d")
	// murmur2 puts keys a and c on partition 1 of 3, b on partition 2. The long
	// linger makes one batch per partition, whatever the machine's speed.
	c.must("a:1\nb:2\nc:3\na:4\n", "topic", "produce", "orders", "--key-delim", ":", "--linger", "10s")
	golden(t, "topic_describe", mask(c.must("", "topic", "describe", "orders"), c.node.Name()))
	// A partition's stored bytes include the writer's checkpoint header, whose length
	// varies with the producer ids in it: masked where a partition holds anything.
	js := mask(c.must("", "topic", "describe", "orders", "--json"), c.node.Name())
	golden(t, "topic_describe_json", storedBytes.ReplaceAllString(js, `"bytes": <BYTES>`))
}

func TestTopicDeleteAndAddPartitions(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "grow", "-p", "2")
	if got, want := c.must("", "topic", "add-partitions", "grow", "--num", "5"), "topic grow now has 5 partitions\n"; got != want {
		t.Errorf("add-partitions printed %q, want %q", got, want)
	}
	var d describeJSON
	if err := json.Unmarshal([]byte(c.must("", "topic", "describe", "grow", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Topic.Partitions != 5 || len(d.Partitions) != 5 {
		t.Errorf("after add-partitions --num 5: %d partitions, %d described; want 5 (--num is the new total)", d.Topic.Partitions, len(d.Partitions))
	}
	if got, want := c.must("", "topic", "delete", "grow"), "deleted topic grow\n"; got != want {
		t.Errorf("delete printed %q, want %q", got, want)
	}
	if _, err := c.run("", "topic", "describe", "grow"); err == nil || !strings.Contains(err.Error(), `"grow"`) {
		t.Errorf("describe after delete: err = %v, want one naming the topic", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	c.must("", "topic", "create", "exists", "-p", "2")
	c.must("x\ny\nz\n", "topic", "produce", "exists", "--partition", "1")
	cases := []struct {
		name string
		args []string
		want []string // each must be in the error text
	}{
		{"bad topic name", []string{"topic", "create", "a b"}, []string{`"a b"`, "[a-zA-Z0-9._-]"}},
		{"bad topic name on produce", []string{"topic", "produce", "a/b"}, []string{`"a/b"`}},
		{"unknown topic on describe", []string{"topic", "describe", "nosuch"}, []string{`"nosuch"`, "does not exist"}},
		{"unknown topic on consume", []string{"topic", "consume", "nosuch"}, []string{`"nosuch"`, "does not exist"}},
		{"unknown topic on produce", []string{"topic", "produce", "nosuch"}, []string{`"nosuch"`, "does not exist"}},
		{"unknown topic on delete", []string{"topic", "delete", "nosuch"}, []string{`"nosuch"`}},
		{"zero partitions", []string{"topic", "create", "zero", "--partitions", "0"}, []string{"--partitions 0", `"zero"`}},
		{"too many partitions", []string{"topic", "create", "big", "-p", "10001"}, []string{"--partitions 10001", "10000"}},
		{"topic exists", []string{"topic", "create", "exists"}, []string{`"exists"`, "already exists"}},
		{"replicas 3 on one node", []string{"topic", "create", "r3", "--replicas", "3"}, []string{`"r3"`, "3 replicas", "1 node"}},
		{"replicas 2", []string{"topic", "create", "r2", "--replicas", "2"}, []string{`"r2"`, "replicas 2", "1, 3 or 5"}},
		{"bad retention", []string{"topic", "create", "t1", "--retention", "7x"}, []string{`"7x"`, "--retention"}},
		{"zero retention", []string{"topic", "create", "t1", "--retention", "0"}, []string{`"0"`, "--retention"}},
		{"bad size", []string{"topic", "create", "t1", "--retention-bytes", "12 parsecs"}, []string{`"12 parsecs"`}},
		{"record bytes too small", []string{"topic", "create", "t1", "--max-record-bytes", "100"}, []string{"100", "1024"}},
		{"delete retention without compact", []string{"topic", "create", "t1", "--delete-retention", "1h"}, []string{"--compact"}},
		{"bad offset text", []string{"topic", "consume", "exists", "--offset", "soon"}, []string{`"soon"`, "start, end"}},
		{"bad offset time", []string{"topic", "consume", "exists", "--offset", "@yesterday"}, []string{`"@yesterday"`}},
		{"offset out of range", []string{"topic", "consume", "exists", "-p", "1", "--offset", "7", "--reset", "none"},
			[]string{"offset 7", "exists/1", "0 to 2", "high watermark 3"}},
		{"bad reset", []string{"topic", "consume", "exists", "--reset", "sometimes"}, []string{`"sometimes"`}},
		{"unknown consume partition", []string{"topic", "consume", "exists", "-p", "5"}, []string{"--partition 5", "0 to 1"}},
		{"bad consume partition", []string{"topic", "consume", "exists", "-p", "one"}, []string{`"one"`}},
		{"bad format verb", []string{"topic", "consume", "exists", "--format", "%p %q"}, []string{`"%p %q"`, "%q"}},
		{"bad format escape", []string{"topic", "consume", "exists", "--format", `%v\x`}, []string{`\x`}},
		{"negative num", []string{"topic", "consume", "exists", "--num", "-1"}, []string{"--num -1"}},
		{"unknown produce partition", []string{"topic", "produce", "exists", "--partition", "2"}, []string{"--partition 2", "0 to 1"}},
		{"negative produce partition", []string{"topic", "produce", "exists", "--partition", "-1"}, []string{"--partition -1"}},
		{"empty key delim", []string{"topic", "produce", "exists", "--key-delim", ""}, []string{"--key-delim"}},
		{"key and key delim", []string{"topic", "produce", "exists", "--key", "k", "--key-delim", ":"}, []string{"--key", "--key-delim"}},
		{"bad header", []string{"topic", "produce", "exists", "--header", "novalue"}, []string{`"novalue"`}},
		{"bad acks", []string{"topic", "produce", "exists", "--acks", "most"}, []string{`"most"`}},
		{"bad compression", []string{"topic", "produce", "exists", "--compression", "brotli"}, []string{`"brotli"`}},
		{"add partitions without num", []string{"topic", "add-partitions", "exists"}, []string{"--num"}},
		{"add partitions fewer", []string{"topic", "add-partitions", "exists", "--num", "1"}, []string{`"exists"`, "2 partitions"}},
		{"missing name", []string{"topic", "create"}, []string{"NAME"}},
		{"two names", []string{"topic", "describe", "a", "b"}, []string{"a b"}},
		{"unknown command", []string{"topic", "frobnicate"}, []string{`"frobnicate"`}},
		{"unknown flag", []string{"topic", "list", "--frob"}, []string{"-frob"}},
		{"bad log level", []string{"--log-level", "loud", "topic", "list"}, []string{`"loud"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := c.run("", tc.args...)
			if err == nil {
				t.Fatalf("qxd %q: no error; stdout %q", tc.args, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("qxd %q: error %q does not contain %q", tc.args, err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("qxd %q: error is more than one line: %q", tc.args, err)
			}
		})
	}
	// Nothing above changed the topic.
	if got := c.must("", "topic", "consume", "exists", "--format", `%p %o %v\n`, "-e"); got != "1 0 x\n1 1 y\n1 2 z\n" {
		t.Errorf("topic after the errors:\n%s", got)
	}
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	err := run(t.Context(), []string{"qxd", "--server", "nats://127.0.0.1:1", "topic", "list"}, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "nats://127.0.0.1:1") || !strings.Contains(err.Error(), "--server") {
		t.Errorf("err = %v, want one naming the URL and --server", err)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"qxd"}, {"qxd", "--help"}, {"qxd", "topic"}, {"qxd", "topic", "consume", "-h"}} {
		var out, errOut syncBuffer
		if err := run(t.Context(), args, strings.NewReader(""), &out, &errOut); err != nil {
			t.Errorf("%q: %v", args, err)
		}
		if !strings.Contains(out.String(), "USAGE:") {
			t.Errorf("%q printed no help:\n%s", args, out.String())
		}
	}
	var out syncBuffer
	_ = run(t.Context(), []string{"qxd", "topic", "add-partitions", "--help"}, strings.NewReader(""), &out, &out)
	if !strings.Contains(out.String(), "NEW TOTAL") {
		t.Errorf("add-partitions help does not say --num is the new total:\n%s", out.String())
	}
}
