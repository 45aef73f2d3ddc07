package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

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
			"committed offset (or the log start) to the high watermark. A NOTE column says\n" +
			"why a committed offset is outside the log (ahead of the high watermark: records\n" +
			"trimmed or the topic created again; behind the log start: records expired);\n" +
			"members start such a partition at their reset policy.\n" +
			"With --isolation read-committed (the members read so) it also reads each\n" +
			"partition's last stable offset (LAST-STABLE: the first offset of its earliest\n" +
			"open transaction) and the lag counts to it, as Kafka counts a read_committed\n" +
			"consumer's: the records of an open transaction are not readable yet.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.StringFlag{Name: "isolation", Value: "read-uncommitted",
				Usage: "the members' isolation `LEVEL`: read-uncommitted (lag to the high watermark) or read-committed (lag to the last stable offset)"},
		},
		Action: a.groupDescribe,
	}
}

func (a *app) groupDescribe(c *cli.Context) error {
	iso, err := qxd.ParseIsolationLevel(c.String("isolation"))
	if err != nil {
		return fmt.Errorf("group describe: --isolation: %w", err)
	}
	group, cl, err := a.named(c, "GROUP id")
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Admin().DescribeGroupIsolated(c.Context, group, iso)
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
	// The NOTE column shows only when a partition has one, such as a committed
	// offset outside the log.
	notes := slices.ContainsFunc(d.Partitions, func(p qxd.GroupPartition) bool { return p.Note != "" })
	header := "TOPIC\tPARTITION\tMEMBER\tCOMMITTED\tLOG-START\tHIGH-WATERMARK\tLAG"
	stable := iso == qxd.ReadCommitted
	if stable {
		header = "TOPIC\tPARTITION\tMEMBER\tCOMMITTED\tLOG-START\tHIGH-WATERMARK\tLAST-STABLE\tLAG"
	}
	if notes {
		header += "\tNOTE"
	}
	fmt.Fprintln(tw, header)
	for _, p := range d.Partitions {
		committed := "-"
		if p.Committed >= 0 {
			committed = fmt.Sprint(p.Committed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d", p.Topic, p.Partition, dash(p.Member), committed, p.LogStart, p.HighWatermark)
		if stable {
			lso := "-"
			if p.LastStableOffset >= 0 {
				lso = fmt.Sprint(p.LastStableOffset)
			}
			fmt.Fprintf(tw, "\t%s", lso)
		}
		fmt.Fprintf(tw, "\t%d", p.Lag)
		if notes {
			fmt.Fprintf(tw, "\t%s", dash(p.Note))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func (a *app) groupSeekCommand() *cli.Command {
	return &cli.Command{
		Name:      "seek",
		Usage:     "set a group's committed offsets (kafka-consumer-groups --reset-offsets)",
		ArgsUsage: "GROUP (--topic TOPIC... | --all-topics) (--to POSITION | --shift-by N)",
		Description: "Sets GROUP's committed offsets of every partition of each --topic (of those\n" +
			"given with --partition, for one topic), or with --all-topics of every topic the\n" +
			"group has committed offsets on, to --to:\n" +
			"  start, end               the log start, the high watermark\n" +
			"  an offset                an offset outside a partition's stored range is an\n" +
			"                           error that names the range\n" +
			"  2026-12-05T10:00:00Z     the first record at or after that time (RFC 3339; no\n" +
			"                           zone: local time; also 2026-12-05, or @<unix ms>)\n" +
			"  -1h, -30m, -2d           the first record at or after that long ago\n" +
			"A time after the last record gives the high watermark. Or --shift-by N moves\n" +
			"each committed offset by N (negative: back), kept within the log start and the\n" +
			"high watermark; a partition without one is an error. Prints each partition's\n" +
			"old and new offset. --dry-run prints them and changes nothing.\n" +
			"The group must have no active members. seek waits for members that are leaving:\n" +
			"a static member (--instance-id) that stopped stays in the group for its session\n" +
			"timeout, so seek waits up to the longest session timeout of the members (saying\n" +
			"so on stderr after 2s) and then fails naming those still there: stop them first.\n" +
			"The members that join next start at the new offsets.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "topic", Aliases: []string{"t"},
				Usage: "set the offsets of `TOPIC`; repeat or comma-separate for more"},
			&cli.BoolFlag{Name: "all-topics", Usage: "set the offsets of every topic the group has committed offsets on"},
			&cli.StringFlag{Name: "to",
				Usage: "the new `POSITION`: start, end, an offset, a date-time (2026-12-05T10:00:00Z), a time ago (-1h), or @<unix ms>"},
			&cli.Int64Flag{Name: "shift-by", Usage: "move each committed offset by `N` (negative: back), within the log"},
			&cli.StringSliceFlag{Name: "partition", Aliases: []string{"p"},
				DefaultText: "all", Usage: "with one --topic, set only partition `P`; repeat or comma-separate for more"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the old and new offsets, change nothing"},
		},
		Action: a.groupSeek,
	}
}

func (a *app) groupSeek(c *cli.Context) error {
	group, err := oneArg(c, "GROUP id")
	if err != nil {
		return err
	}
	s := qxd.GroupSeek{AllTopics: c.Bool("all-topics"), DryRun: c.Bool("dry-run")}
	for _, v := range c.StringSlice("topic") {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				s.Topics = append(s.Topics, t)
			}
		}
	}
	switch {
	case s.AllTopics && len(s.Topics) > 0:
		return fmt.Errorf("group seek %s: --topic and --all-topics cannot be used together: drop one", group)
	case !s.AllTopics && len(s.Topics) == 0:
		return fmt.Errorf("group seek %s needs --topic TOPIC, the topic whose offsets to set, or --all-topics: e.g. qxd group seek %s --topic orders --to start", group, group)
	}
	example := "--topic " + strings.Join(s.Topics, ",")
	if s.AllTopics {
		example = "--all-topics"
	}
	switch {
	case c.IsSet("to") && c.IsSet("shift-by"):
		return fmt.Errorf("group seek %s: --to and --shift-by cannot be used together: drop one", group)
	case c.IsSet("shift-by"):
		s.Shift, s.ShiftBy = true, c.Int64("shift-by")
	case !c.IsSet("to"):
		return fmt.Errorf("group seek %s needs --to POSITION (start, end, an offset, a date-time, -1h, or @<unix ms>) or --shift-by N; e.g. qxd group seek %s %s --to start", group, group, example)
	default:
		if s.To, err = parseSeekTo(c.String("to"), time.Now()); err != nil {
			return fmt.Errorf("seek group %q: --to: %w", group, err)
		}
	}
	if s.Partitions, err = parsePartitions(c.StringSlice("partition")); err != nil {
		return err
	}
	if len(s.Partitions) > 0 && len(s.Topics) != 1 {
		return fmt.Errorf("group seek %s: --partition applies to one --topic: name one topic, or drop --partition", group)
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	admin := cl.Admin()
	if !s.DryRun {
		if err := a.waitEmpty(c.Context, admin, "seek", group); err != nil {
			return err
		}
	}
	changes, err := admin.SeekGroupOffsets(c.Context, group, s)
	if err != nil {
		if errors.Is(err, semantics.ErrNonEmptyGroup) {
			return nonEmptyError(c.Context, admin, "seek", group, err)
		}
		return groupError("seek", group, err)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD-OFFSET\tNEW-OFFSET")
	for _, ch := range changes {
		old := "-"
		if ch.Old >= 0 {
			old = strconv.FormatInt(ch.Old, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", ch.Topic, ch.Partition, old, ch.New)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.DryRun {
		fmt.Fprintf(a.stderr, "dry run: group %s not changed; run again without --dry-run to set these offsets\n", group)
	}
	return nil
}

// parseSeekTo reads seek's --to: start, end, an offset or @<unix ms> (as
// qxd.ParseOffset), a date-time (RFC 3339; without a zone, local time; or a date),
// or a negative duration back from now ("-1h", "-2d").
func parseSeekTo(s string, now time.Time) (qxd.Offset, error) {
	if ago, ok := strings.CutPrefix(s, "-"); ok {
		d, err := semantics.ParseDuration(ago)
		if err != nil || d <= 0 {
			return qxd.Offset{}, fmt.Errorf("%q is not a time ago: use a duration after the minus, e.g. -1h, -30m, -2d or -1d12h", s)
		}
		return qxd.AtTime(now.Add(-d)), nil
	}
	if strings.Contains(s, "T") || strings.Count(s, "-") == 2 {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return qxd.AtTime(t), nil
		}
		for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
			if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
				return qxd.AtTime(t), nil
			}
		}
		return qxd.Offset{}, fmt.Errorf("%q is not a date-time: use RFC 3339, e.g. 2026-12-05T10:00:00Z or 2026-12-05T10:00:00+01:00 (without a zone: local time), or a date, 2026-12-05", s)
	}
	if to, err := qxd.ParseOffset(s); err == nil {
		return to, nil
	}
	if d, err := semantics.ParseDuration(s); err == nil && d > 0 {
		return qxd.Offset{}, fmt.Errorf("%q is a duration: a time ago takes a minus, e.g. -%s", s, s)
	}
	return qxd.Offset{}, fmt.Errorf("position %q is not valid: use start, end, an offset from 0, a date-time (2026-12-05T10:00:00Z), a time ago (-1h), or @<unix ms>", s)
}

// leaveMargin is how long past the longest session timeout waitEmpty waits: the
// coordinator removes a member when its session timer fires, and the group then
// completes its rebalance.
const leaveMargin = 3 * time.Second

// waitEmpty waits until group has no members, as seek and delete need, for at most
// the longest session timeout of its members (plus leaveMargin): a static member
// that stopped stays a member that long, and a member that crashed is removed then.
// A group that does not exist is empty.
func (a *app) waitEmpty(ctx context.Context, admin *qxd.Admin, op, group string) error {
	start := time.Now()
	var deadline time.Time
	var longest time.Duration
	said := false
	for {
		d, err := admin.DescribeGroup(ctx, group)
		switch {
		case errors.Is(err, semantics.ErrGroupIDNotFound):
			return nil
		case err != nil:
			return groupError(op, group, err)
		case len(d.Members) == 0:
			return nil
		}
		for _, m := range d.Members {
			longest = max(longest, m.SessionTimeout)
		}
		if deadline.IsZero() {
			deadline = start.Add(longest + leaveMargin)
		}
		now := time.Now()
		if now.After(deadline) {
			return &wrapped{
				text: fmt.Sprintf("%s group %q: it still has %s after %s (the longest session timeout, %s, and %s): %s: stop them first ('qxd group describe %s' lists them), then %s again",
					op, group, plural(len(d.Members), "member"), now.Sub(start).Round(100*time.Millisecond), longest, leaveMargin,
					memberList(d.Members), group, op),
				err: semantics.ErrNonEmptyGroup,
			}
		}
		if !said && now.Sub(start) >= waitNotice {
			said = true
			fmt.Fprintf(a.stderr, "waiting up to %s for %s of group %s to leave (a stopped member stays for its session timeout): %s\n",
				deadline.Sub(start).Round(time.Second), plural(len(d.Members), "member"), group, memberList(d.Members))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s group %q: interrupted while waiting for its members to leave", op, group)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// memberList names members: "id (instance i, session timeout 10s), ...".
func memberList(ms []qxd.GroupMember) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		if m.InstanceID != "" {
			parts[i] = fmt.Sprintf("%s (instance %s, session timeout %s)", m.MemberID, m.InstanceID, m.SessionTimeout)
		} else {
			parts[i] = fmt.Sprintf("%s (session timeout %s)", m.MemberID, m.SessionTimeout)
		}
	}
	return strings.Join(parts, ", ")
}

func (a *app) groupDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete a group without active members, and its committed offsets",
		ArgsUsage: "GROUP",
		Description: "The group must have no active members. delete waits for members that are\n" +
			"leaving, up to the longest session timeout of the members (a static member that\n" +
			"stopped stays that long), and then fails naming those still there.",
		Action: a.groupDelete,
	}
}

func (a *app) groupDelete(c *cli.Context) error {
	group, cl, err := a.named(c, "GROUP id")
	if err != nil {
		return err
	}
	defer cl.Close()
	admin := cl.Admin()
	if err := a.waitEmpty(c.Context, admin, "delete", group); err != nil {
		return err
	}
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
