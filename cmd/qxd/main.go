// Command qxd runs a qxd node and manages its topics and consumer groups: create,
// list, describe and delete topics, produce records from stdin and consume them to
// stdout (alone or as a group member), and list, describe, seek and delete groups.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "qxd: %s\n", oneLine(err.Error()))
		os.Exit(1)
	}
}

// oneLine folds a multi-line error text into one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}
