package main

import (
	"bufio"
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

func (a *app) consumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "consume",
		Usage:     "print a topic's records to stdout, alone or as a member of a consumer group",
		ArgsUsage: "TOPIC",
		Description: "Reads every partition of TOPIC (or those given with --partition) from --offset,\n" +
			"in offset order within each partition, and follows new records until interrupted.\n" +
			"--offset is start, end, an offset, -N for N offsets before each partition's end\n" +
			"(the last N records; all of them if it has fewer), +N for N offsets after each\n" +
			"partition's start (none of it if it has fewer), or @<unix ms> for the first record\n" +
			"at or after that time. An offset outside a partition's stored range is handled by\n" +
			"--reset, earliest by default as Kafka's auto.offset.reset, and the move is said on\n" +
			"stderr; --reset none (or error) makes it an error that names the valid range.\n" +
			"--exit-at-end stops once every partition reached the high watermark it had when\n" +
			"consume started; records produced after that are not printed.\n\n" +
			groupConsumeHelp + "\n\n" + formatHelp,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "partition", Aliases: []string{"p"}, EnvVars: []string{"QXD_CONSUME_PARTITION"},
				DefaultText: "all", Usage: "read only partition `P`; repeat or comma-separate for more (not with --group)"},
			&cli.StringFlag{Name: "offset", Aliases: []string{"o"}, Value: "start", EnvVars: []string{"QXD_CONSUME_OFFSET"},
				Usage: "where to start: start, end, an `OFFSET`, -N (N before the end), +N (N after the start), or @<unix ms> (not with --group)"},
			&cli.IntFlag{Name: "num", Aliases: []string{"n"}, EnvVars: []string{"QXD_CONSUME_NUM"},
				DefaultText: "no limit", Usage: "exit after `N` records"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: `%v\n`, DefaultText: `%v\n`, EnvVars: []string{"QXD_CONSUME_FORMAT"},
				Usage: "print each record as `FORMAT`: verbs " + formatVerbs + ", or json (see above)"},
			&cli.StringFlag{Name: "key-format", Value: "text",
				Usage: "print keys (%k, and key_b64 in json) as `ENCODING`: text or base64"},
			&cli.StringFlag{Name: "value-format", Value: "text",
				Usage: "print values (%v, and value_b64 in json) as `ENCODING`: text or base64"},
			&cli.BoolFlag{Name: "exit-at-end", Aliases: []string{"e"}, EnvVars: []string{"QXD_CONSUME_EXIT_AT_END"},
				Usage: "exit once every partition's end, as of the start (with --group: as of its assignment), is reached"},
			&cli.StringFlag{Name: "reset", Value: "earliest", EnvVars: []string{"QXD_CONSUME_RESET"},
				Usage: "where to start when the start offset (--offset, or with --group the committed one) is missing or not stored (`POLICY`): earliest, latest or none (also error: fail)"},
			&cli.StringFlag{Name: "isolation", Value: "read-uncommitted", EnvVars: []string{"QXD_CONSUME_ISOLATION"},
				Usage: "records of transactions to read (`LEVEL`): read-uncommitted (all, as written) or read-committed (committed ones only, up to the last stable offset)"},
			&cli.StringFlag{Name: "group", Aliases: []string{"g"},
				Usage: "join consumer group `G`: share the partitions with its other members, start at its committed offsets"},
			&cli.StringFlag{Name: "instance-id", EnvVars: []string{"QXD_CONSUME_INSTANCE_ID"},
				Usage: "with --group: be the static member `ID` (group.instance.id); a restart within the session timeout gets its partitions back"},
			&cli.DurationFlag{Name: "session-timeout", Value: qxd.DefaultSessionTimeout, EnvVars: []string{"QXD_CONSUME_SESSION_TIMEOUT"},
				Usage: "with --group: the group gives this member's partitions to others after `DURATION` without a heartbeat"},
		},
		Action: a.consume,
	}
}

// groupConsumeHelp documents consume --group.
var groupConsumeHelp = `With --group G, consume joins consumer group G instead: the group shares TOPIC's
partitions among its members (run more consumes with the same G to split the
work), and each partition starts at G's committed offset, or where --reset says
when it has none. --partition and --offset do not apply; to move G's offsets,
stop its members and run 'qxd group seek'. Positions are committed every ` + qxd.DefaultAutoCommitInterval.String() + ` and
on exit, up to the last record printed (--num included).
With --group, --exit-at-end stops once this member has had an assignment and
every partition assigned to it now reached the high watermark it had when it was
assigned (a rebalance assigns afresh and reads the high watermarks again). A
member given no partitions, because the group has more members than TOPIC has
partitions, exits when that empty assignment arrives.
Assignment changes are logged at info level. A static member (--instance-id)
stays in the group for --session-timeout after it exits, so that a restart gets
its partitions back without a rebalance; 'qxd group seek' and 'qxd group delete'
wait until then.`

// consumeSettings are consume's flags, checked.
type consumeSettings struct {
	topic     string
	reset     qxd.ResetPolicy
	resetName string // --reset as given, for messages
	format    *recordFormat
	num       int
	exitAtEnd bool
	isolation qxd.IsolationLevel

	// Without a group.
	offset startOffset
	parts  []int32

	// With a group.
	group          string
	instanceID     string
	sessionTimeout time.Duration
}

func consumeFlags(c *cli.Context) (consumeSettings, error) {
	var s consumeSettings
	var err error
	if s.topic, err = oneArg(c, "TOPIC"); err != nil {
		return s, err
	}
	if s.reset, err = qxd.ParseResetPolicy(c.String("reset")); err != nil {
		return s, fmt.Errorf("consume %q: %w", s.topic, err)
	}
	s.resetName = strings.ToLower(c.String("reset"))
	if s.isolation, err = qxd.ParseIsolationLevel(c.String("isolation")); err != nil {
		return s, fmt.Errorf("consume %q: --isolation: %w", s.topic, err)
	}
	if s.format, err = parseFormat(c.String("format")); err != nil {
		return s, err
	}
	if s.format.keyB64, err = parseBytesFormat("key-format", c.String("key-format")); err != nil {
		return s, err
	}
	if s.format.valueB64, err = parseBytesFormat("value-format", c.String("value-format")); err != nil {
		return s, err
	}
	s.num = c.Int("num")
	if s.num < 0 {
		return s, fmt.Errorf("--num %d is negative: give the number of records to print", s.num)
	}
	s.exitAtEnd = c.Bool("exit-at-end")

	if !c.IsSet("group") {
		for _, f := range []string{"instance-id", "session-timeout"} {
			if c.IsSet(f) {
				return s, fmt.Errorf("consume %q: --%s applies to group members only: add --group G, or drop --%s", s.topic, f, f)
			}
		}
		if s.offset, err = parseStartOffset(c.String("offset")); err != nil {
			return s, fmt.Errorf("consume %q: %w", s.topic, err)
		}
		if s.parts, err = parsePartitions(c.StringSlice("partition")); err != nil {
			return s, err
		}
		return s, nil
	}

	s.group = c.String("group")
	if err := semantics.ValidateGroupID(s.group); err != nil {
		return s, fmt.Errorf("consume %q: --group: %w", s.topic, err)
	}
	if c.IsSet("partition") {
		return s, fmt.Errorf("consume %q: --partition (QXD_CONSUME_PARTITION) cannot be used with --group %s: the group assigns partitions to its members; drop --partition, or drop --group to read chosen partitions alone",
			s.topic, s.group)
	}
	if c.IsSet("offset") {
		return s, fmt.Errorf("consume %q: --offset (QXD_CONSUME_OFFSET) cannot be used with --group %s: each partition starts at the group's committed offset (--reset decides where one without a commit starts); drop --offset, or stop the group's members and move its offsets with 'qxd group seek %s --topic %s --to %s'",
			s.topic, s.group, s.group, s.topic, c.String("offset"))
	}
	s.instanceID = c.String("instance-id")
	if c.IsSet("instance-id") && s.instanceID == "" {
		return s, fmt.Errorf("consume %q: --instance-id is empty: give the static member's id, or drop --instance-id", s.topic)
	}
	s.sessionTimeout = c.Duration("session-timeout")
	if s.sessionTimeout <= 0 {
		return s, fmt.Errorf("consume %q: --session-timeout %v is not positive: give a duration such as 10s", s.topic, s.sessionTimeout)
	}
	return s, nil
}

func (a *app) consume(c *cli.Context) error {
	s, err := consumeFlags(c)
	if err != nil {
		return err
	}
	if s.group != "" {
		return a.consumeGroup(c, s)
	}
	return a.consumeAssigned(c, s)
}

// consumeAssigned reads the partitions the flags name, without a group.
func (a *app) consumeAssigned(c *cli.Context, s consumeSettings) error {
	topic, parts := s.topic, s.parts
	ctx := c.Context
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	n := d.Topic.Config.Partitions
	info := map[int32]qxd.PartitionInfo{}
	for _, pi := range d.Partitions {
		info[pi.Partition] = pi
	}
	if len(parts) == 0 {
		for p := int32(0); p < n; p++ {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		if p >= n {
			return fmt.Errorf("consume %q: --partition %d does not exist: the topic has partitions 0 to %d", topic, p, n-1)
		}
	}

	cons, err := cl.NewConsumer(qxd.WithResetPolicy(s.reset), qxd.Isolation(s.isolation))
	if err != nil {
		return fmt.Errorf("consume %q: %w", topic, err)
	}
	defer cons.Close(context.Background())
	as := make([]qxd.Assignment, 0, len(parts))
	for _, p := range parts {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p, Offset: s.offset.in(info[p])})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %q from offset %s: %w", topic, s.offset.text, err)
	}
	if s.offset.absolute {
		a.sayResets(cons, s, parts, info)
	}

	// With --exit-at-end, each partition is read up to the high watermark it had at
	// the start; those whose start position is there already are done.
	var end map[int32]int64 // partition → high watermark at the start
	var pending map[int32]bool
	if s.exitAtEnd {
		end, pending = map[int32]int64{}, map[int32]bool{}
		for _, pi := range d.Partitions {
			end[pi.Partition] = pi.HighWatermark
			if s.isolation == qxd.ReadCommitted && pi.LastStableOffset >= 0 {
				end[pi.Partition] = pi.LastStableOffset // a read-committed reader's end
			}
		}
		for _, p := range parts {
			pending[p] = true
		}
		if doneAtEnd(cons, topic, end, pending) {
			return nil
		}
	}

	w := bufio.NewWriterSize(a.stdout, 64<<10)
	count := 0
	for {
		pctx := ctx
		var cancel context.CancelFunc = func() {}
		if end != nil {
			// The position also moves past transaction markers and aborted
			// records, which Poll does not return: look again now and then.
			pctx, cancel = context.WithTimeout(ctx, endCheckEvery)
		}
		recs, err := cons.Poll(pctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		for i := range recs {
			r := &recs[i]
			if end != nil && r.Offset >= end[r.Partition] {
				continue
			}
			if err := s.format.write(w, r); err != nil {
				return err
			}
			count++
			if s.num > 0 && count >= s.num {
				return w.Flush()
			}
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: a normal way to stop following
			}
			return fmt.Errorf("consume %q: %w", topic, err)
		}
		if end != nil && doneAtEnd(cons, topic, end, pending) {
			return nil
		}
	}
}

// endCheckEvery is how often consume --exit-at-end checks the positions while
// no records come.
const endCheckEvery = 500 * time.Millisecond

// sayResets tells on stderr, for each partition whose --offset was outside its
// stored range, where --reset moved it.
func (a *app) sayResets(cons *qxd.Consumer, s consumeSettings, parts []int32, info map[int32]qxd.PartitionInfo) {
	want := s.offset.off
	for _, p := range parts {
		pos, ok := cons.Position(s.topic, p)
		if !ok || pos == want {
			continue
		}
		pi := info[p]
		stored := fmt.Sprintf("stored offsets are %d to %d, high watermark %d", pi.LogStartOffset, pi.HighWatermark-1, pi.HighWatermark)
		if pi.LogStartOffset >= pi.HighWatermark {
			stored = fmt.Sprintf("the partition holds no records, high watermark %d", pi.HighWatermark)
		}
		fmt.Fprintf(a.stderr, "qxd: consume %q: %s: offset %d is out of range (%s): starting at %d, as --reset %s says; use --reset error to fail instead\n",
			s.topic, semantics.PartitionString(s.topic, p), want, stored, pos, s.resetName)
	}
}

// doneAtEnd drops from pending the partitions whose position reached their end
// offset and reports whether none is left.
func doneAtEnd(cons *qxd.Consumer, topic string, end map[int32]int64, pending map[int32]bool) bool {
	for p := range pending {
		if pos, ok := cons.Position(topic, p); ok && pos >= end[p] {
			delete(pending, p)
		}
	}
	return len(pending) == 0
}

// startOffset is consume's --offset: a qxd.Offset, or an offset relative to each
// partition's start (+N) or end (-N).
type startOffset struct {
	text               string // as given
	off                int64  // with absolute: the offset asked for
	absolute           bool   // an offset number, which --reset may move
	rel                int64  // with fromStart or fromEnd: N
	fromStart, fromEnd bool
	at                 qxd.Offset // otherwise
}

// parseStartOffset reads --offset: start, end, an offset, -N, +N or @<unix ms>.
func parseStartOffset(s string) (startOffset, error) {
	o := startOffset{text: s}
	if s != "" && (s[0] == '+' || s[0] == '-') {
		n, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil || n < 0 || s[1] == '+' {
			return o, fmt.Errorf("--offset %q is not valid: after %c give a number of offsets, e.g. %c10", s, s[0], s[0])
		}
		o.rel, o.fromStart, o.fromEnd = n, s[0] == '+', s[0] == '-'
		return o, nil
	}
	at, err := qxd.ParseOffset(s)
	if err != nil {
		if strings.HasPrefix(s, "@") {
			return o, err
		}
		return o, fmt.Errorf("--offset %q is not valid: use start, end, an offset from 0, -N (N before the end), +N (N after the start) or @<unix ms>", s)
	}
	o.at = at
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		o.off, o.absolute = n, true
	}
	return o, nil
}

// in returns where o starts in a partition whose offsets are pi's. -N and +N stay
// within the stored range.
func (o startOffset) in(pi qxd.PartitionInfo) qxd.Offset {
	if !o.fromEnd && !o.fromStart {
		return o.at
	}
	if o.rel >= pi.HighWatermark-pi.LogStartOffset {
		if o.fromEnd {
			return qxd.At(pi.LogStartOffset)
		}
		return qxd.At(pi.HighWatermark)
	}
	if o.fromEnd {
		return qxd.At(pi.HighWatermark - o.rel)
	}
	return qxd.At(pi.LogStartOffset + o.rel)
}

// parsePartitions reads --partition values: numbers, repeated or comma-separated.
func parsePartitions(vals []string) ([]int32, error) {
	var out []int32
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--partition %q is not a partition number: give a number from 0, e.g. --partition 0 --partition 2 or --partition 0,2", s)
			}
			if !slices.Contains(out, int32(n)) {
				out = append(out, int32(n))
			}
		}
	}
	return out, nil
}
