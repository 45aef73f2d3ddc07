package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
)

// maxLineBytes is the longest stdin line produce reads: twice the largest record
// batch a topic may allow, so an over-size record gets the topic's own error.
const maxLineBytes = 16 << 20

// interruptFlushTimeout bounds the flush of records already read when produce is
// interrupted.
const interruptFlushTimeout = 10 * time.Second

func (a *app) produceCommand() *cli.Command {
	return &cli.Command{
		Name:      "produce",
		Usage:     "produce records from stdin, one per line",
		ArgsUsage: "TOPIC",
		Description: "Reads stdin and produces one record per line (a trailing \\r is dropped), in order.\n" +
			"Without --key or --key-delim records have no key and go to a sticky partition;\n" +
			"keyed records go to murmur2(key) % partitions, as Kafka's Java client puts them.\n" +
			"With --key-delim D the text before the first D is the key and the rest the value;\n" +
			"a line without D has no key. D may use the escapes \\t and \\\\.\n" +
			"Lines may be up to 16 MiB. It exits non-zero if any record failed, with the first\n" +
			"failure by input line.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Aliases: []string{"k"},
				Usage: "give every record the key `KEY`"},
			&cli.StringFlag{Name: "key-delim", Aliases: []string{"K"},
				Usage: "split each line at the first `DELIM` into key and value"},
			&cli.IntFlag{Name: "partition", Aliases: []string{"p"},
				DefaultText: "by key", Usage: "send every record to partition `P`"},
			&cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, KeepSpace: true,
				Usage: "add the header `K=V` to every record; repeat for more, kept in order"},
			&cli.StringFlag{Name: "acks", Value: "all", EnvVars: []string{"QXD_PRODUCE_ACKS"},
				Usage: "acknowledgement `LEVEL`: all, leader, or none (fire and forget: not idempotent, offsets -1)"},
			&cli.StringFlag{Name: "compression", Aliases: []string{"z"}, Value: "none", EnvVars: []string{"QXD_PRODUCE_COMPRESSION"},
				Usage: "compress batches with `CODEC`: none, gzip, snappy, lz4 or zstd"},
			&cli.BoolFlag{Name: "null-empty", Aliases: []string{"Z"},
				Usage: "send an empty value as null (Kafka's tombstone on a compacted topic), as kcat -Z"},
			&cli.BoolFlag{Name: "print-offsets", EnvVars: []string{"QXD_PRODUCE_PRINT_OFFSETS"},
				Usage: "print 'PARTITION OFFSET' for every record, in input order, once all are stored"},
			&cli.DurationFlag{Name: "linger", Value: qxd.DefaultLinger, EnvVars: []string{"QXD_PRODUCE_LINGER"},
				Usage: "wait up to `DURATION` for more records before sending a batch (linger.ms)"},
		},
		Action: a.produce,
	}
}

// produceSettings are produce's flags, checked.
type produceSettings struct {
	topic     string
	key       []byte
	delim     []byte
	partition int32
	manual    bool
	headers   []qxd.Header
	opts      []qxd.ProducerOption
	print     bool
	nullEmpty bool
}

func produceFlags(c *cli.Context) (produceSettings, error) {
	var s produceSettings
	var err error
	if s.topic, err = oneArg(c, "TOPIC"); err != nil {
		return s, err
	}
	if c.IsSet("key") && c.IsSet("key-delim") {
		return s, errors.New("--key and --key-delim both set: use --key for one key on every record, or --key-delim to read keys from the lines")
	}
	if c.IsSet("key") {
		s.key = []byte(c.String("key"))
	}
	if c.IsSet("key-delim") {
		d, err := unescape("key-delim", c.String("key-delim"))
		if err != nil {
			return s, err
		}
		if d == "" {
			return s, errors.New(`--key-delim "" is empty: give the text between key and value, e.g. --key-delim :`)
		}
		s.delim = []byte(d)
	}
	if c.IsSet("partition") {
		p := c.Int("partition")
		if p < 0 {
			return s, fmt.Errorf("--partition %d is not valid: partitions are numbered from 0 (see 'qxd topic describe %s')", p, s.topic)
		}
		s.partition, s.manual = int32(p), true
		s.opts = append(s.opts, qxd.RecordPartition())
	}
	for _, h := range c.StringSlice("header") {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return s, fmt.Errorf("--header %q is not KEY=VALUE: give e.g. --header trace-id=42", h)
		}
		s.headers = append(s.headers, qxd.Header{Key: k, Value: []byte(v)})
	}
	acks, err := qxd.ParseAcks(strings.ToLower(c.String("acks")))
	if err != nil {
		return s, err
	}
	codec, err := qxd.ParseCompression(c.String("compression"))
	if err != nil {
		return s, err
	}
	if l := c.Duration("linger"); l < 0 {
		return s, fmt.Errorf("--linger %v is negative: use 0 to send at once, or e.g. 5ms", l)
	}
	s.opts = append(s.opts, qxd.WithAcks(acks), qxd.WithCompression(codec), qxd.Linger(c.Duration("linger")))
	s.print = c.Bool("print-offsets")
	s.nullEmpty = c.Bool("null-empty")
	return s, nil
}

func (a *app) produce(c *cli.Context) error {
	s, err := produceFlags(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	cl, err := a.connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Check the topic and partition before reading a line of input.
	t, err := cl.Admin().Topic(ctx, s.topic)
	if err != nil {
		return err
	}
	if n := t.Config.Partitions; s.manual && s.partition >= n {
		return fmt.Errorf("produce to %q: --partition %d does not exist: the topic has partitions 0 to %d", s.topic, s.partition, n-1)
	}
	p, err := cl.NewProducer(s.opts...)
	if err != nil {
		return err
	}

	// Read stdin on its own goroutine, so an interrupt is seen while a read blocks.
	lines := make(chan []byte, 256)
	stopRead := make(chan struct{})
	var readErr error
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(a.stdin)
		sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
		for sc.Scan() {
			b := bytes.Clone(bytes.TrimSuffix(sc.Bytes(), []byte{'\r'}))
			select {
			case lines <- b:
			case <-stopRead:
				return
			}
		}
		readErr = sc.Err()
	}()

	var (
		mu        sync.Mutex
		failed    int
		firstLine int
		firstErr  error
	)
	var recs []*qxd.Record // with --print-offsets, in input order
	var produceErr, inputErr error
	n, accepted := 0, 0 // lines read, records taken by the producer
	interrupted := false
read:
	for {
		select {
		case b, ok := <-lines:
			if !ok {
				inputErr = readErr // set before lines was closed
				break read
			}
			n++
			r := &qxd.Record{Topic: s.topic, Key: s.key, Value: b, Headers: s.headers, Partition: s.partition}
			if s.delim != nil {
				if k, v, found := bytes.Cut(b, s.delim); found {
					r.Key, r.Value = k, v
				}
			}
			if s.nullEmpty && len(r.Value) == 0 {
				r.Value = nil
			}
			line := n
			err := p.Produce(ctx, r, func(_ *qxd.Record, err error) {
				if err == nil {
					return
				}
				mu.Lock()
				failed++
				if firstErr == nil || line < firstLine {
					firstLine, firstErr = line, err
				}
				mu.Unlock()
			})
			if err != nil {
				if ctx.Err() != nil {
					interrupted = true
				} else {
					produceErr = fmt.Errorf("produce to %q: line %d: %w", s.topic, line, err)
				}
				break read
			}
			accepted++
			if s.print {
				recs = append(recs, r)
			}
		case <-ctx.Done():
			interrupted = true
			break read
		}
	}
	close(stopRead)

	// Close flushes what was accepted and calls every callback before it returns.
	closeCtx := ctx
	if interrupted || produceErr != nil {
		var cancel context.CancelFunc
		closeCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), interruptFlushTimeout)
		defer cancel()
	}
	closeErr := p.Close(closeCtx)

	if s.print {
		w := bufio.NewWriter(a.stdout)
		for _, r := range recs {
			fmt.Fprintf(w, "%d %d\n", r.Partition, r.Offset)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case produceErr != nil:
		return produceErr
	case firstErr != nil:
		return fmt.Errorf("produce to %q: %d of %d records failed; the first, from line %d: %w", s.topic, failed, accepted, firstLine, firstErr)
	case interrupted && closeErr != nil:
		return fmt.Errorf("produce to %q: interrupted after %d lines, and storing them failed: %w", s.topic, accepted, closeErr)
	case interrupted:
		return fmt.Errorf("produce to %q: interrupted after %d lines; those are stored", s.topic, accepted)
	case inputErr != nil:
		if errors.Is(inputErr, bufio.ErrTooLong) {
			return fmt.Errorf("produce to %q: line %d of stdin is longer than %d MiB: split it or send it another way", s.topic, n+1, maxLineBytes>>20)
		}
		return fmt.Errorf("produce to %q: read stdin after line %d: %w", s.topic, n, inputErr)
	case closeErr != nil:
		return fmt.Errorf("produce to %q: %w", s.topic, closeErr)
	}
	return nil
}
