package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// examples are the lines each command's --help shows under EXAMPLES, by the
// command's full name. Every command has some; TestHelpExamples runs each line
// through the argument parser, so that a renamed flag cannot leave one behind.
var examples = map[string][]string{
	"qxd": {
		"qxd server --data ./qxd-data",
		"qxd topic create orders --partitions 6",
		"echo hello | qxd topic produce orders",
		"qxd topic consume orders --exit-at-end",
	},
	"qxd server": {
		"qxd server --listen 0.0.0.0:4222 --data /var/lib/qxd --name node-a",
		"qxd server --name n1 --data ./n1 --listen 127.0.0.1:4222 --cluster-listen 127.0.0.1:6222 --peers nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224",
		"qxd server --config qxd.conf",
	},
	"qxd topic": {
		"qxd topic create orders --partitions 6 --replicas 3",
		"qxd topic list",
		"qxd topic describe orders",
	},
	"qxd topic create": {
		"qxd topic create orders --partitions 6 --replicas 3",
		"qxd topic create orders --partitions 6 --if-not-exists",
		"qxd topic create audit.log --retention forever --retention-bytes 10GiB",
		"qxd topic create users --compact --delete-retention 12h",
	},
	"qxd topic list": {
		"qxd topic list",
		"qxd topic ls --json",
	},
	"qxd topic describe": {
		"qxd topic describe orders",
		"qxd topic describe orders --json",
		"qxd topic describe orders --verify-replicas",
	},
	"qxd topic repair": {
		"qxd topic repair orders",
		"qxd topic repair orders --partition 2 --node n3",
	},
	"qxd topic delete": {
		"qxd topic delete orders",
		"qxd topic delete orders --if-exists",
	},
	"qxd topic alter-config": {
		"qxd topic alter-config orders --set retention=3d --set retention-bytes=1GiB",
		"qxd topic alter-config orders --set max.message.bytes=4194304",
		"qxd topic alter-config orders --delete retention",
	},
	"qxd topic trim": {
		"qxd topic trim orders --partition 0 --offset 1200",
		"qxd topic trim orders --partition 3 --offset end",
	},
	"qxd topic add-partitions": {
		"qxd topic add-partitions orders --num 12",
	},
	"qxd topic rebalance": {
		"qxd topic rebalance orders",
	},
	"qxd topic produce": {
		"echo hello | qxd topic produce orders",
		"printf 'user-1:signed up\\nuser-2:paid\\n' | qxd topic produce orders --key-delim :",
		"qxd topic produce orders --header source=cli --compression zstd < records.txt",
		"qxd topic produce notes --file notes.txt --delim '\\n---\\n'",
	},
	"qxd topic consume": {
		"qxd topic consume orders --exit-at-end",
		"qxd topic consume orders --partition 0 --offset 100 --num 10 --format '%p %o %k %v\\n'",
		"qxd topic consume orders --group billing",
		"qxd topic consume orders --offset -10 --format '%p %o %S %k\\n'",
		"qxd topic consume images --value-format base64 --format json --exit-at-end",
		"qxd topic consume enriched --isolation read-committed --exit-at-end",
	},
	"qxd txn": {
		"qxd txn list",
		"qxd txn describe etl-1",
	},
	"qxd txn list": {
		"qxd txn list",
		"qxd txn ls --json",
	},
	"qxd txn describe": {
		"qxd txn describe etl-1",
		"qxd txn describe etl-1 --json",
	},
	"qxd group": {
		"qxd group list",
		"qxd group describe billing",
	},
	"qxd group list": {
		"qxd group list",
		"qxd group ls --json",
	},
	"qxd group describe": {
		"qxd group describe billing",
		"qxd group describe billing --json",
	},
	"qxd group seek": {
		"qxd group seek billing --topic orders --to start",
		"qxd group seek billing --topic orders --partition 0 --to 1200",
		"qxd group seek billing --topic orders --to @1767225600000",
		"qxd group seek billing --topic orders --to 2026-12-05T10:00:00Z",
		"qxd group seek billing --all-topics --to -1h --dry-run",
		"qxd group seek billing --topic orders --shift-by -100",
	},
	"qxd group delete": {
		"qxd group delete billing",
	},
	"qxd cluster": {
		"qxd cluster info",
	},
	"qxd cluster metadata": {
		"qxd cluster metadata",
		"qxd cluster metadata --topic orders --json",
	},
	"qxd cluster info": {
		"qxd cluster info",
		"qxd cluster info --json",
	},
	"qxd passwd": {
		"echo -n secret | qxd passwd",
	},
	"qxd bridge": {
		"qxd bridge list",
		"qxd bridge describe payments-in",
	},
	"qxd bridge create": {
		"qxd bridge create payments-in --from 'payments.>' --to-topic payments --key token:2",
		"qxd bridge create orders-out --from-topic orders --to 'orders.{key}'",
	},
	"qxd bridge list": {
		"qxd bridge list",
		"qxd bridge ls --json",
	},
	"qxd bridge describe": {
		"qxd bridge describe payments-in",
	},
	"qxd bridge delete": {
		"qxd bridge delete payments-in",
	},
	"qxd bench": {
		"qxd bench produce --records 1000000 --size 100",
		"qxd bench consume --partitions 8 --compare-raw",
		"qxd bench e2e --rate 5000 --duration 30s",
	},
	"qxd bench produce": {
		"qxd bench produce --records 1000000 --size 100 --compare-raw",
		"qxd bench produce --duration 30s --linger 5ms --compression lz4",
	},
	"qxd bench consume": {
		"qxd bench consume --records 1000000 --consumers 2",
	},
	"qxd bench group": {
		"qxd bench group --records 1000000 --consumers 4",
	},
	"qxd bench e2e": {
		"qxd bench e2e --rate 5000 --duration 30s",
	},
	"qxd version": {
		"qxd version",
	},
	"qxd completion": {
		"source <(qxd completion bash)",
		"qxd completion zsh > \"${fpath[1]}/_qxd\"",
		"qxd completion fish | source",
	},
}

// examplesText is the EXAMPLES section of the help of the command named path.
func examplesText(path string) string {
	lines := examples[path]
	if len(lines) == 0 {
		return ""
	}
	return "\nEXAMPLES:\n   " + strings.Join(lines, "\n   ") + "\n"
}

// helpTemplate is the help template of cmd, named path, with its examples.
// Examples are literal text: a "{{" in one would be read as a template action,
// so it is escaped.
func helpTemplate(cmd *cli.Command, path string) string {
	base := cli.CommandHelpTemplate
	if len(cmd.Subcommands) > 0 {
		base = cli.SubcommandHelpTemplate
	}
	return base + templateLiteral(examplesText(path))
}

func templateLiteral(s string) string {
	return strings.ReplaceAll(s, "{{", `{{"{{"}}`)
}
