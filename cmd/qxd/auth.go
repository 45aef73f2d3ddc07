package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/server"
)

// authFlags are the global flags that say how clients authenticate and use TLS.
func authFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "user", EnvVars: []string{"QXD_USER"}, Usage: "authenticate as `USER` (with --password)"},
		&cli.StringFlag{Name: "password", EnvVars: []string{"QXD_PASSWORD"}, Usage: "`PASSWORD` of --user"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"QXD_TOKEN"}, Usage: "authenticate with `TOKEN`"},
		&cli.StringFlag{Name: "creds", EnvVars: []string{"QXD_CREDS"}, Usage: "authenticate with a NATS credentials `FILE` (.creds with a user JWT, or a user nkey seed)"},
		&cli.StringFlag{Name: "tls-ca", EnvVars: []string{"QXD_TLS_CA"}, Usage: "connect over TLS, trusting the authority in PEM `FILE`"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"QXD_TLS_CERT"}, Usage: "client certificate PEM `FILE`, for nodes that require mutual TLS"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{"QXD_TLS_KEY"}, Usage: "private key PEM `FILE` of --tls-cert"},
	}
}

// authOptions are the client options of the global auth and TLS flags.
func authOptions(c *cli.Context) []qxd.ClientOption {
	var opts []qxd.ClientOption
	if u, p := c.String("user"), c.String("password"); u != "" || p != "" {
		opts = append(opts, qxd.WithUserInfo(u, p))
	}
	if t := c.String("token"); t != "" {
		opts = append(opts, qxd.WithToken(t))
	}
	if f := c.String("creds"); f != "" {
		opts = append(opts, qxd.WithCredsFile(f))
	}
	if ca, cert, key := c.String("tls-ca"), c.String("tls-cert"), c.String("tls-key"); ca != "" || cert != "" || key != "" {
		opts = append(opts, qxd.WithTLS(ca, cert, key))
	}
	return opts
}

// serverConfigFlags are the server command's flags for the config file and TLS.
func serverConfigFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"QXD_CONFIG"},
			Usage: "read the node's configuration from `FILE` (see docs/security.md); flags override it"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"QXD_SERVER_TLS_CERT"}, Usage: "serve clients over TLS with the certificate in PEM `FILE`"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{"QXD_SERVER_TLS_KEY"}, Usage: "private key PEM `FILE` of --tls-cert"},
		&cli.StringFlag{Name: "tls-ca", EnvVars: []string{"QXD_SERVER_TLS_CA"}, Usage: "authority PEM `FILE` whose client certificates the node trusts"},
		&cli.BoolFlag{Name: "tls-verify", EnvVars: []string{"QXD_SERVER_TLS_VERIFY"}, Usage: "require client certificates signed by --tls-ca (mutual TLS)"},
	}
}

// serverConfig builds the node's configuration: the defaults, then the file of
// --config, then every flag given on the command line or in the environment. Without
// a file, the flags' defaults apply.
func serverConfig(c *cli.Context) (server.Config, error) {
	cfg := server.DefaultConfig()
	cfg.KafkaListen = defaultKafkaListen // qxd server's default; an embedded node has none
	file := c.String("config")
	if file != "" {
		var err error
		if cfg, err = server.LoadConfigFile(file, cfg); err != nil {
			return cfg, err
		}
	}
	set := func(name string) bool { return file == "" || c.IsSet(name) }
	str := func(name string, dst *string) {
		if set(name) {
			*dst = c.String(name)
		}
	}
	str("listen", &cfg.Listen)
	str("data", &cfg.DataDir)
	str("name", &cfg.Name)
	str("cluster-name", &cfg.ClusterName)
	str("cluster-listen", &cfg.ClusterListen)
	if set("peers") {
		cfg.Peers = nil
		for _, p := range strings.Split(c.String("peers"), ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.Peers = append(cfg.Peers, p)
			}
		}
	}
	if c.IsSet("tls-cert") {
		cfg.TLS.Cert = c.String("tls-cert")
	}
	if c.IsSet("tls-key") {
		cfg.TLS.Key = c.String("tls-key")
	}
	if c.IsSet("tls-ca") {
		cfg.TLS.CA = c.String("tls-ca")
	}
	if c.IsSet("tls-verify") {
		cfg.TLS.Verify = c.Bool("tls-verify")
	}
	return cfg, nil
}

func (a *app) passwdCommand() *cli.Command {
	return &cli.Command{
		Name:  "passwd",
		Usage: "print the bcrypt hash or SCRAM credential of a password, for a user in the server's config file",
		Description: "Reads a password from the first line of standard input (or --password) and\n" +
			"prints its bcrypt hash, to put in the config file's auth.users[].password. With\n" +
			"--mechanism SCRAM-SHA-256 or SCRAM-SHA-512 it prints the user's salted SCRAM\n" +
			"credential instead, in Kafka's stored form, for auth.users[].scram_sha_256 or\n" +
			"scram_sha_512: what Kafka clients authenticating with SCRAM are checked against.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "cost", Value: 11, Usage: "bcrypt `COST` (4 to 31); each step doubles the work"},
			&cli.StringFlag{Name: "mechanism", Value: "bcrypt", Usage: "`MECHANISM`: bcrypt, SCRAM-SHA-256 or SCRAM-SHA-512"},
			&cli.IntFlag{Name: "iterations", Value: kafka.DefaultSCRAMIterations,
				Usage: fmt.Sprintf("SCRAM `ITERATIONS` (%d to %d)", kafka.MinSCRAMIterations, kafka.MaxSCRAMIterations)},
		},
		Action: func(c *cli.Context) error {
			mech := strings.ToUpper(c.String("mechanism"))
			if mech != "BCRYPT" && mech != kafka.MechSCRAMSHA256 && mech != kafka.MechSCRAMSHA512 {
				return fmt.Errorf("passwd: --mechanism %q is not bcrypt, %s or %s", c.String("mechanism"), kafka.MechSCRAMSHA256, kafka.MechSCRAMSHA512)
			}
			pw := c.String("password")
			if pw == "" {
				line, err := bufio.NewReader(a.stdin).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("passwd: give the password on standard input (echo -n secret | qxd passwd) or with --password")
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if pw == "" {
				return errors.New("passwd: the password is empty")
			}
			start := time.Now()
			if mech != "BCRYPT" {
				cred, err := kafka.NewSCRAMCredential(mech, pw, c.Int("iterations"))
				if err != nil {
					return fmt.Errorf("passwd: %w", err)
				}
				fmt.Fprintln(a.stdout, cred.String())
				return nil
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), c.Int("cost"))
			if err != nil {
				return fmt.Errorf("passwd: %w", err)
			}
			a.log.Debug("password hashed", "took", time.Since(start))
			fmt.Fprintln(a.stdout, string(h))
			return nil
		},
	}
}
