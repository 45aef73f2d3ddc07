package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TLSConfig turns on TLS for client connections (Config.TLS) or for the routes
// between the nodes of a cluster (Config.ClusterTLS). The zero value is plain text.
type TLSConfig struct {
	// Cert and Key are the node's certificate and private key (PEM files).
	Cert string
	Key  string
	// CA is the PEM file of the certificate authorities whose client certificates
	// (and, for routes, peer certificates) the node trusts. Default: the system's.
	CA string
	// Verify requires clients to present a certificate signed by CA (mutual TLS).
	// Routes always verify their peers.
	Verify bool
	// Timeout bounds the TLS handshake. Default 2s.
	Timeout time.Duration
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" || t.Verify }

// validate checks that the files are given together and readable; what names the
// section in messages ("tls", "cluster tls").
func (t TLSConfig) validate(what string) error {
	if !t.Enabled() {
		return nil
	}
	if t.Cert == "" || t.Key == "" {
		return fmt.Errorf("%s: both a certificate and a key are needed (cert %q, key %q)", what, t.Cert, t.Key)
	}
	if t.Verify && t.CA == "" {
		return fmt.Errorf("%s: verify needs the CA that signs client certificates: set ca", what)
	}
	for _, f := range []string{t.Cert, t.Key, t.CA} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if t.Timeout < 0 {
		return fmt.Errorf("%s: timeout %v must not be negative", what, t.Timeout)
	}
	return nil
}

// build makes the server side tls.Config; routes set verify, since a route is
// both a server and a client and each side must prove who it is.
func (t TLSConfig) build(what string, verify bool) (*tls.Config, float64, error) {
	cfg, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{
		CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: verify,
	})
	if err == nil && cfg == nil {
		err = errors.New("no configuration")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w (check cert %s, key %s, ca %s)", what, err, t.Cert, t.Key, t.CA)
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	return cfg, timeout.Seconds(), nil
}

// ServerTLS builds the TLS configuration of a server with t's keys, as the node's
// client port uses them: with Verify, clients must present a certificate signed
// by CA. what names the section in errors ("http tls").
func (t TLSConfig) ServerTLS(what string) (*tls.Config, error) {
	if err := t.validate(what); err != nil {
		return nil, err
	}
	cfg, _, err := t.build(what, t.Verify)
	return cfg, err
}

// applyTLS sets the client and route TLS options of the embedded server.
func applyTLS(cfg Config, opts *natsserver.Options) error {
	if cfg.TLS.Enabled() {
		tc, timeout, err := cfg.TLS.build("tls", cfg.TLS.Verify)
		if err != nil {
			return err
		}
		opts.TLS = true
		opts.TLSConfig = tc
		opts.TLSVerify = cfg.TLS.Verify
		opts.TLSTimeout = timeout
		opts.TLSCert, opts.TLSKey, opts.TLSCaCert = cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA
	}
	if cfg.ClusterTLS.Enabled() && cfg.clustered() {
		if cfg.ClusterTLS.CA == "" {
			return errors.New("cluster tls: set ca, the authority that signs every node's certificate: nodes verify each other")
		}
		tc, timeout, err := cfg.ClusterTLS.build("cluster tls", true)
		if err != nil {
			return err
		}
		// A route is a client of its peer too: trust the same CA both ways.
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.RootCAs = tc.ClientCAs
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = timeout
	}
	return nil
}
