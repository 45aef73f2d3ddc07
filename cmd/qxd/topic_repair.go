package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd/semantics"
)

func (a *app) topicRepairCommand() *cli.Command {
	return &cli.Command{
		Name:      "repair",
		Usage:     "rebuild a partition's damaged copy on one node from its healthy replicas",
		ArgsUsage: "NAME [--partition P] [--node NODE]",
		Description: "For each partition recorded damaged (or only --partition P), reads back every\n" +
			"other replica's copy while it leads the partition, and only when all are current\n" +
			"and intact drops the damaged copy (of --node NODE, or the one node the damage\n" +
			"record names) and has JetStream place a fresh one, copied from the leader: on\n" +
			"another node when one can take it, else on the same node (the partition runs one\n" +
			"replica short meanwhile, on the verified copies). The new copy is read back too,\n" +
			"which clears the damage record. Changes nothing when a check fails. Producers\n" +
			"see the partition's leadership move a few times; it takes a while on a large\n" +
			"partition. A partition left with fewer replicas than its topic's replication\n" +
			"factor (an interrupted repair) is scaled back up instead. A damage record naming\n" +
			"a node that holds no copy any more (its replica moved, or it left the cluster)\n" +
			"has nothing to rebuild: every copy is read back and, if all are intact, that\n" +
			"node's entries are removed. Nodes started with --auto-repair (the default) do\n" +
			"all of this on their own.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "partition", Aliases: []string{"p"}, Value: -1, DefaultText: "every damaged one", Usage: "the `P`artition to repair"},
			&cli.StringFlag{Name: "node", Usage: "the `NODE` whose copy to rebuild (with --partition); default: the one the damage record names"},
		},
		Action: a.topicRepair,
	}
}

func (a *app) topicRepair(c *cli.Context) error {
	name, err := oneArg(c, "topic NAME")
	if err != nil {
		return err
	}
	p := c.Int("partition")
	if c.IsSet("partition") && (p < 0 || p >= semantics.MaxPartitions) {
		return fmt.Errorf("repair topic %q: --partition %d is not a partition: give 0 or more", name, p)
	}
	node := strings.TrimSpace(c.String("node"))
	if c.IsSet("node") && (node == "" || !c.IsSet("partition")) {
		return fmt.Errorf("repair topic %q: --node needs a node name and --partition P: e.g. qxd topic repair %s --partition 0 --node n2", name, name)
	}
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := cl.Admin()
	parts := []int32{int32(p)}
	if !c.IsSet("partition") {
		d, err := adm.DescribeTopic(c.Context, name)
		if err != nil {
			return err
		}
		parts = nil
		for _, pi := range d.Partitions {
			if len(pi.Damaged) > 0 || len(pi.Replicas) > 0 && len(pi.Replicas) < d.Topic.Config.Replicas {
				parts = append(parts, pi.Partition)
			}
		}
		if len(parts) == 0 {
			fmt.Fprintf(a.stdout, "topic %s: no partition has damage recorded: nothing to repair (none is short of replicas either; run 'qxd topic describe %s --verify' to look for damage)\n", name, name)
			return nil
		}
	}
	var failed []string
	for _, p := range parts {
		r, err := adm.RepairPartition(c.Context, name, p, node)
		if err != nil && len(parts) == 1 {
			return fmt.Errorf("partition %d not repaired: %w", p, err)
		}
		if err != nil {
			fmt.Fprintf(a.stdout, "partition %d: not repaired: %s\n", p, oneLine(err.Error()))
			failed = append(failed, fmt.Sprint(p))
			continue
		}
		if r.Node == "" {
			fmt.Fprintf(a.stdout, "partition %d: was short of replicas: scaled back up, the new copy on node %s read back intact (%d batches); replicas %s\n",
				p, r.Rebuilt, r.Batches, strings.Join(r.Replicas, ", "))
			continue
		}
		if r.Rebuilt == "" {
			fmt.Fprintf(a.stdout, "partition %d: node %s holds no copy any more (replicas %s): nothing to rebuild; the copies there read back intact, and the damage entries naming node %s were removed\n",
				p, r.Node, strings.Join(r.Replicas, ", "), r.Node)
			continue
		}
		where := "on the same node"
		if r.Rebuilt != r.Node {
			where = "on node " + r.Rebuilt
		}
		fmt.Fprintf(a.stdout, "partition %d: the copy on node %s was rebuilt %s from the copies on %s (read back intact first); %d batches read back intact; replicas %s\n",
			p, r.Node, where, strings.Join(r.Verified, ", "), r.Batches, strings.Join(r.Replicas, ", "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("topic %q: partitions %s were not repaired (see above): fix what the message names and run 'qxd topic repair %s' again",
			name, strings.Join(failed, ", "), name)
	}
	return nil
}
