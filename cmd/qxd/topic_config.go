package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

func (a *app) topicAlterConfigCommand() *cli.Command {
	return &cli.Command{
		Name:      "alter-config",
		Usage:     "change a topic's settings on every partition",
		ArgsUsage: "NAME --set KEY=VALUE... [--delete KEY...]",
		Description: "KEY is retention (retention.ms), retention-bytes (retention.bytes),\n" +
			"max-record-bytes (max.message.bytes) or, for a compacted topic, delete-retention\n" +
			"(delete.retention.ms); Kafka's names work too. Values read as 'topic create' reads\n" +
			"them: durations 3d or 12h, -1 for no limit (a bare number for a .ms key is\n" +
			"milliseconds); sizes 10GiB or bytes, -1 for no limit. --delete puts a key back to\n" +
			"its default. Every change is checked before any is made; a command that failed\n" +
			"half-way is finished by running it again.\n\n" +
			"KEY durability is sync (or always; the default) or async, as 'topic create\n" +
			"--durability' takes it: async flushes appends lazily, so a power failure can lose\n" +
			"acknowledged records (one replica only). The command returns once every\n" +
			"partition's store writes with the new durability; going back to sync, every record\n" +
			"acknowledged before is then on disk too. It fails, naming the partitions, the node\n" +
			"and what they write, when a node cannot set its stores (a qxd built with a\n" +
			"nats-server whose file store it does not know): the durability is recorded all the\n" +
			"same, and 'topic describe' shows each partition's with the reason.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "set", Aliases: []string{"s"}, Usage: "set `KEY=VALUE`; repeat for more"},
			&cli.StringSliceFlag{Name: "delete", Aliases: []string{"d"}, Usage: "put `KEY` back to its default; repeat for more"},
		},
		Action: a.topicAlterConfig,
	}
}

func (a *app) topicAlterConfig(c *cli.Context) error {
	name, err := oneArg(c, "topic NAME")
	if err != nil {
		return err
	}
	set := map[string]string{}
	for _, kv := range c.StringSlice("set") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("alter topic %q: --set %q is not KEY=VALUE: e.g. --set retention=3d", name, kv)
		}
		if _, dup := set[k]; dup {
			return fmt.Errorf("alter topic %q: --set %s is given twice: give it once", name, k)
		}
		set[k] = v
	}
	del := c.StringSlice("delete")
	if len(set) == 0 && len(del) == 0 {
		return fmt.Errorf("topic alter-config needs --set KEY=VALUE or --delete KEY: e.g. qxd topic alter-config %s --set retention=3d", name)
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	t, err := cl.Admin().AlterTopicConfig(c.Context, name, set, del...)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "altered topic %s\n\n", t.Name)
	touched := slices.ContainsFunc(del, isDurabilityKey)
	for k := range set {
		touched = touched || isDurabilityKey(k)
	}
	if touched {
		fmt.Fprintf(a.stdout, "durability: %s (in effect on every partition)\n\n", t.Config.DurabilityOrDefault())
	}
	return a.writeConfigTable(t)
}

func isDurabilityKey(k string) bool {
	return strings.EqualFold(strings.TrimSpace(k), semantics.ConfigDurability)
}

// configRows are the settings of t describe and alter-config show: key, Kafka name,
// value as the CLI writes it, source. Retention is left out for a compacted topic,
// delete retention for the others.
func configRows(t qxd.TopicInfo) [][4]string {
	var rows [][4]string
	for _, k := range semantics.ConfigKeys {
		var v string
		switch k {
		case semantics.ConfigRetention:
			if t.Config.Compact {
				continue
			}
			v = formatRetention(t.Config.Retention)
		case semantics.ConfigRetentionBytes:
			v = formatSize(t.Config.RetentionBytes)
		case semantics.ConfigMaxRecordBytes:
			v = formatSize(int64(t.Config.MaxMessageBytes))
		case semantics.ConfigDeleteRetention:
			if !t.Config.Compact {
				continue
			}
			v = formatRetention(t.Config.DeleteRetention)
		}
		rows = append(rows, [4]string{k, semantics.ConfigKafkaName(k), v, string(t.ConfigSource(k))})
	}
	return rows
}

func (a *app) writeConfigTable(t qxd.TopicInfo) error {
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "CONFIG\tKAFKA NAME\tVALUE\tSOURCE")
	for _, r := range configRows(t) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3])
	}
	return tw.Flush()
}

// configJSON is one setting in 'topic describe --json'.
type configJSON struct {
	Name      string `json:"name"`
	KafkaName string `json:"kafka_name"`
	Value     string `json:"value"`
	Source    string `json:"source"`
}

func newConfigJSON(t qxd.TopicInfo) []configJSON {
	out := []configJSON{}
	for _, r := range configRows(t) {
		out = append(out, configJSON{Name: r[0], KafkaName: r[1], Value: r[2], Source: r[3]})
	}
	return out
}

func (a *app) topicTrimCommand() *cli.Command {
	return &cli.Command{
		Name:      "trim",
		Usage:     "delete a partition's records below an offset (Kafka's delete-records)",
		ArgsUsage: "NAME --partition P --offset N",
		Description: "Moves the partition's log start offset up to N: records below it are no longer\n" +
			"readable, a read from below it starts at N (or fails with --reset none), and\n" +
			"offsets do not change. -1 (or end) trims to the high watermark. An offset at or\n" +
			"below the log start changes nothing; one beyond the high watermark is refused.\n" +
			"Whole record batches below N leave storage; the batch holding N stays, its\n" +
			"records below N hidden. Compacted topics cannot be trimmed.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "partition", Aliases: []string{"p"}, Value: -1, DefaultText: "none", Usage: "the `P`artition to trim"},
			&cli.StringFlag{Name: "offset", Aliases: []string{"o"}, Usage: "the new log start `OFFSET`, or -1 / end for the high watermark"},
		},
		Action: a.topicTrim,
	}
}

func (a *app) topicTrim(c *cli.Context) error {
	name, err := oneArg(c, "topic NAME")
	if err != nil {
		return err
	}
	if !c.IsSet("partition") || !c.IsSet("offset") {
		return fmt.Errorf("topic trim needs --partition P and --offset N: e.g. qxd topic trim %s --partition 0 --offset 1000", name)
	}
	p := c.Int("partition")
	if p < 0 || p >= semantics.MaxPartitions {
		return fmt.Errorf("trim topic %q: --partition %d is not a partition: give 0 or more", name, p)
	}
	var off int64
	switch s := strings.TrimSpace(c.String("offset")); strings.ToLower(s) {
	case "end", "-1":
		off = -1
	default:
		off, err = strconv.ParseInt(s, 10, 64)
		if err != nil || off < 0 {
			return fmt.Errorf("trim topic %q: --offset %q is not an offset: give 0 or more, or -1 (end) for the high watermark", name, s)
		}
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	start, err := cl.Admin().DeleteRecords(c.Context, name, int32(p), off)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "partition %s: log start offset %d\n", semantics.PartitionString(name, int32(p)), start)
	return nil
}
