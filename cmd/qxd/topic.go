package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

func (a *app) topicCommand() *cli.Command {
	return &cli.Command{
		Name:   "topic",
		Usage:  "create, list, describe, alter, trim and delete topics; produce and consume records",
		Action: groupAction,
		Subcommands: []*cli.Command{
			a.topicCreateCommand(),
			a.topicListCommand(),
			a.topicDescribeCommand(),
			a.topicDeleteCommand(),
			a.topicAddPartitionsCommand(),
			a.topicAlterConfigCommand(),
			a.topicTrimCommand(),
			a.topicRebalanceCommand(),
			a.topicRepairCommand(),
			a.produceCommand(),
			a.consumeCommand(),
		},
	}
}

func (a *app) topicCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a topic",
		ArgsUsage: "NAME",
		Description: "NAME is 1 to 245 characters from [a-zA-Z0-9._-]. Durations are Go durations\n" +
			"(12h, 30m) or days (7d, 1d12h); -1 or forever keeps records forever. Sizes are\n" +
			"bytes or take a suffix: KiB, MiB, GiB (1024) or KB, MB, GB (1000).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: 1, EnvVars: []string{"QXD_TOPIC_PARTITIONS"},
				Usage: "number of partitions `N`, 1 to " + strconv.Itoa(semantics.MaxPartitions)},
			&cli.IntFlag{Name: "replicas", Aliases: []string{"r"}, Value: 1, EnvVars: []string{"QXD_TOPIC_REPLICAS"},
				Usage: "`R` replicas per partition: 1, 3 or 5, at most the number of nodes"},
			&cli.StringFlag{Name: "retention", Value: formatRetention(semantics.DefaultRetention), EnvVars: []string{"QXD_TOPIC_RETENTION"},
				Usage: "keep records for `DURATION` (retention.ms); -1 or forever for no limit"},
			&cli.StringFlag{Name: "retention-bytes", Value: "unlimited", EnvVars: []string{"QXD_TOPIC_RETENTION_BYTES"},
				Usage: "cap each partition at `SIZE` (retention.bytes); the oldest batches go first"},
			&cli.BoolFlag{Name: "compact", EnvVars: []string{"QXD_TOPIC_COMPACT"},
				Usage: "keep the latest record per key instead of aging records out (cleanup.policy=compact)"},
			&cli.StringFlag{Name: "delete-retention", Value: formatRetention(semantics.DefaultDeleteRetention), EnvVars: []string{"QXD_TOPIC_DELETE_RETENTION"},
				Usage: "with --compact: keep tombstones readable for `DURATION` (delete.retention.ms)"},
			&cli.StringFlag{Name: "max-record-bytes", Value: formatSize(semantics.DefaultMaxMessageBytes), EnvVars: []string{"QXD_TOPIC_MAX_RECORD_BYTES"},
				Usage: "largest record batch `SIZE` a partition accepts, after compression (max.message.bytes), at most " + formatSize(semantics.MaxMessageBytesLimit)},
			&cli.StringFlag{Name: "durability", Value: semantics.DurabilitySync, EnvVars: []string{"QXD_TOPIC_DURABILITY"},
				Usage: "`MODE`: sync (on a node with --sync always, every append is on disk before it is acknowledged) or " +
					"async (appends are flushed lazily: faster, but a power failure can lose acknowledged records; for data you can afford to lose, such as metrics or caches; " +
					"needs --replicas 1; 'topic alter-config NAME --set durability=sync|async' changes it)"},
			&cli.BoolFlag{Name: "if-not-exists",
				Usage: "succeed without a change when the topic exists already, whatever its settings"},
		},
		Action: a.topicCreate,
	}
}

func (a *app) topicCreate(c *cli.Context) error {
	name, err := oneArg(c, "topic NAME")
	if err != nil {
		return err
	}
	cfg, err := topicConfigFromFlags(c)
	if err != nil {
		return fmt.Errorf("create topic %q: %w", name, err)
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if c.Bool("if-not-exists") {
		t, created, err := cl.Admin().CreateTopicIfNotExists(c.Context, name, cfg)
		if err != nil {
			return err
		}
		if !created {
			fmt.Fprintf(a.stdout, "topic %s exists already (%s, id %s): left as it is\n", t.Name, plural(int(t.Config.Partitions), "partition"), t.ID)
			return nil
		}
		fmt.Fprintf(a.stdout, "created topic %s (%s, id %s)\n", t.Name, plural(int(t.Config.Partitions), "partition"), t.ID)
		return nil
	}
	t, err := cl.Admin().CreateTopic(c.Context, name, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "created topic %s (%s, id %s)\n", t.Name, plural(int(t.Config.Partitions), "partition"), t.ID)
	return nil
}

func topicConfigFromFlags(c *cli.Context) (qxd.TopicConfig, error) {
	var cfg qxd.TopicConfig
	n := c.Int("partitions")
	if n < 1 || n > semantics.MaxPartitions {
		return cfg, fmt.Errorf("--partitions %d is out of range: use 1 to %d", n, semantics.MaxPartitions)
	}
	cfg.Partitions = int32(n)
	cfg.Replicas = c.Int("replicas")
	if cfg.Replicas < 1 {
		return cfg, fmt.Errorf("--replicas %d is not valid: use 1, 3 or 5", cfg.Replicas)
	}
	// A setting not given stays zero: the node gives it its default and describe
	// shows it as one.
	var err error
	if c.IsSet("retention") {
		if cfg.Retention, err = parseRetention("retention", c.String("retention")); err != nil {
			return cfg, err
		}
	}
	if c.IsSet("retention-bytes") {
		if cfg.RetentionBytes, err = parseSize("retention-bytes", c.String("retention-bytes"), true); err != nil {
			return cfg, err
		}
	}
	if c.IsSet("durability") {
		if cfg.Durability, err = semantics.ParseDurability(c.String("durability")); err != nil {
			return cfg, fmt.Errorf("--durability: %w", err)
		}
		if cfg.Async() && cfg.Replicas != 1 {
			return cfg, fmt.Errorf("--durability async needs --replicas 1, not %d: JetStream cannot flush a replicated stream lazily", cfg.Replicas)
		}
	}
	cfg.Compact = c.Bool("compact")
	if cfg.Compact {
		if c.IsSet("delete-retention") {
			if cfg.DeleteRetention, err = parseRetention("delete-retention", c.String("delete-retention")); err != nil {
				return cfg, err
			}
		}
	} else if c.IsSet("delete-retention") {
		return cfg, fmt.Errorf("--delete-retention applies to compacted topics only: add --compact or drop it")
	}
	if c.IsSet("max-record-bytes") {
		mb, err := parseSize("max-record-bytes", c.String("max-record-bytes"), false)
		if err != nil {
			return cfg, err
		}
		if mb < 1024 || mb > semantics.MaxMessageBytesLimit {
			return cfg, fmt.Errorf("--max-record-bytes %s is out of range: use 1KiB (1024) to %s (%d)",
				c.String("max-record-bytes"), formatSize(semantics.MaxMessageBytesLimit), semantics.MaxMessageBytesLimit)
		}
		cfg.MaxMessageBytes = int32(mb)
	}
	return cfg, nil
}

func (a *app) topicListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list topics, sorted by name",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array of topics"},
		},
		Action: a.topicList,
	}
}

func (a *app) topicList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("topic list takes no arguments, got %q: to see one topic use 'qxd topic describe NAME'", c.Args().Slice())
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	topics, err := cl.Admin().ListTopics(c.Context)
	if err != nil {
		return err
	}
	slices.SortFunc(topics, func(x, y qxd.TopicInfo) int { return cmp.Compare(x.Name, y.Name) })
	if c.Bool("json") {
		out := make([]topicJSON, 0, len(topics))
		for _, t := range topics {
			out = append(out, newTopicJSON(t))
		}
		return writeJSON(a.stdout, out)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "NAME\tPARTITIONS\tREPLICAS\tSTATE\tCOMPACT\tRETENTION")
	for _, t := range topics {
		retention := formatRetention(t.Config.Retention)
		if t.Config.Compact {
			retention = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%t\t%s\n", t.Name, t.Config.Partitions, t.Config.Replicas, t.State, t.Config.Compact, retention)
	}
	return tw.Flush()
}

func (a *app) topicDescribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe",
		Usage:     "show a topic's configuration and its partitions' leaders and offsets",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.BoolFlag{Name: "verify", Usage: verifyUsage},
			&cli.BoolFlag{Name: "verify-replicas", Usage: verifyReplicasUsage},
		},
		Action: a.topicDescribe,
	}
}

func (a *app) topicDescribe(c *cli.Context) error {
	name, cl, err := a.named(c, "topic NAME")
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Admin().DescribeTopic(c.Context, name)
	if err != nil {
		return err
	}
	var verified map[int32]*verifyJSON
	if c.Bool("verify") || c.Bool("verify-replicas") {
		verified = verifyPartitions(c.Context, cl.Admin(), d, c.Bool("verify-replicas"))
	}
	if c.Bool("json") {
		out := describeJSON{Topic: newTopicJSON(d.Topic), Config: newConfigJSON(d.Topic), Partitions: make([]partitionJSON, 0, len(d.Partitions))}
		var bad []int32
		for _, p := range d.Partitions {
			pj := newPartitionJSON(p)
			if verified != nil {
				if pj.Verify = verified[p.Partition]; pj.Verify == nil || pj.Verify.Error != "" || len(pj.Verify.Damage) > 0 {
					bad = append(bad, p.Partition)
				}
			}
			out.Partitions = append(out.Partitions, pj)
		}
		if err := writeJSON(a.stdout, out); err != nil {
			return err
		}
		return verifyErr(name, bad)
	}
	t := d.Topic
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "name:\t%s\n", t.Name)
	fmt.Fprintf(tw, "id:\t%s\n", t.ID)
	fmt.Fprintf(tw, "state:\t%s\n", t.State)
	fmt.Fprintf(tw, "partitions:\t%d\n", t.Config.Partitions)
	fmt.Fprintf(tw, "replicas:\t%d\n", t.Config.Replicas)
	fmt.Fprintf(tw, "compact:\t%t\n", t.Config.Compact)
	fmt.Fprintf(tw, "durability:\t%s\n", t.Config.DurabilityOrDefault())
	fmt.Fprintf(tw, "created:\t%s\n", t.Created.UTC().Format(time.RFC3339))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	if err := a.writeConfigTable(t); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	problems := slices.ContainsFunc(d.Partitions, func(p qxd.PartitionInfo) bool {
		return p.Problem != "" || p.Damage != "" || verifyProblem(verified[p.Partition]) != ""
	})
	tw = newTable(a.stdout)
	header := "PARTITION\tLEADER\tREPLICAS\tISR\tLOG-START\tHIGH-WATERMARK\tLAST-STABLE\tRECORDS"
	if problems {
		header += "\tPROBLEM"
	}
	fmt.Fprintln(tw, header)
	for _, p := range d.Partitions {
		lso := "-" // the leading node could not tell
		if p.LastStableOffset >= 0 {
			lso = strconv.FormatInt(p.LastStableOffset, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%d", p.Partition, dash(p.Leader), dash(strings.Join(p.Replicas, ",")),
			dash(strings.Join(p.InSync, ",")), p.LogStartOffset, p.HighWatermark, lso, p.Records)
		if problems {
			problem := p.Problem
			if p.Damage != "" {
				problem = damagedColumn(p)
			} else if vp := verifyProblem(verified[p.Partition]); vp != "" {
				problem = vp
			}
			fmt.Fprintf(tw, "\t%s", dash(oneLine(problem)))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range d.Partitions {
		if p.Damage != "" {
			fmt.Fprintf(a.stdout, "\nNOTE: partition %d is damaged: %s\n", p.Partition, p.Damage)
		}
	}
	writeDurabilityNote(a.stdout, d)
	if verified == nil {
		return nil
	}
	return verifyErr(name, writeVerifyNotes(a.stdout, d, verified))
}

func (a *app) topicDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete a topic and all its records",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "if-exists", Usage: "succeed without a change when the topic does not exist"},
		},
		Action: a.topicDelete,
	}
}

func (a *app) topicDelete(c *cli.Context) error {
	name, cl, err := a.named(c, "topic NAME")
	if err != nil {
		return err
	}
	defer cl.Close()
	if c.Bool("if-exists") {
		deleted, err := cl.Admin().DeleteTopicIfExists(c.Context, name)
		if err != nil {
			return err
		}
		if !deleted {
			fmt.Fprintf(a.stdout, "topic %s does not exist: nothing deleted\n", name)
			return nil
		}
	} else if err := cl.Admin().DeleteTopic(c.Context, name); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "deleted topic %s\n", name)
	return nil
}

func (a *app) topicAddPartitionsCommand() *cli.Command {
	return &cli.Command{
		Name:      "add-partitions",
		Usage:     "raise a topic's partition count",
		ArgsUsage: "NAME --num TOTAL",
		Description: "--num is the NEW TOTAL number of partitions, as Kafka's 'kafka-topics --alter\n" +
			"--partitions', not the number to add: 'add-partitions orders --num 6' takes a\n" +
			"3-partition topic to 6. Partitions can only be added. Keyed records map to\n" +
			"partitions by the new count from then on, as in Kafka.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "num", Aliases: []string{"n"},
				Usage: "the new `TOTAL` number of partitions (not the number to add)"},
		},
		Action: a.topicAddPartitions,
	}
}

func (a *app) topicAddPartitions(c *cli.Context) error {
	name, err := oneArg(c, "topic NAME")
	if err != nil {
		return err
	}
	if !c.IsSet("num") {
		return fmt.Errorf("topic add-partitions needs --num TOTAL, the new total number of partitions: e.g. qxd topic add-partitions %s --num 6", name)
	}
	n := c.Int("num")
	if n < 1 || n > semantics.MaxPartitions {
		return fmt.Errorf("add partitions to %q: --num %d is out of range: give the new total number of partitions, more than the topic has now and at most %d",
			name, n, semantics.MaxPartitions)
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	t, err := cl.Admin().AddPartitions(c.Context, name, int32(n))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "topic %s now has %s\n", t.Name, plural(int(t.Config.Partitions), "partition"))
	return nil
}

// topicJSON is a topic as 'topic list --json' and 'topic describe --json' print it.
// Durations are in milliseconds, as Kafka's retention.ms; -1 means no limit.
type topicJSON struct {
	Name              string    `json:"name"`
	ID                string    `json:"id"`
	State             string    `json:"state"`
	Partitions        int32     `json:"partitions"`
	Replicas          int       `json:"replicas"`
	RetentionMs       int64     `json:"retention_ms"`
	RetentionBytes    int64     `json:"retention_bytes"`
	Compact           bool      `json:"compact"`
	DeleteRetentionMs int64     `json:"delete_retention_ms,omitempty"`
	MaxMessageBytes   int32     `json:"max_message_bytes"`
	Durability        string    `json:"durability"`
	Created           time.Time `json:"created"`
}

func newTopicJSON(t qxd.TopicInfo) topicJSON {
	ms := func(d time.Duration) int64 {
		if d < 0 {
			return -1
		}
		return d.Milliseconds()
	}
	return topicJSON{
		Name: t.Name, ID: t.ID, State: string(t.State),
		Partitions: t.Config.Partitions, Replicas: t.Config.Replicas,
		RetentionMs: ms(t.Config.Retention), RetentionBytes: t.Config.RetentionBytes,
		Compact: t.Config.Compact, DeleteRetentionMs: ms(t.Config.DeleteRetention),
		MaxMessageBytes: t.Config.MaxMessageBytes, Durability: t.Config.DurabilityOrDefault(), Created: t.Created.UTC(),
	}
}

// partitionJSON is one partition in 'topic describe --json'.
type partitionJSON struct {
	Partition      int32    `json:"partition"`
	Leader         string   `json:"leader"`
	Replicas       []string `json:"replicas"`
	InSync         []string `json:"isr"`
	LogStartOffset int64    `json:"log_start_offset"`
	HighWatermark  int64    `json:"high_watermark"`
	LastStable     int64    `json:"last_stable_offset"`
	Records        int64    `json:"records"`
	Batches        uint64   `json:"batches"`
	Bytes          uint64   `json:"bytes"`
	Problem        string   `json:"problem,omitempty"`
	// Durability is the partition's durability as its store on the leading node
	// writes now; "" when that node cannot tell. DurabilityNote says why it is
	// not the topic's when that node cannot apply the topic's.
	Durability     string `json:"durability,omitempty"`
	DurabilityNote string `json:"durability_note,omitempty"`
	Missing        uint64 `json:"missing_batches,omitempty"`
	Damage         string `json:"damage,omitempty"`
	// Damaged is what reads and verifies found damaged and the cluster recorded.
	Damaged []qxd.BatchDamage `json:"damaged,omitempty"`
	// Verify is what --verify read back and found.
	Verify *verifyJSON `json:"verify,omitempty"`
}

func newPartitionJSON(p qxd.PartitionInfo) partitionJSON {
	return partitionJSON{
		Partition: p.Partition, Leader: p.Leader, Replicas: append([]string{}, p.Replicas...), InSync: append([]string{}, p.InSync...),
		LogStartOffset: p.LogStartOffset, HighWatermark: p.HighWatermark, LastStable: p.LastStableOffset, Records: p.Records,
		Batches: p.Batches, Bytes: p.Bytes, Problem: p.Problem, Durability: p.Durability, DurabilityNote: p.DurabilityNote, Missing: p.Missing, Damage: p.Damage, Damaged: p.Damaged,
	}
}

type describeJSON struct {
	Topic      topicJSON       `json:"topic"`
	Config     []configJSON    `json:"config"`
	Partitions []partitionJSON `json:"partitions"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural writes "1 partition", "3 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func (a *app) topicRebalanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "rebalance",
		Usage:     "spread a topic's partition replicas and leaders over the cluster's nodes",
		ArgsUsage: "NAME",
		Description: "Moves replicas of a replicated topic's partitions from the nodes holding the\n" +
			"most onto the nodes holding the fewest (a node added to the cluster holds none),\n" +
			"one at a time, each after the new replica has the data; then moves partition\n" +
			"leaderships so that no node leads more than its share.",
		Action: a.topicRebalance,
	}
}

func (a *app) topicRebalance(c *cli.Context) error {
	name, cl, err := a.named(c, "topic NAME")
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := cl.Admin().RebalanceTopic(c.Context, name)
	for _, m := range res.Moves {
		fmt.Fprintf(a.stdout, "moved replica %s\n", m)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "rebalanced topic %s: %d replica(s) and %d leadership(s) moved\n", name, len(res.Moves), res.LeadersMoved)
	return nil
}

// damagedColumn is the PROBLEM column of a damaged partition: the batches missing
// from its leader's log, and the nodes whose copies reads found damaged.
func damagedColumn(p qxd.PartitionInfo) string {
	var what []string
	if p.Missing > 0 {
		what = append(what, fmt.Sprintf("%d batches missing", p.Missing))
	}
	var nodes []string
	for _, d := range p.Damaged {
		if !slices.Contains(nodes, d.Node) {
			nodes = append(nodes, d.Node)
		}
	}
	if len(nodes) > 0 {
		what = append(what, "reads found damage on node "+strings.Join(nodes, ","))
	}
	if len(what) == 0 {
		return "DAMAGED"
	}
	return "DAMAGED: " + strings.Join(what, "; ")
}

// writeDurabilityNote notes the partitions whose leading node writes them with
// another durability than the topic's: for a moment after an alter, until their
// writers apply it, or for good when that node cannot apply it, then with why,
// once for the partitions it holds (nothing when the node cannot tell).
func writeDurabilityNote(w io.Writer, d qxd.TopicDescription) {
	want := d.Topic.Config.DurabilityOrDefault()
	type stuck struct{ durability, leader, why string }
	var order []stuck
	parts := map[stuck][]string{}
	for _, p := range d.Partitions {
		switch {
		case p.Durability == "" || p.Durability == want:
		case p.DurabilityNote != "":
			k := stuck{p.Durability, p.Leader, p.DurabilityNote}
			if _, ok := parts[k]; !ok {
				order = append(order, k)
			}
			parts[k] = append(parts[k], strconv.Itoa(int(p.Partition)))
		default:
			fmt.Fprintf(w, "\nNOTE: partition %d is written %s on node %s, not %s as the topic says: its writer applies the topic's durability shortly\n",
				p.Partition, p.Durability, dash(p.Leader), want)
		}
	}
	for _, k := range order {
		fmt.Fprintf(w, "\nNOTE: partition(s) %s are written %s on node %s, not %s as the topic says: %s\n",
			strings.Join(parts[k], ", "), k.durability, dash(k.leader), want, k.why)
	}
}
