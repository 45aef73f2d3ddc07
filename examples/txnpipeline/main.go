// Command txnpipeline shows exactly-once consume-transform-produce with the SDK's
// transactions, against a qxd node embedded in the program:
//
//	topic "words" ──> consumer group "shout" ──> upper-case ──> topic "shouted"
//	                  (its offsets are committed in the same transaction as
//	                   the records it produces)
//
// Each batch a Poll returns is one transaction: the transformed records and the
// group's input offsets commit together, or not at all. To show that, the
// pipeline aborts one transaction on purpose (as a crash would leave it), moves
// back to the committed offsets and does the batch again; a read-committed
// consumer of "shouted" then sees every word exactly once, while a
// read-uncommitted one also sees the aborted attempt.
//
//	go run ./examples/txnpipeline [-words 40]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/server"
)

func main() {
	n := flag.Int("words", 40, "how many words to transform")
	timeout := flag.Duration("timeout", 60*time.Second, "give up if not done by then")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	sum, err := run(ctx, os.Stdout, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "txnpipeline:", err)
		os.Exit(1)
	}
	fmt.Printf("read committed: %d records, read uncommitted: %d\n", len(sum.Committed), len(sum.Uncommitted))
}

// summary is what a run saw.
type summary struct {
	Committed   []string // "shouted" read committed
	Uncommitted []string // "shouted" read uncommitted
	Aborted     int      // records of the aborted transaction
}

func run(ctx context.Context, w io.Writer, words int) (summary, error) {
	var sum summary
	dir, err := os.MkdirTemp("", "qxd-txnpipeline-")
	if err != nil {
		return sum, err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	node, err := server.Start(ctx, cfg)
	if err != nil {
		return sum, err
	}
	defer node.Close(context.Background())
	client, err := qxd.Connect(ctx, node.ClientURL())
	if err != nil {
		return sum, err
	}
	defer client.Close()
	for _, t := range []string{"words", "shouted"} {
		if _, err := client.Admin().CreateTopic(ctx, t, qxd.TopicConfig{Partitions: 3}); err != nil {
			return sum, err
		}
	}

	// The input, produced without a transaction.
	in, err := client.NewProducer(qxd.DefaultTopic("words"))
	if err != nil {
		return sum, err
	}
	for i := range words {
		r := &qxd.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "word-%d", i)}
		if err := in.Produce(ctx, r, nil); err != nil {
			return sum, err
		}
	}
	if err := in.Close(ctx); err != nil {
		return sum, err
	}
	fmt.Fprintf(w, "produced %d words\n", words)

	n, aborted, err := pipeline(ctx, w, client, words)
	if err != nil {
		return sum, err
	}
	sum.Aborted = aborted
	fmt.Fprintf(w, "pipeline: %d words transformed, one transaction of %d aborted and redone\n", n, aborted)

	if sum.Committed, err = readAll(ctx, client, qxd.ReadCommitted); err != nil {
		return sum, err
	}
	if sum.Uncommitted, err = readAll(ctx, client, qxd.ReadUncommitted); err != nil {
		return sum, err
	}
	return sum, nil
}

// pipeline transforms the words in transactions until it has done all of them,
// aborting its second transaction on purpose. It returns how many words it
// transformed in committed transactions, and the aborted one's size.
func pipeline(ctx context.Context, w io.Writer, client *qxd.Client, words int) (done, aborted int, err error) {
	// Small batches, so that the run has several transactions.
	cons, err := client.NewConsumer(qxd.Group("shout"), qxd.AutoCommit(0), qxd.Isolation(qxd.ReadCommitted),
		qxd.MaxPollRecords(max(1, words/5)))
	if err != nil {
		return 0, 0, err
	}
	defer cons.Close(context.Background())
	if err := cons.Subscribe(ctx, "words"); err != nil {
		return 0, 0, err
	}
	out, err := client.NewProducer(qxd.TransactionalID("shout-1"), qxd.DefaultTopic("shouted"))
	if err != nil {
		return 0, 0, err
	}
	defer out.Close(context.Background())

	for txn := 1; done < words; txn++ {
		recs, err := cons.Poll(ctx)
		if err != nil {
			return done, aborted, err
		}
		if len(recs) == 0 {
			continue
		}
		if err := out.BeginTransaction(); err != nil {
			return done, aborted, err
		}
		next := map[qxd.TopicPartition]qxd.OffsetAndMetadata{}
		for _, r := range recs {
			up := &qxd.Record{Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))}
			if err := out.Produce(ctx, up, nil); err != nil {
				return done, aborted, err
			}
			next[qxd.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = qxd.OffsetAndMetadata{Offset: r.Offset + 1}
		}
		if err := out.SendOffsetsToTransaction(ctx, cons, next); err != nil {
			return done, aborted, err
		}
		if txn == 2 {
			// As if the process had failed here: nothing of the batch counts, and
			// the consumer goes back to the group's committed offsets.
			if err := out.AbortTransaction(ctx); err != nil {
				return done, aborted, err
			}
			aborted = len(recs)
			fmt.Fprintf(w, "transaction %d: aborted %d records\n", txn, len(recs))
			if err := cons.SeekToCommitted(ctx); err != nil {
				return done, aborted, err
			}
			continue
		}
		if err := out.CommitTransaction(ctx); err != nil {
			return done, aborted, err
		}
		done += len(recs)
		fmt.Fprintf(w, "transaction %d: committed %d records\n", txn, len(recs))
	}
	return done, aborted, nil
}

// readAll reads every record of "shouted" with isolation level l.
func readAll(ctx context.Context, client *qxd.Client, l qxd.IsolationLevel) ([]string, error) {
	cons, err := client.NewConsumer(qxd.Isolation(l))
	if err != nil {
		return nil, err
	}
	defer cons.Close(context.Background())
	var as []qxd.Assignment
	for p := range int32(3) {
		as = append(as, qxd.Assignment{Topic: "shouted", Partition: p, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		return nil, err
	}
	var got []string
	for quiet := 0; quiet < 4; {
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		recs, err := cons.Poll(pctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return got, ctx.Err()
		}
		if len(recs) == 0 {
			quiet++
		}
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
	}
	return got, nil
}
