package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

func (a *app) groupCommand() *cli.Command {
	return &cli.Command{
		Name:   "group",
		Usage:  "list, describe, seek and delete consumer groups",
		Action: groupAction,
		Description: "A consumer group shares topics' partitions among its members ('qxd topic consume\n" +
			"TOPIC --group G') and keeps a committed offset per partition. seek and delete\n" +
			"work only while the group has no active members.",
		Subcommands: []*cli.Command{
			a.groupListCommand(),
			a.groupDescribeCommand(),
			a.groupSeekCommand(),
			a.groupDeleteCommand(),
		},
	}
}

func (a *app) groupListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the groups with members or committed offsets, sorted by id",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array of groups"},
		},
		Action: a.groupList,
	}
}

func (a *app) groupList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("group list takes no arguments, got %q: to see one group use 'qxd group describe GROUP'", c.Args().Slice())
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	gs, err := cl.Admin().ListGroups(c.Context)
	if err != nil {
		return err
	}
	slices.SortFunc(gs, func(x, y qxd.GroupSummary) int { return cmp.Compare(x.Group, y.Group) })
	if c.Bool("json") {
		return writeJSON(a.stdout, gs)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", g.Group, g.State, g.Members)
	}
	return tw.Flush()
}

func (a *app) groupDescribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe",
		Usage:     "show a group's state, its members and their partitions, and its committed offsets and lag",
		ArgsUsage: "GROUP",
		Description: "Prints the group's state, generation, protocol (assignor) and leader; its members\n" +
			"with the partitions each is assigned; then each partition the group reads or has\n" +
			"committed: the member reading it, the committed offset (- when none), the\n" +
			"partition's log start and high watermark, and the lag, the records from the\n" +
			"committed offset (or the log start) to the high watermark.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: a.groupDescribe,
	}
}

func (a *app) groupDescribe(c *cli.Context) error {
	group, cl, err := a.named(c, "GROUP id")
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Admin().DescribeGroup(c.Context, group)
	if err != nil {
		return groupError("describe", group, err)
	}
	if c.Bool("json") {
		return writeJSON(a.stdout, d)
	}
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "group:\t%s\n", d.Group)
	fmt.Fprintf(tw, "state:\t%s\n", d.State)
	fmt.Fprintf(tw, "generation:\t%d\n", d.Generation)
	fmt.Fprintf(tw, "protocol:\t%s\n", dash(d.Protocol))
	fmt.Fprintf(tw, "leader:\t%s\n", dash(d.Leader))
	fmt.Fprintf(tw, "members:\t%d\n", len(d.Members))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "MEMBER-ID\tINSTANCE-ID\tCLIENT-ID\tPARTITIONS")
	for _, m := range d.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MemberID, dash(m.InstanceID), dash(m.ClientID), formatPartitions(m.Partitions))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tMEMBER\tCOMMITTED\tLOG-START\tHIGH-WATERMARK\tLAG")
	for _, p := range d.Partitions {
		committed := "-"
		if p.Committed >= 0 {
			committed = fmt.Sprint(p.Committed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", p.Topic, p.Partition, dash(p.Member), committed, p.LogStart, p.HighWatermark, p.Lag)
	}
	return tw.Flush()
}

func (a *app) groupSeekCommand() *cli.Command {
	return &cli.Command{
		Name:      "seek",
		Usage:     "set a group's committed offsets of a topic (kafka-consumer-groups --reset-offsets)",
		ArgsUsage: "GROUP --topic TOPIC --to POSITION",
		Description: "Sets GROUP's committed offsets of every partition of TOPIC, or of those given\n" +
			"with --partition, to --to: start (the log start), end (the high watermark), an\n" +
			"offset, or @<unix ms> for the first record at or after that time (the high\n" +
			"watermark when there is none). An offset outside a partition's stored range is\n" +
			"an error that names the range. The group must have no active members: stop its\n" +
			"consumers first. Prints the new offsets. The members that join next start there.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "topic", Aliases: []string{"t"},
				Usage: "the `TOPIC` whose offsets to set"},
			&cli.StringFlag{Name: "to",
				Usage: "the new `POSITION`: start, end, an offset, or @<unix ms>"},
			&cli.StringSliceFlag{Name: "partition", Aliases: []string{"p"},
				DefaultText: "all", Usage: "set only partition `P`; repeat or comma-separate for more"},
		},
		Action: a.groupSeek,
	}
}

func (a *app) groupSeek(c *cli.Context) error {
	group, err := oneArg(c, "GROUP id")
	if err != nil {
		return err
	}
	topic := c.String("topic")
	if topic == "" {
		return fmt.Errorf("group seek %s needs --topic TOPIC, the topic whose offsets to set: e.g. qxd group seek %s --topic orders --to start", group, group)
	}
	if !c.IsSet("to") {
		return fmt.Errorf("group seek %s needs --to POSITION: start, end, an offset, or @<unix ms>; e.g. qxd group seek %s --topic %s --to start", group, group, topic)
	}
	to, err := qxd.ParseOffset(c.String("to"))
	if err != nil {
		return fmt.Errorf("seek group %q: --to: %w", group, err)
	}
	parts, err := parsePartitions(c.StringSlice("partition"))
	if err != nil {
		return err
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	admin := cl.Admin()
	set, err := admin.SeekGroup(c.Context, group, topic, parts, to)
	if err != nil {
		if errors.Is(err, semantics.ErrNonEmptyGroup) {
			return nonEmptyError(c.Context, admin, "seek", group, err)
		}
		return groupError("seek", group, err)
	}
	rows := make([]qxd.TopicPartition, 0, len(set))
	for tp := range set {
		rows = append(rows, tp)
	}
	slices.SortFunc(rows, func(x, y qxd.TopicPartition) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW-OFFSET")
	for _, tp := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", tp.Topic, tp.Partition, set[tp])
	}
	return tw.Flush()
}

func (a *app) groupDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete a group without active members, and its committed offsets",
		ArgsUsage: "GROUP",
		Action:    a.groupDelete,
	}
}

func (a *app) groupDelete(c *cli.Context) error {
	group, cl, err := a.named(c, "GROUP id")
	if err != nil {
		return err
	}
	defer cl.Close()
	admin := cl.Admin()
	if err := admin.DeleteGroup(c.Context, group); err != nil {
		if errors.Is(err, semantics.ErrNonEmptyGroup) {
			return nonEmptyError(c.Context, admin, "delete", group, err)
		}
		return groupError("delete", group, err)
	}
	fmt.Fprintf(a.stdout, "deleted group %s\n", group)
	return nil
}

// groupError adds what to do to a group operation's error where the SDK's text does
// not say it.
func groupError(op, group string, err error) error {
	switch {
	case errors.Is(err, semantics.ErrInvalidGroupID):
		return fmt.Errorf("%s group %q: %w", op, group, err)
	case errors.Is(err, semantics.ErrGroupIDNotFound) && op != "describe":
		// describe's text already points to 'qxd group list'.
		return fmt.Errorf("%w: list groups with 'qxd group list'", err)
	}
	return err
}

// nonEmptyError says that group has active members, how many, and to stop them
// first. The SDK's error is kept for errors.Is; its text is replaced, as it names
// the operation twice.
func nonEmptyError(ctx context.Context, admin *qxd.Admin, op, group string, err error) error {
	members := "active members"
	if d, derr := admin.DescribeGroup(ctx, group); derr == nil && len(d.Members) > 0 {
		members = plural(len(d.Members), "active member")
	}
	return &wrapped{
		text: fmt.Sprintf("%s group %q: it has %s: stop them first (the group changes only while it has none; 'qxd group describe %s' lists them), then %s again",
			op, group, members, group, op),
		err: err,
	}
}

// wrapped is an error with its own text that still unwraps to err.
type wrapped struct {
	text string
	err  error
}

func (e *wrapped) Error() string { return e.text }
func (e *wrapped) Unwrap() error { return e.err }
