package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

func (a *app) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print qxd's version, commit and Go and nats-server versions (also: qxd --version)",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("version takes no arguments, got %q", c.Args().Slice())
			}
			a.printVersion()
			return nil
		},
	}
}

func (a *app) printVersion() {
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprint(a.stdout, versionText(bi))
}

// versionText describes the build bi (nil when the binary has no build
// information) in two lines: qxd's module version with the commit and time it was
// built from, then the Go toolchain, platform and embedded nats-server version.
// A binary built from a checkout says "(devel)", and "-dirty" after the commit
// when the tree had changes.
func versionText(bi *debug.BuildInfo) string {
	version, goVersion, natsServer := "(unknown)", runtime.Version(), ""
	var rev, at string
	var dirty bool
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats-server/v2" {
				natsServer = d.Version
				if d.Replace != nil {
					natsServer = d.Replace.Version
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "qxd %s", version)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		fmt.Fprintf(&b, " (commit %s", rev)
		if at != "" {
			fmt.Fprintf(&b, ", %s", at)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "\n%s %s/%s", goVersion, runtime.GOOS, runtime.GOARCH)
	if natsServer != "" {
		fmt.Fprintf(&b, ", nats-server %s", natsServer)
	}
	b.WriteString("\n")
	return b.String()
}
