package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// didYouMean returns ` (did you mean "x"?)`-style advice for the unknown command
// name under the command path (e.g. "qxd topic"), or "" when nothing is close:
// a command of cmds a few edits away, or a command of that exact name elsewhere
// in the tree ("qxd consume" for "qxd topic consume").
func didYouMean(app *cli.App, path string, cmds []*cli.Command, name string) string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	if best := closest(name, names); best != "" {
		return fmt.Sprintf("did you mean '%s %s'?", path, best)
	}
	var elsewhere []string
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := prefix + " " + c.Name
			if c.HasName(name) && !c.Hidden {
				elsewhere = append(elsewhere, "'"+p+"'")
			}
			walk(p, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)
	if len(elsewhere) > 0 {
		return "did you mean " + strings.Join(elsewhere, " or ") + "?"
	}
	return ""
}

// closest returns the candidate nearest to s: within a third of s's length in
// edits (at least one, at most three), or one that s is a prefix of; "" if none.
// Ties go to the first candidate.
func closest(s string, candidates []string) string {
	best, bestD := "", min(3, max(1, len(s)/3))+1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" && len(s) >= 2 {
		for _, c := range candidates {
			if strings.HasPrefix(c, s) {
				return c
			}
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance of a and b (optimal string
// alignment: insertions, deletions, substitutions and swaps of neighbours).
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// flagSuggestion returns advice for an undefined flag error of urfave/cli
// ("flag provided but not defined: -partiton"), naming the closest flag of the
// command or the global flags; "" otherwise.
func flagSuggestion(c *cli.Context, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return ""
	}
	name = strings.TrimLeft(name, "-")
	var names []string
	var flags []cli.Flag
	if c.Command != nil {
		flags = append(flags, c.Command.Flags...)
	}
	flags = append(flags, c.App.Flags...)
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) > 1 && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if best := closest(name, names); best != "" {
		return fmt.Sprintf("did you mean --%s?", best)
	}
	return ""
}
