package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
)

func (a *app) txnCommand() *cli.Command {
	return &cli.Command{
		Name:  "txn",
		Usage: "list and describe transactional producers (Kafka transactions)",
		Description: "A transactional producer (the SDK's qxd.TransactionalID, a Kafka client's\n" +
			"transactional.id) writes to several partitions and commits its input offsets\n" +
			"atomically. The transaction coordinator keeps each transactional id's producer\n" +
			"id, epoch and open transaction.",
		Subcommands: []*cli.Command{
			{
				Name:    "list",
				Aliases: []string{"ls"},
				Usage:   "list the transactional ids, sorted by id",
				Flags:   []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array of transactional ids"}},
				Action:  a.txnList,
			},
			{
				Name:      "describe",
				Usage:     "show a transactional id's producer, state and open transaction",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action:    a.txnDescribe,
			},
		},
	}
}

func (a *app) txnList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("txn list takes no arguments, got %q: to see one use 'qxd txn describe ID'", c.Args().Slice())
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	ts, err := cl.Admin().ListTransactions(c.Context)
	if err != nil {
		return err
	}
	slices.SortFunc(ts, func(x, y qxd.TxnDescription) int { return cmp.Compare(x.TransactionalID, y.TransactionalID) })
	if c.Bool("json") {
		if ts == nil {
			ts = []qxd.TxnDescription{}
		}
		return writeJSON(a.stdout, ts)
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "TRANSACTIONAL-ID\tPRODUCER-ID\tEPOCH\tSTATE\tPARTITIONS")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", t.TransactionalID, t.ProducerID, t.Epoch, t.State, len(t.Partitions))
	}
	return tw.Flush()
}

func (a *app) txnDescribe(c *cli.Context) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	t, err := cl.Admin().DescribeTransaction(c.Context, id)
	if err != nil {
		return fmt.Errorf("%w (see the transactional ids with 'qxd txn list')", err)
	}
	if c.Bool("json") {
		return writeJSON(a.stdout, t)
	}
	started := "-"
	if t.StartMs >= 0 {
		started = time.UnixMilli(t.StartMs).UTC().Format(time.RFC3339)
	}
	parts := make([]string, len(t.Partitions))
	for i, p := range t.Partitions {
		parts[i] = fmt.Sprintf("%s/%d", p.Topic, p.Partition)
	}
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "transactional id:\t%s\n", t.TransactionalID)
	fmt.Fprintf(tw, "producer id:\t%d\n", t.ProducerID)
	fmt.Fprintf(tw, "epoch:\t%d\n", t.Epoch)
	fmt.Fprintf(tw, "state:\t%s\n", t.State)
	fmt.Fprintf(tw, "timeout:\t%v\n", time.Duration(t.TimeoutMs)*time.Millisecond)
	fmt.Fprintf(tw, "started:\t%s\n", started)
	fmt.Fprintf(tw, "partitions:\t%s\n", dash(strings.Join(parts, ",")))
	fmt.Fprintf(tw, "groups:\t%s\n", dash(strings.Join(t.Groups, ",")))
	return tw.Flush()
}
