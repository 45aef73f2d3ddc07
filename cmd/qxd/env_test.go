package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestEnvDoesNotAddPartitions is the regression test of a variable exported for one
// command (QXD_NUM for consume --num) driving an irreversible change in another:
// add-partitions must take its total from the command line only.
func TestEnvDoesNotAddPartitions(t *testing.T) {
	// Not parallel: it sets environment variables.
	t.Setenv("QXD_NUM", "3")
	t.Setenv("QXD_CONSUME_NUM", "3")
	c := startCLI(t)
	c.must("", "topic", "create", "t")
	_, err := c.run("", "topic", "add-partitions", "t")
	if err == nil || !strings.Contains(err.Error(), "needs --num TOTAL") {
		t.Errorf("add-partitions t with QXD_NUM=3 and no --num: err = %v, want one asking for --num", err)
	}
	var d describeJSON
	if err := json.Unmarshal([]byte(c.must("", "topic", "describe", "t", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Topic.Partitions != 1 {
		t.Errorf("after add-partitions without --num: topic has %d partitions, want 1 (unchanged)", d.Topic.Partitions)
	}
}

// TestFlagEnvVars audits every flag's environment variables: a variable belongs to
// one flag (the bench modes share theirs), command flags carry their command's
// prefix, and flags that pick what a command changes read none.
func TestFlagEnvVars(t *testing.T) {
	t.Parallel()
	app := (&app{}).cli()
	global := map[string]bool{}
	for _, f := range app.Flags {
		for _, v := range envVars(f) {
			global[v] = true
		}
	}
	// Flags that choose what a command changes or writes, or one run's output.
	commandLineOnly := map[string]bool{
		"qxd topic add-partitions --num": true,
		"qxd group seek --topic":         true,
		"qxd group seek --to":            true,
		"qxd group seek --partition":     true,
		"qxd topic consume --group":      true,
		"qxd topic produce --key":        true,
		"qxd topic produce --key-delim":  true,
		"qxd topic produce --partition":  true,
		"qxd topic produce --header":     true,
		"qxd topic produce --null-empty": true,
	}
	prefix := map[string]string{
		"qxd topic create":  "QXD_TOPIC_",
		"qxd topic consume": "QXD_CONSUME_",
		"qxd topic produce": "QXD_PRODUCE_",
		"qxd bench":         "QXD_BENCH_",
	}
	owner := map[string]string{} // variable -> flag
	walkFlags(app, func(path string, f cli.Flag) {
		name := f.Names()[0]
		flag := path + " --" + name
		vars := envVars(f)
		if strings.HasPrefix(path, "qxd bench ") {
			flag = "qxd bench --" + name // the modes share their flags
			if name == "topic" && len(vars) > 0 {
				t.Errorf("%s reads %v: bench writes into that topic, name it on the command line only", flag, vars)
			}
		}
		if (commandLineOnly[flag] || name == "json") && len(vars) > 0 {
			t.Errorf("%s reads %v: it must come from the command line only", flag, vars)
		}
		for _, v := range vars {
			if path != "qxd" && global[v] {
				t.Errorf("%s reads the global flags' variable %s", flag, v)
			}
			if o, ok := owner[v]; ok && o != flag {
				t.Errorf("%s and %s both read %s", o, flag, v)
			}
			owner[v] = flag
			for cmd, p := range prefix {
				if (path == cmd || strings.HasPrefix(path, cmd+" ")) && !strings.HasPrefix(v, p) {
					t.Errorf("%s reads %s: %s's flags read %s<FLAG>", flag, v, cmd, p)
				}
			}
			if path != "qxd" && path != "qxd server" && !strings.HasPrefix(v, "QXD_") {
				t.Errorf("%s reads %s, not a QXD_ variable", flag, v)
			}
		}
	})
	for _, v := range retiredEnv {
		if o, ok := owner[v]; ok {
			t.Errorf("retired variable %s is read by %s", v, o)
		}
	}
}

// TestRetiredEnvWarns checks that a variable that no flag reads any more is
// named on stderr with its replacements, and changes nothing.
func TestRetiredEnvWarns(t *testing.T) {
	// Not parallel: it sets environment variables.
	t.Setenv("QXD_PARTITIONS", "4")
	c := startCLI(t)
	out := c.must("", "topic", "create", "t")
	if !strings.HasPrefix(out, "created topic t (1 partition,") {
		t.Errorf("create with QXD_PARTITIONS=4 printed %q, want 1 partition (the default)", out)
	}
	want := "qxd: warning: QXD_PARTITIONS is set but no longer read; each command's flags read their own variables now: " +
		"'qxd topic create --partitions': QXD_TOPIC_PARTITIONS; 'qxd bench produce|consume|group|e2e --partitions': QXD_BENCH_PARTITIONS\n"
	if got := c.stderr.String(); !strings.Contains(got, want) {
		t.Errorf("stderr = %q, want it to contain %q", got, want)
	}
}
