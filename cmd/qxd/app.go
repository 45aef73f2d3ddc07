package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qxd-io/qxd"
)

// Defaults of the global flags.
const (
	defaultServer         = "nats://127.0.0.1:4222"
	defaultLogLevel       = "info"
	defaultConnectTimeout = 5 * time.Second
)

// waitNotice is how long a command waits in silence before it says on stderr
// what it is waiting for.
const waitNotice = 2 * time.Second

// app holds what every command writes to and logs with. Nothing in this package
// touches os.Stdin, os.Stdout or os.Stderr: run's callers choose them.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// run runs the qxd command line args (args[0] is the program name) until it is done
// or ctx ends.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler)}
	c := a.cli()
	if len(args) > 1 && args[1] == completeCommand {
		complete(a.stdout, c, args[2:])
		return nil
	}
	return c.RunContext(ctx, reorderArgs(c, args))
}

func (a *app) cli() *cli.App {
	c := &cli.App{
		Name:  "qxd",
		Usage: "Kafka's topics, partitions, offsets and consumer groups on NATS JetStream",
		Description: "qxd runs a node ('qxd server') and manages its topics and consumer groups.\n" +
			"A flag shown with a QXD_* environment variable also reads it: the global flags\n" +
			"read QXD_<FLAG>, a command's own flags QXD_<COMMAND>_<FLAG>, so that a variable\n" +
			"set for one command changes no other. Flags that pick what a command changes\n" +
			"(add-partitions --num, group seek's targets, consume --group, produce's key and\n" +
			"partition) come from the command line only. Flags may come before or after a\n" +
			"command's arguments.",
		Reader:                    a.stdin,
		Writer:                    a.stdout,
		ErrWriter:                 a.stderr,
		HideVersion:               true,
		DisableSliceFlagSeparator: true, // header values may hold commas
		ExitErrHandler:            func(*cli.Context, error) {},
		Flags: append([]cli.Flag{
			&cli.StringFlag{
				Name: "server", Aliases: []string{"s"}, Value: defaultServer, EnvVars: []string{"QXD_SERVER"},
				Usage: "NATS URL of a qxd node; a comma-separated list to fail over between nodes",
			},
			&cli.StringFlag{
				Name: "log-level", Value: defaultLogLevel, EnvVars: []string{"QXD_LOG_LEVEL"},
				Usage: "log to stderr at `LEVEL`: debug, info, warn or error",
			},
			&cli.StringFlag{
				Name: "log-format", Value: "text", EnvVars: []string{"QXD_LOG_FORMAT"},
				Usage: "write logs as `FORMAT`: text (key=value) or json (one object a line)",
			},
			&cli.DurationFlag{
				Name: "connect-timeout", Value: defaultConnectTimeout, EnvVars: []string{"QXD_CONNECT_TIMEOUT"},
				Usage: "give up when no qxd node answers within `DURATION`",
			},
			&cli.BoolFlag{Name: "version", Usage: "print the version and exit (as 'qxd version')"},
		}, authFlags()...),
		Before: a.setup,
		Action: a.rootAction,
		Commands: []*cli.Command{
			a.serverCommand(),
			a.topicCommand(),
			a.groupCommand(),
			a.txnCommand(),
			a.clusterCommand(),
			a.passwdCommand(),
			a.bridgeCommand(),
			a.benchCommand(),
			a.versionCommand(),
			a.completionCommand(),
		},
	}
	// urfave/cli's own help flag and help command are package globals that every
	// run writes to; runs in one process (the tests) would race on them. Each app
	// gets its own --help flag instead, which cli still honours.
	c.HideHelp = true
	c.Flags = append(c.Flags, helpFlag())
	c.OnUsageError = usageError
	c.CustomAppHelpTemplate = cli.AppHelpTemplate + templateLiteral(examplesText(c.Name))
	for _, cmd := range c.Commands {
		setupCommand(cmd, c.Name)
	}
	return c
}

func helpFlag() cli.Flag {
	return &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help"}
}

// setupCommand gives cmd, under the command path parent, and its subcommands
// their own help flag with their examples, and the app's usage errors.
func setupCommand(cmd *cli.Command, parent string) {
	path := parent + " " + cmd.Name
	cmd.HideHelp, cmd.HideHelpCommand = true, true
	cmd.Flags = append(cmd.Flags, helpFlag())
	cmd.OnUsageError = usageError
	cmd.CustomHelpTemplate = helpTemplate(cmd, path)
	for _, sub := range cmd.Subcommands {
		setupCommand(sub, path)
	}
}

// setup applies the global flags.
func (a *app) setup(c *cli.Context) error {
	var level slog.Level
	switch s := strings.ToLower(c.String("log-level")); s {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return fmt.Errorf("log level %q is not valid: use debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f := strings.ToLower(c.String("log-format")); f {
	case "text":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return fmt.Errorf("log format %q is not valid: use text or json", c.String("log-format"))
	}
	warnRetiredEnv(a.stderr, c.App)
	return nil
}

// connect opens a client to the nodes named by --server and checks that a qxd
// node answers there, within --connect-timeout. A wait past waitNotice is said
// on stderr.
func (a *app) connect(c *cli.Context) (*qxd.Client, error) {
	servers := c.String("server")
	timeout := c.Duration("connect-timeout")
	if timeout <= 0 {
		return nil, fmt.Errorf("--connect-timeout %s is not valid: give a positive duration such as 5s", timeout)
	}
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	defer a.sayAfter(waitNotice, fmt.Sprintf("qxd: waiting for a qxd node at %s (up to %s, --connect-timeout)\n", servers, timeout))()
	cl, err := qxd.Connect(ctx, servers, append([]qxd.ClientOption{qxd.WithName("qxd-cli"), qxd.WithLogger(a.log)}, authOptions(c)...)...)
	if err != nil {
		if ctx.Err() != nil && c.Context.Err() == nil {
			return nil, fmt.Errorf("connect to %s: no NATS server accepted the connection within %s (--connect-timeout): check the address and that a qxd node runs there; to use another node, set --server or QXD_SERVER", servers, timeout)
		}
		return nil, fmt.Errorf("%w; to use another node, set --server or QXD_SERVER", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		if c.Context.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w; check that --server (QXD_SERVER) names a qxd node ('qxd server') and, for a cluster, that a majority of its nodes are up", err)
	}
	return cl, nil
}

// sayAfter writes msg to stderr once d has passed, unless the returned function
// is called first.
func (a *app) sayAfter(d time.Duration, msg string) (cancel func()) {
	t := time.AfterFunc(d, func() { fmt.Fprint(a.stderr, msg) })
	return func() { t.Stop() }
}

// rootAction runs "qxd" without a command: it shows the help, or the version
// with --version.
func (a *app) rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return unknownCommand(c, c.App.Name, c.App.Commands)
	}
	if c.Bool("version") {
		a.printVersion()
		return nil
	}
	return cli.ShowAppHelp(c)
}

// unknownCommand is the error for the unknown command c.Args().First() under
// path, whose commands are cmds, with the nearest command when one is close.
func unknownCommand(c *cli.Context, path string, cmds []*cli.Command) error {
	name := c.Args().First()
	if hint := didYouMean(c.App, path, cmds, name); hint != "" {
		return fmt.Errorf("unknown command %q (%s): run '%s --help' to list the commands", name, hint, path)
	}
	return fmt.Errorf("unknown command %q: run '%s --help' to list the commands", name, path)
}

// groupAction runs a command that only groups others, such as "qxd topic": without
// arguments it shows the help, with an unknown command it says so.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		return unknownCommand(c, c.Command.HelpName, c.Command.Subcommands)
	}
	return cli.ShowSubcommandHelp(c)
}

func usageError(c *cli.Context, err error, _ bool) error {
	name := c.App.Name
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	if hint := flagSuggestion(c, err); hint != "" {
		return fmt.Errorf("%w (%s): run '%s --help' for usage", err, hint, name)
	}
	return fmt.Errorf("%w: run '%s --help' for usage", err, name)
}

// reorderArgs lets flags follow a command's arguments, as in
// "qxd topic create orders --partitions 3 --server nats://h:4222", which
// urfave/cli v2 alone would read as three more arguments. It returns the program
// name, the global flags, the command path, the command's flags, and the
// arguments, in that order. Values of non-boolean flags stay with their flag;
// everything after "--" is an argument.
func reorderArgs(c *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	var globals, path, flags, positional []string
	cmds := c.Commands
	var local []cli.Flag
	rest := args[1:]
	terminated := false
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if tok == "--" {
			positional = append(positional, rest[i+1:]...)
			terminated = true
			break
		}
		if len(tok) > 1 && tok[0] == '-' {
			body := strings.TrimLeft(tok, "-")
			prefix := tok[:len(tok)-len(body)]
			name, value, hasValue := strings.Cut(body, "=")
			dst := &flags
			f := findFlag(local, name)
			if f == nil {
				if f = findFlag(c.Flags, name); f != nil {
					dst = &globals
				}
			}
			if f != nil {
				// Use the flag's first name: urfave/cli refuses a slice flag given
				// under two names ("--header a=1 -H b=2").
				tok = prefix + f.Names()[0]
				if hasValue {
					tok += "=" + value
				}
			}
			*dst = append(*dst, tok)
			if f != nil && !hasValue && takesValue(f) && i+1 < len(rest) {
				i++
				*dst = append(*dst, rest[i])
			}
			continue
		}
		if len(positional) == 0 {
			if cmd := findCommand(cmds, tok); cmd != nil {
				path = append(path, tok)
				cmds, local = cmd.Subcommands, cmd.Flags
				continue
			}
		}
		positional = append(positional, tok)
	}
	out := append([]string{args[0]}, globals...)
	out = append(out, path...)
	out = append(out, flags...)
	if terminated || slices.ContainsFunc(positional, func(s string) bool { return strings.HasPrefix(s, "-") }) {
		out = append(out, "--")
	}
	return append(out, positional...)
}

func findFlag(fs []cli.Flag, name string) cli.Flag {
	for _, f := range fs {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// oneArg returns the command's single argument, named what in errors.
func oneArg(c *cli.Context, what string) (string, error) {
	cmd := strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
	switch n := c.NArg(); {
	case n == 0:
		return "", fmt.Errorf("%s needs the %s: %s %s", cmd, what, c.Command.HelpName, c.Command.ArgsUsage)
	case n > 1:
		return "", fmt.Errorf("%s takes one %s, got %d arguments: %s", cmd, what, n, strings.Join(c.Args().Slice(), " "))
	}
	return c.Args().First(), nil
}

// named starts a command on one named thing: its single argument (named what in
// errors) and a client. The caller closes the client.
func (a *app) named(c *cli.Context, what string) (string, *qxd.Client, error) {
	name, err := oneArg(c, what)
	if err != nil {
		return "", nil, err
	}
	cl, err := a.connect(c)
	if err != nil {
		return "", nil, err
	}
	return name, cl, nil
}
