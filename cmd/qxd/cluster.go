package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

func (a *app) clusterCommand() *cli.Command {
	return &cli.Command{
		Name:   "cluster",
		Usage:  "show the cluster's nodes and partition replication",
		Action: groupAction,
		Subcommands: []*cli.Command{
			a.clusterInfoCommand(),
			a.clusterMetadataCommand(),
		},
	}
}

func (a *app) clusterInfoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "show the nodes, the meta leader and the under-replicated partitions",
		Description: "Any node answers. A node is up unless the cluster saw it shut down or lost\n" +
			"track of it. LEADERS counts the partitions a node leads, REPLICAS the partition\n" +
			"replicas it holds, its leaders included; LAG the RAFT entries its replicas are\n" +
			"behind their leaders, summed (a node that led partitions when it was cut off\n" +
			"can stay behind for a while after the heal). A partition is under-replicated when\n" +
			"fewer of its replicas than the topic's replication factor are current (caught\n" +
			"up with the leader, which counts as current); one without a leader shows 0.\n" +
			"SYNC is the node's --sync: always (appends are on disk before they are\n" +
			"acknowledged) or the interval of its background sync (a power failure can lose\n" +
			"that much acknowledged data); - when the node did not answer.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: a.clusterInfo,
	}
}

func (a *app) clusterInfo(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("cluster info takes no arguments, got %q", c.Args().Slice())
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	info, err := cl.Admin().ClusterInfo(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(a.stdout, info)
	}
	up := 0
	for _, n := range info.Nodes {
		if n.Up {
			up++
		}
	}
	name := info.Name
	if name == "" {
		name = "- (single node)"
	}
	leader := info.MetaLeader
	if leader == "" {
		leader = "- (none: a majority of the nodes must be up to elect one)"
	}
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "cluster:\t%s\n", name)
	fmt.Fprintf(tw, "meta leader:\t%s\n", leader)
	fmt.Fprintf(tw, "nodes:\t%d up of %d\n", up, len(info.Nodes))
	fmt.Fprintf(tw, "partitions:\t%d\n", info.Partitions)
	fmt.Fprintf(tw, "under-replicated:\t%d\n", len(info.UnderReplicated))
	fmt.Fprintf(tw, "damaged:\t%d\n", len(info.Damaged))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "NODE\tUP\tLEADERS\tREPLICAS\tLAG\tSYNC\tKAFKA")
	for _, n := range info.Nodes { // sorted by name by the node
		fmt.Fprintf(tw, "%s\t%t\t%d\t%d\t%d\t%s\t%s\n", n.Name, n.Up, n.Leaders, n.Replicas, n.Lag, dash(n.Sync), dash(n.Kafka))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(info.Damaged) > 0 {
		fmt.Fprintln(a.stdout)
	}
	for _, d := range info.Damaged {
		if d.Missing > 0 {
			fmt.Fprintf(a.stdout, "NOTE: partition %s/%d is damaged: %d batches are missing from its log on node %s (qxd topic describe %s)\n",
				d.Topic, d.Partition, d.Missing, dash(d.Leader), d.Topic)
		}
		if d.Note != "" {
			fmt.Fprintf(a.stdout, "NOTE: partition %s/%d is damaged: %s (qxd topic describe %s)\n", d.Topic, d.Partition, d.Note, d.Topic)
		}
	}
	if len(info.UnderReplicated) == 0 {
		return nil
	}

	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tCURRENT/REPLICAS\tOUT-OF-SYNC")
	for _, p := range info.UnderReplicated {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d/%d\t%s\n", p.Topic, p.Partition, dash(p.Leader), p.Current, p.Replicas,
			dash(strings.Join(p.OutOfSync, ",")))
	}
	return tw.Flush()
}

func (a *app) clusterMetadataCommand() *cli.Command {
	return &cli.Command{
		Name:    "metadata",
		Aliases: []string{"md"},
		Usage:   "list the nodes with their addresses and every partition's leader, replicas and ISR (kcat -L)",
		Description: "Any node answers. ADDRESS is where a node takes clients (- when it did not\n" +
			"answer). ISR are the in-sync replicas: the leader, and the followers the leader\n" +
			"sees caught up and that are not offline. --topic limits the list.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "topic", Aliases: []string{"t"}, Usage: "only `TOPIC`; repeat for more"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: a.clusterMetadata,
	}
}

func (a *app) clusterMetadata(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("cluster metadata takes no arguments, got %q: to list some topics use --topic NAME", c.Args().Slice())
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := cl.Admin().Metadata(c.Context, c.StringSlice("topic")...)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(a.stdout, md)
	}
	name := md.Cluster
	if name == "" {
		name = "- (single node)"
	}
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "cluster:\t%s\n", name)
	fmt.Fprintf(tw, "meta leader:\t%s\n", dash(md.MetaLeader))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "NODE\tADDRESS\tUP")
	for _, b := range md.Brokers {
		fmt.Fprintf(tw, "%s\t%s\t%t\n", b.Name, dash(b.Addr), b.Up)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tREPLICAS\tISR\tPROBLEM")
	for _, t := range md.Topics {
		switch {
		case t.Error != nil:
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\n", t.Name, oneLine(t.Error.Message))
			continue
		case len(t.Partitions) == 0:
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\ttopic is %s\n", t.Name, t.State)
			continue
		}
		for _, p := range t.Partitions {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", t.Name, p.Partition, dash(p.Leader),
				dash(strings.Join(p.Replicas, ",")), dash(strings.Join(p.InSync, ",")), dash(p.Problem))
		}
	}
	return tw.Flush()
}
