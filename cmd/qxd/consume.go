package main

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
)

func (a *app) consumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "consume",
		Usage:     "print a topic's records to stdout",
		ArgsUsage: "TOPIC",
		Description: "Reads every partition of TOPIC (or those given with --partition) from --offset,\n" +
			"in offset order within each partition, and follows new records until interrupted.\n" +
			"--offset is start, end, an offset, or @<unix ms> for the first record at or after\n" +
			"that time. An offset outside a partition's stored range is handled by --reset,\n" +
			"earliest by default as Kafka's auto.offset.reset; --reset none makes it an error\n" +
			"that names the valid range.\n" +
			"--exit-at-end stops once every partition reached the high watermark it had when\n" +
			"consume started; records produced after that are not printed.\n\n" + formatHelp,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "partition", Aliases: []string{"p"}, EnvVars: []string{"QXD_PARTITION"},
				DefaultText: "all", Usage: "read only partition `P`; repeat or comma-separate for more"},
			&cli.StringFlag{Name: "offset", Aliases: []string{"o"}, Value: "start", EnvVars: []string{"QXD_OFFSET"},
				Usage: "where to start: start, end, an `OFFSET`, or @<unix ms>"},
			&cli.IntFlag{Name: "num", Aliases: []string{"n"}, EnvVars: []string{"QXD_NUM"},
				DefaultText: "no limit", Usage: "exit after `N` records"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: `%v\n`, DefaultText: `%v\n`, EnvVars: []string{"QXD_FORMAT"},
				Usage: "print each record as `FORMAT`: verbs %t %p %o %k %v %h %T, or json (see above)"},
			&cli.BoolFlag{Name: "exit-at-end", Aliases: []string{"e"}, EnvVars: []string{"QXD_EXIT_AT_END"},
				Usage: "exit once every partition's end, as of the start, is reached"},
			&cli.StringFlag{Name: "reset", Value: "earliest", EnvVars: []string{"QXD_RESET"},
				Usage: "where to start when --offset is not stored (`POLICY`): earliest, latest or none (fail)"},
		},
		Action: a.consume,
	}
}

func (a *app) consume(c *cli.Context) error {
	topic, err := oneArg(c, "TOPIC")
	if err != nil {
		return err
	}
	off, err := qxd.ParseOffset(c.String("offset"))
	if err != nil {
		return fmt.Errorf("consume %q: %w", topic, err)
	}
	reset, err := qxd.ParseResetPolicy(c.String("reset"))
	if err != nil {
		return fmt.Errorf("consume %q: %w", topic, err)
	}
	format, err := parseFormat(c.String("format"))
	if err != nil {
		return err
	}
	num := c.Int("num")
	if num < 0 {
		return fmt.Errorf("--num %d is negative: give the number of records to print", num)
	}
	parts, err := parsePartitions(c.StringSlice("partition"))
	if err != nil {
		return err
	}
	exitAtEnd := c.Bool("exit-at-end")

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

	cons := cl.NewConsumer(qxd.WithResetPolicy(reset))
	defer cons.Close()
	as := make([]qxd.Assignment, 0, len(parts))
	for _, p := range parts {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p, Offset: off})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %q from offset %s: %w", topic, off, err)
	}

	// With --exit-at-end, each partition is read up to the high watermark it had at
	// the start; those whose start position is there already are done.
	var end map[int32]int64 // partition → high watermark at the start
	var pending map[int32]bool
	if exitAtEnd {
		end, pending = map[int32]int64{}, map[int32]bool{}
		for _, pi := range d.Partitions {
			end[pi.Partition] = pi.HighWatermark
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
		recs, err := cons.Poll(ctx)
		for i := range recs {
			r := &recs[i]
			if end != nil && r.Offset >= end[r.Partition] {
				continue
			}
			if err := format.write(w, r); err != nil {
				return err
			}
			count++
			if num > 0 && count >= num {
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
