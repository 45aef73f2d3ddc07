package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

func (a *app) bridgeCommand() *cli.Command {
	return &cli.Command{
		Name:   "bridge",
		Usage:  "bridge plain NATS subjects into topics, and topics out to plain NATS subjects",
		Action: groupAction,
		Description: "An ingest bridge takes what existing NATS publishers send on a subject pattern\n" +
			"(or what a JetStream stream stores) into a topic; an egress bridge publishes a topic's records to plain NATS\n" +
			"subjects for existing subscribers. The cluster's nodes run the bridges: no\n" +
			"extra process, and another node takes over when the one running them dies.",
		Subcommands: []*cli.Command{
			a.bridgeCreateCommand(),
			a.bridgeListCommand(),
			a.bridgeDescribeCommand(),
			a.bridgeDeleteCommand(),
		},
	}
}

func (a *app) bridgeCreateCommand() *cli.Command {
	return &cli.Command{
		Name:  "create",
		Usage: "create an ingest (--from, --from-stream) or egress (--from-topic) bridge",
		ArgsUsage: "NAME --from PATTERN [--capture] --to-topic TOPIC [--key SPEC] [--headers LIST]\n" +
			"   or: qxd bridge create NAME --from-stream STREAM [--filter PATTERN] --to-topic TOPIC [--key SPEC] [--start start|end]\n" +
			"   or: qxd bridge create NAME --from-topic TOPIC --to TEMPLATE [--mode fast|reliable]",
		Description: "NAME is 1 to 64 characters from [a-zA-Z0-9_-].\n\n" +
			"Ingest: messages published on subjects matching PATTERN ('*' one token, '>' the\n" +
			"rest) are stored in TOPIC. --key takes the record key from the subject's Nth\n" +
			"token (token:N, from 1), a header (header:NAME), the whole subject (subject),\n" +
			"or gives none (none: records are spread as the SDK spreads records without key).\n" +
			"Keys go to the partitions the SDK would choose. A message published as a request\n" +
			"is answered once its record is stored (JSON: topic, partition, offset, or error);\n" +
			"a plain publish gets no answer and is lost if no node runs the bridge at that\n" +
			"moment (during a failover). The subject is kept in the record header Qxd-Subject.\n\n" +
			"JetStream publishers (js.Publish): --capture makes the bridge create the stream\n" +
			"QXD_CAPTURE_NAME on PATTERN (deleted with the bridge), so each publish gets its\n" +
			"acknowledgement, and its Nats-Msg-Id dedupe, from that stream; --from-stream reads\n" +
			"an existing stream instead (--filter: only its messages on matching subjects;\n" +
			"--start start, the default, takes every message it holds, --start end only those\n" +
			"stored from now on). Either way the bridge takes the messages in stream order with\n" +
			"the durable consumer qxd-bridge-NAME and acknowledges each once its record is\n" +
			"stored: at-least-once. After a failover, the messages delivered again are looked\n" +
			"up in the topic (headers Qxd-Source-Stream, Qxd-Source-Seq) and not stored twice\n" +
			"when found among the last 20000 records of their partition.\n\n" +
			"Egress: TOPIC's records are published one NATS message per record on subjects\n" +
			"made from TEMPLATE, where {key}, {partition} and {offset} stand for the record's;\n" +
			"headers Qxd-Topic, Qxd-Partition, Qxd-Offset and Qxd-Key are added to the\n" +
			"record's own. --mode reliable (default) reads the topic as the consumer group\n" +
			"qxd-bridge-NAME and commits after publishing: at-least-once, resuming after a\n" +
			"node dies; it starts at the end of the topic (--start end) or its start (--start\n" +
			"start). --mode fast publishes each record as it is appended: at-most-once.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "ingest: the subject `PATTERN` to take messages from, e.g. orders.*"},
			&cli.BoolFlag{Name: "capture", Usage: "ingest: store --from's messages in a stream the bridge creates, for JetStream publishers"},
			&cli.StringFlag{Name: "from-stream", Usage: "ingest: the existing JetStream `STREAM` to take messages from, instead of --from"},
			&cli.StringFlag{Name: "filter", Usage: "ingest, --from-stream: take only the messages on subjects matching `PATTERN`"},
			&cli.StringFlag{Name: "to-topic", Usage: "ingest: the `TOPIC` to store them in"},
			&cli.StringFlag{Name: "key", Usage: "ingest: where the record key comes from, `SPEC`: token:N, header:NAME, subject or none (default none)"},
			&cli.StringFlag{Name: "headers", Usage: "ingest: the headers to keep: all (default), none or a comma-separated `LIST`"},
			&cli.StringFlag{Name: "from-topic", Usage: "egress: the `TOPIC` whose records to publish"},
			&cli.StringFlag{Name: "to", Usage: "egress: the subject `TEMPLATE`, e.g. orders.{key} or orders.{partition}"},
			&cli.StringFlag{Name: "mode", Usage: "egress: `MODE` reliable (at-least-once, default) or fast (at-most-once)"},
			&cli.StringFlag{Name: "start", Usage: "`WHERE` to begin: egress, reliable: the topic's end (default) or start; ingest from a stream: its start (default) or end"},
		},
		Action: a.bridgeCreate,
	}
}

func (a *app) bridgeCreate(c *cli.Context) error {
	name, err := oneArg(c, "bridge NAME")
	if err != nil {
		return err
	}
	b := qxd.Bridge{Name: name}
	ingest := c.IsSet("from") || c.IsSet("to-topic") || c.IsSet("from-stream") || c.IsSet("capture") || c.IsSet("filter")
	egress := c.IsSet("from-topic") || c.IsSet("to")
	switch {
	case ingest && egress:
		return fmt.Errorf("create bridge %q: give either --from PATTERN or --from-stream STREAM with --to-topic TOPIC (ingest), or --from-topic TOPIC --to TEMPLATE (egress), not both", name)
	case ingest:
		if c.String("from") == "" && c.String("from-stream") == "" || c.String("to-topic") == "" {
			return fmt.Errorf("create bridge %q: an ingest bridge needs --from PATTERN and --to-topic TOPIC (or --from-stream STREAM instead of --from)", name)
		}
		b = qxd.IngestBridge(name, c.String("from"), c.String("to-topic"), c.String("key"))
		b.Headers = c.String("headers")
		b.Stream, b.Filter, b.Capture = c.String("from-stream"), c.String("filter"), c.Bool("capture")
	case egress:
		if c.String("from-topic") == "" || c.String("to") == "" {
			return fmt.Errorf("create bridge %q: an egress bridge needs --from-topic TOPIC and --to TEMPLATE", name)
		}
		b = qxd.EgressBridge(name, c.String("from-topic"), c.String("to"), c.String("mode"))
	default:
		return fmt.Errorf("create bridge %q: give --from PATTERN or --from-stream STREAM with --to-topic TOPIC (ingest), or --from-topic TOPIC --to TEMPLATE (egress)", name)
	}
	b.Start = c.String("start")
	// Flags of the other kind are passed on so the node refuses them by name.
	if ingest {
		b.To, b.Mode = c.String("to"), c.String("mode")
	} else {
		b.From, b.Key, b.Headers = c.String("from"), c.String("key"), c.String("headers")
		b.Stream, b.Filter, b.Capture = c.String("from-stream"), c.String("filter"), c.Bool("capture")
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	b, err = cl.Admin().CreateBridge(c.Context, b)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "created bridge %s: %s (%s)\n", b.Name, bridgeRoute(b), bridgeDetails(b))
	return nil
}

// bridgeRoute is "SOURCE → topic T" or "topic T → TEMPLATE".
func bridgeRoute(b qxd.Bridge) string {
	if b.Kind == semantics.BridgeIngest {
		return bridgeSource(b) + " → topic " + b.Topic
	}
	return "topic " + b.Topic + " → " + b.To
}

// bridgeSource is where an ingest bridge takes its messages from.
func bridgeSource(b qxd.Bridge) string {
	switch {
	case b.Capture:
		return b.From + " (captured in stream " + b.Stream + ")"
	case b.Stream != "" && b.Filter != "":
		return "stream " + b.Stream + " (" + b.Filter + ")"
	case b.Stream != "":
		return "stream " + b.Stream
	}
	return b.From
}

func bridgeDetails(b qxd.Bridge) string {
	if b.Kind == semantics.BridgeIngest && b.Stream != "" {
		return "key " + b.Key + ", headers " + b.Headers + ", at-least-once from the " + b.Start
	}
	if b.Kind == semantics.BridgeIngest {
		return "key " + b.Key + ", headers " + b.Headers
	}
	if b.Mode == semantics.EgressReliable {
		return "reliable, group " + semantics.BridgeGroup(b.Name) + ", from the " + b.Start
	}
	return b.Mode
}

func (a *app) bridgeListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the bridges, sorted by name",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array of bridges"},
		},
		Action: a.bridgeList,
	}
}

func (a *app) bridgeList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("bridge list takes no arguments, got %q: to see one bridge use 'qxd bridge describe NAME'", c.Args().Slice())
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	bs, _, err := cl.Admin().ListBridges(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(a.stdout, bs)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "NAME\tKIND\tFROM\tTO\tDETAILS")
	for _, b := range bs {
		from, to := bridgeSource(b), "topic "+b.Topic
		if b.Kind == semantics.BridgeEgress {
			from, to = "topic "+b.Topic, b.To
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Name, b.Kind, from, to, bridgeDetails(b))
	}
	return tw.Flush()
}

func (a *app) bridgeDescribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe",
		Usage:     "show a bridge's definition and the node running it",
		ArgsUsage: "NAME",
		Description: "Prints the definition, then the node running the bridge, since when, and how\n" +
			"many messages it stored (ingest) or published (egress) there and how many\n" +
			"failed. 'runner: -' means no node runs it right now (a failover is under way).\n" +
			"A bridge reading a stream also shows the messages taken from it (redeliveries\n" +
			"included), those skipped as already stored, and the backlog not yet taken.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: a.bridgeDescribe,
	}
}

func (a *app) bridgeDescribe(c *cli.Context) error {
	name, cl, err := a.named(c, "bridge NAME")
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Admin().DescribeBridge(c.Context, name)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(a.stdout, struct {
			qxd.Bridge
			Status *qxd.BridgeStatus `json:"status"`
		}{d.Bridge, d.Status})
	}
	b := d.Bridge
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "name:\t%s\n", b.Name)
	fmt.Fprintf(tw, "kind:\t%s\n", b.Kind)
	if b.Kind == semantics.BridgeIngest {
		switch {
		case b.Capture:
			fmt.Fprintf(tw, "from:\t%s\n", b.From)
			fmt.Fprintf(tw, "capture stream:\t%s\n", b.Stream)
		case b.Stream != "":
			fmt.Fprintf(tw, "from stream:\t%s\n", b.Stream)
			if b.Filter != "" {
				fmt.Fprintf(tw, "filter:\t%s\n", b.Filter)
			}
		default:
			fmt.Fprintf(tw, "from:\t%s\n", b.From)
		}
		if b.Stream != "" {
			fmt.Fprintf(tw, "consumer:\t%s\n", semantics.BridgeConsumer(b.Name))
			fmt.Fprintf(tw, "start:\t%s\n", b.Start)
		}
		fmt.Fprintf(tw, "to topic:\t%s\n", b.Topic)
		fmt.Fprintf(tw, "key:\t%s\n", b.Key)
		fmt.Fprintf(tw, "headers:\t%s\n", b.Headers)
	} else {
		fmt.Fprintf(tw, "from topic:\t%s\n", b.Topic)
		fmt.Fprintf(tw, "to:\t%s\n", b.To)
		fmt.Fprintf(tw, "mode:\t%s\n", b.Mode)
		if b.Mode == semantics.EgressReliable {
			fmt.Fprintf(tw, "group:\t%s\n", semantics.BridgeGroup(b.Name))
			fmt.Fprintf(tw, "start:\t%s\n", b.Start)
		}
	}
	fmt.Fprintf(tw, "created:\t%s\n", b.Created.UTC().Format(time.RFC3339))
	if st := d.Status; st != nil {
		fmt.Fprintf(tw, "runner:\t%s\n", st.Node)
		if b.Kind == semantics.BridgeIngest && b.Stream != "" {
			fmt.Fprintf(tw, "taken:\t%d\n", st.Taken)
			fmt.Fprintf(tw, "stored:\t%d\n", st.Messages)
			fmt.Fprintf(tw, "skipped:\t%d (already stored)\n", st.Skipped)
			fmt.Fprintf(tw, "backlog:\t%d\n", st.Backlog)
		} else {
			fmt.Fprintf(tw, "messages:\t%d\n", st.Messages)
		}
		fmt.Fprintf(tw, "failed:\t%d\n", st.Failed)
		if st.LastError != "" {
			fmt.Fprintf(tw, "last error:\t%s\n", oneLine(st.LastError))
		}
	} else {
		fmt.Fprintf(tw, "runner:\t-\n")
	}
	return tw.Flush()
}

func (a *app) bridgeDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "stop and delete a bridge",
		ArgsUsage: "NAME",
		Description: "A reliable egress bridge's consumer group (qxd-bridge-NAME) is deleted with it;\n" +
			"so is the JetStream consumer qxd-bridge-NAME of a bridge reading a stream, and a\n" +
			"capture bridge's stream QXD_CAPTURE_NAME, with the messages not yet bridged.",
		Action: a.bridgeDelete,
	}
}

func (a *app) bridgeDelete(c *cli.Context) error {
	name, cl, err := a.named(c, "bridge NAME")
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Admin().DeleteBridge(c.Context, name); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "deleted bridge %s\n", name)
	return nil
}
