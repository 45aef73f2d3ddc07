package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// How flags read the environment:
//
//   - The global flags (--server, --log-level, credentials, TLS, --connect-timeout)
//     read QXD_<FLAG>: they mean the same in every command.
//   - A command's own flags read QXD_<COMMAND>_<FLAG> (QXD_CONSUME_NUM,
//     QXD_TOPIC_PARTITIONS for 'topic create', QXD_BENCH_PARTITIONS), so that a
//     variable exported for one command never changes what another does. 'qxd
//     server' keeps its QXD_LISTEN, QXD_DATA, QXD_NAME, QXD_CLUSTER_* and QXD_PEERS.
//   - Flags that pick what a command changes or writes read no variable: 'topic
//     add-partitions --num', 'group seek --topic/--to/--partition', 'topic consume
//     --group' (a member commits offsets and takes partitions from the group),
//     'topic produce --key/--key-delim/--partition/--header/--null-empty', and
//     'bench --topic'. So do the --json flags, which choose one invocation's output.

// retiredEnv are variables that earlier versions read for several commands at
// once. Setting one now does nothing; run warns and names the variables that
// replaced it.
var retiredEnv = []string{
	"QXD_ACKS", "QXD_BATCH_SIZE", "QXD_BENCH_TOPIC", "QXD_COMPACT", "QXD_COMPRESSION",
	"QXD_DELETE_RETENTION", "QXD_EXIT_AT_END", "QXD_FORMAT", "QXD_GROUP", "QXD_HEADER",
	"QXD_INSTANCE_ID", "QXD_JSON", "QXD_KEY", "QXD_KEY_DELIM", "QXD_LINGER",
	"QXD_MAX_RECORD_BYTES", "QXD_NULL_EMPTY", "QXD_NUM", "QXD_OFFSET", "QXD_PARTITION",
	"QXD_PARTITIONS", "QXD_PRINT_OFFSETS", "QXD_REPLICAS", "QXD_RESET", "QXD_RETENTION",
	"QXD_RETENTION_BYTES", "QXD_SESSION_TIMEOUT", "QXD_TO", "QXD_TOPIC",
}

// warnRetiredEnv writes one line to w for each retired variable that is set,
// naming the flags of that name and the variables they read now.
func warnRetiredEnv(w io.Writer, app *cli.App) {
	for _, name := range retiredEnv {
		if _, set := os.LookupEnv(name); !set {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "QXD_"), "_", "-"))
		if name == "QXD_BENCH_TOPIC" {
			flag = "topic"
		}
		// Siblings with the same flag and variable (the bench modes) are named
		// together: 'qxd bench produce|consume --partitions'.
		type use struct{ parent, env string }
		var uses []use
		names := map[use][]string{}
		walkFlags(app, func(path string, f cli.Flag) {
			if !slices.Contains(f.Names(), flag) {
				return
			}
			env := "the command line only"
			if vars := envVars(f); len(vars) > 0 {
				env = strings.Join(vars, ", ")
			}
			parent, cmd := path, ""
			if i := strings.LastIndex(path, " "); i >= 0 {
				parent, cmd = path[:i], path[i+1:]
			}
			u := use{parent, env}
			if names[u] == nil {
				uses = append(uses, u)
			}
			names[u] = append(names[u], cmd)
		})
		now := make([]string, 0, len(uses))
		for _, u := range uses {
			now = append(now, fmt.Sprintf("'%s --%s': %s", strings.TrimSpace(u.parent+" "+strings.Join(names[u], "|")), flag, u.env))
		}
		fmt.Fprintf(w, "qxd: warning: %s is set but no longer read; each command's flags read their own variables now: %s\n",
			name, strings.Join(now, "; "))
	}
}

// walkFlags calls fn with every flag of app, global ones under the path "qxd",
// then each command's under its full name ("qxd topic consume").
func walkFlags(app *cli.App, fn func(path string, f cli.Flag)) {
	for _, f := range app.Flags {
		fn(app.Name, f)
	}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := prefix + " " + c.Name
			for _, f := range c.Flags {
				fn(path, f)
			}
			walk(path, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)
}

// envVars returns the variables f reads.
func envVars(f cli.Flag) []string {
	if e, ok := f.(interface{ GetEnvVars() []string }); ok {
		return e.GetEnvVars()
	}
	return nil
}
