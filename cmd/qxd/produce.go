package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// maxLineBytes is the longest record produce reads: twice the largest record
// batch a topic may allow, so an over-size record gets the topic's own error.
const maxLineBytes = 16 << 20

// maxFailuresShown is how many failed records produce names on stderr, one line
// each; the rest are counted.
const maxFailuresShown = 20

// interruptFlushTimeout bounds the flush of records already read when produce is
// interrupted.
const interruptFlushTimeout = 10 * time.Second

func (a *app) produceCommand() *cli.Command {
	return &cli.Command{
		Name:      "produce",
		Usage:     "produce records from stdin (or --file), one per line (or --delim)",
		ArgsUsage: "TOPIC",
		Description: "Reads stdin, or the file given with --file, and produces one record per line (a\n" +
			"trailing \\r is dropped), in order. With --delim D records are separated by D\n" +
			"instead, taken exactly (no \\r is dropped), e.g. --delim '\\n---\\n' for multi-line\n" +
			"values or --delim '\\0' for NUL-separated ones; a D at the very end of the input\n" +
			"ends the last record. D, and --key-delim's, may use the escapes \\n \\t \\r \\0\n" +
			"\\xHH and \\\\.\n" +
			"Without --key or --key-delim records have no key and go to a sticky partition;\n" +
			"keyed records go to murmur2(key) % partitions, as Kafka's Java client puts them.\n" +
			"With --key-delim D the text before the first D is the key and the rest the value;\n" +
			"a record without D has no key. --value-format base64 decodes each value from\n" +
			"standard base64 before producing it, for binary values (--key-format base64 the\n" +
			"same for keys, --key included); line breaks inside the base64 text are ignored.\n" +
			"Records may be up to 16 MiB. A record that cannot be produced (over the topic's\n" +
			"max record bytes, not base64, no key on a compacted topic, or refused by the\n" +
			"partition) is named on stderr with its line (or record) number, and the others\n" +
			"are still produced; produce then exits non-zero, saying how many failed and how\n" +
			"many were stored.",
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
				Usage: "print 'PARTITION OFFSET' for every record stored, in input order, once all are sent"},
			&cli.DurationFlag{Name: "linger", Value: qxd.DefaultLinger, EnvVars: []string{"QXD_PRODUCE_LINGER"},
				Usage: "wait up to `DURATION` for more records before sending a batch (linger.ms)"},
			&cli.StringFlag{Name: "file", DefaultText: "stdin",
				Usage: "read records from the file at `PATH` instead of stdin (- for stdin)"},
			&cli.StringFlag{Name: "delim", Aliases: []string{"D"}, DefaultText: `\n`,
				Usage: "separate records by `DELIM` instead of line breaks, as kcat -D; escapes \\n \\t \\r \\0 \\xHH \\\\"},
			&cli.StringFlag{Name: "key-format", Value: "text",
				Usage: "read keys as `ENCODING`: text or base64 (decoded before producing)"},
			&cli.StringFlag{Name: "value-format", Value: "text",
				Usage: "read values as `ENCODING`: text or base64 (decoded before producing, for binary values)"},
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

	file             string // "" for stdin
	recDelim         []byte // nil for lines
	keyB64, valueB64 bool
}

// unit names one record of the input in messages: a line, unless --delim is set.
func (s *produceSettings) unit() string {
	if s.recDelim != nil {
		return "record"
	}
	return "line"
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
	if s.keyB64, err = parseBytesFormat("key-format", c.String("key-format")); err != nil {
		return s, err
	}
	if s.valueB64, err = parseBytesFormat("value-format", c.String("value-format")); err != nil {
		return s, err
	}
	if c.IsSet("key") {
		s.key = []byte(c.String("key"))
		if s.keyB64 {
			if s.key, err = base64.StdEncoding.DecodeString(c.String("key")); err != nil {
				return s, fmt.Errorf("--key %q is not base64 (%v): give the key in standard base64, or drop --key-format base64", c.String("key"), err)
			}
		}
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
	if c.IsSet("delim") {
		d, err := unescape("delim", c.String("delim"))
		if err != nil {
			return s, err
		}
		if d == "" {
			return s, errors.New(`--delim "" is empty: give the text between records, e.g. --delim '\0' or --delim '\n---\n'`)
		}
		if d != "\n" {
			s.recDelim = []byte(d)
		}
	}
	if f := c.String("file"); f != "-" {
		s.file = f
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
	in, source := a.stdin, "stdin"
	if s.file != "" {
		f, err := os.Open(s.file)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("produce to %q: --file %q cannot be read (%v): give a readable file, or - for stdin", s.topic, s.file, err)
		}
		defer f.Close()
		in, source = f, s.file
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

	// Read the input on its own goroutine, so an interrupt is seen while a read blocks.
	lines := make(chan []byte, 256)
	stopRead := make(chan struct{})
	var readErr error
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
		if s.recDelim != nil {
			sc.Split(splitAt(s.recDelim))
		}
		for sc.Scan() {
			b := sc.Bytes()
			if s.recDelim == nil {
				b = bytes.TrimSuffix(b, []byte{'\r'})
			}
			select {
			case lines <- bytes.Clone(b):
			case <-stopRead:
				return
			}
		}
		readErr = sc.Err()
	}()

	fails := &produceFailures{w: a.stderr, topic: s.topic, unit: s.unit(), async: map[int]bool{}}
	type sent struct {
		r    *qxd.Record
		line int
	}
	var recs []sent // with --print-offsets, in input order
	var produceErr, inputErr error
	n, accepted := 0, 0 // records read, records taken by the producer
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
			line := n
			r, err := s.record(b)
			if err != nil {
				fails.add(line, err, false)
				continue
			}
			err = p.Produce(ctx, r, func(_ *qxd.Record, err error) {
				if err != nil {
					fails.add(line, err, true)
				}
			})
			switch {
			case err == nil:
			case ctx.Err() != nil:
				interrupted = true
				break read
			case errors.Is(err, semantics.ErrMessageTooLarge), errors.Is(err, semantics.ErrInvalidRecord):
				// This record only: say so, and go on with the next.
				fails.add(line, err, false)
				continue
			default:
				produceErr = fmt.Errorf("produce to %q: %s %d: %w", s.topic, s.unit(), line, err)
				break read
			}
			accepted++
			if s.print {
				recs = append(recs, sent{r, line})
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

	fails.mu.Lock()
	defer fails.mu.Unlock()
	if s.print {
		w := bufio.NewWriter(a.stdout)
		for _, r := range recs {
			if !fails.async[r.line] {
				fmt.Fprintf(w, "%d %d\n", r.r.Partition, r.r.Offset)
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	stored := accepted - len(fails.async)
	switch {
	case produceErr != nil:
		return fmt.Errorf("%w; stopped there, %d records before it stored", produceErr, stored)
	case interrupted && closeErr != nil:
		return fmt.Errorf("produce to %q: interrupted after %d %ss, and storing them failed: %w", s.topic, n, s.unit(), closeErr)
	case interrupted:
		return fmt.Errorf("produce to %q: interrupted after %d %ss; %d records stored", s.topic, n, s.unit(), stored)
	case inputErr != nil:
		if errors.Is(inputErr, bufio.ErrTooLong) {
			return fmt.Errorf("produce to %q: %s %d of %s is longer than %d MiB: split it or send it another way; stopped there, %d records before it stored",
				s.topic, s.unit(), n+1, source, maxLineBytes>>20, stored)
		}
		return fmt.Errorf("produce to %q: read %s after %s %d: %w; %d records stored", s.topic, source, s.unit(), n, inputErr, stored)
	case fails.count > 0:
		return fmt.Errorf("produce to %q: %d of %d records not stored, the first from %s %d: %w; %d stored",
			s.topic, fails.count, n, s.unit(), fails.firstLine, fails.firstErr, stored)
	case closeErr != nil:
		return fmt.Errorf("produce to %q: %w", s.topic, closeErr)
	}
	return nil
}

// record makes the record for one line (or --delim record) of input.
func (s *produceSettings) record(b []byte) (*qxd.Record, error) {
	r := &qxd.Record{Topic: s.topic, Key: s.key, Value: b, Headers: s.headers, Partition: s.partition}
	if s.delim != nil {
		if k, v, found := bytes.Cut(b, s.delim); found {
			r.Key, r.Value = k, v
			if s.keyB64 {
				var err error
				if r.Key, err = decodeBase64(k); err != nil {
					return nil, fmt.Errorf("the key is not base64 (%v): give keys in standard base64, or drop --key-format base64", err)
				}
			}
		}
	}
	if s.valueB64 {
		var err error
		if r.Value, err = decodeBase64(r.Value); err != nil {
			return nil, fmt.Errorf("the value is not base64 (%v): give values in standard base64, or drop --value-format base64", err)
		}
	}
	if s.nullEmpty && len(r.Value) == 0 {
		r.Value = nil
	}
	return r, nil
}

// decodeBase64 decodes standard base64 into a new slice (the decoder may not write
// over its input); line breaks in b are ignored.
func decodeBase64(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	return out[:n], err
}

// produceFailures counts the records produce could not store and names the first
// few on stderr. The producer calls add from its own goroutines.
type produceFailures struct {
	w           io.Writer
	topic, unit string

	mu        sync.Mutex
	count     int
	firstLine int
	firstErr  error
	async     map[int]bool // lines the producer took and then failed
}

func (f *produceFailures) add(line int, err error, async bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if async {
		f.async[line] = true
	}
	if f.firstErr == nil || line < f.firstLine {
		f.firstLine, f.firstErr = line, err
	}
	switch {
	case f.count <= maxFailuresShown:
		fmt.Fprintf(f.w, "qxd: produce to %q: %s %d not stored: %s\n", f.topic, f.unit, line, oneLine(err.Error()))
	case f.count == maxFailuresShown+1:
		fmt.Fprintf(f.w, "qxd: produce to %q: more records failed; only the first %d are named\n", f.topic, maxFailuresShown)
	}
}

// splitAt is a bufio.SplitFunc for records separated by delim. Input that ends with
// delim has no empty record after it, as bufio.ScanLines has no empty last line.
func splitAt(delim []byte) bufio.SplitFunc {
	searched := 0 // bytes of data already searched without finding delim
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if atEOF && len(data) == 0 {
			return 0, nil, nil
		}
		from := max(searched-len(delim)+1, 0)
		if i := bytes.Index(data[from:], delim); i >= 0 {
			searched = 0
			return from + i + len(delim), data[:from+i], nil
		}
		if atEOF {
			searched = 0
			return len(data), data, nil
		}
		searched = len(data)
		return 0, nil, nil
	}
}
