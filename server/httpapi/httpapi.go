// Package httpapi is a qxd node's HTTP port: Prometheus metrics at /metrics, the
// probes /healthz (the process is alive) and /readyz (the node serves clients),
// and a web console at / over a small JSON API under /api/. It is a server.Service the embedder adds (qxd server does, on
// --http-listen) and reaches the node only through its server.Host.
package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/server"
)

// DefaultListen is the HTTP port's address unless the embedder sets another.
const DefaultListen = "127.0.0.1:9644"

// Service serves a node's HTTP port: add it to server.Config.Services. On a node
// with users it authenticates every request but the probes against them (see
// auth.go).
type Service struct {
	// Listen is the address to serve on, HOST:PORT; port 0 picks a free port.
	Listen string
	// TLS serves HTTPS with these keys (with Verify, clients must present a
	// certificate signed by its CA). Zero: plain HTTP.
	TLS server.TLSConfig
	// MaxPartitionSeries is how many partitions, and how many group partitions,
	// get metric series of their own; the rest share series labelled "(other)".
	// 0: DefaultMaxPartitionSeries.
	MaxPartitionSeries int
}

var _ server.Service = Service{}

// ForConfig is the HTTP port of a node configured with cfg: on cfg.HTTPListen,
// with TLS when cfg.HTTPTLS is set, or else when the node's client port has TLS,
// with the same keys.
func ForConfig(cfg server.Config) Service {
	s := Service{Listen: cfg.HTTPListen, TLS: cfg.HTTPTLS, MaxPartitionSeries: cfg.HTTPMaxPartitionSeries}
	if !s.TLS.Enabled() {
		s.TLS = cfg.TLS
	}
	return s
}

// Start listens on s.Listen and serves the node's metrics and probes until Close.
func (s Service) Start(ctx context.Context, h server.Host) (server.Running, error) {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		return nil, server.Permanent(fmt.Errorf("http listen address %q is not HOST:PORT: %v", s.Listen, err))
	}
	var tc *tls.Config
	if s.TLS.Enabled() {
		var err error
		if tc, err = s.TLS.ServerTLS("http tls"); err != nil {
			return nil, server.Permanent(err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Listen)
	if err != nil {
		return nil, server.Permanent(fmt.Errorf("http listen on %s: %w (set --http-listen to a free HOST:PORT, or to \"\" to serve no HTTP)", s.Listen, err))
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	if s.MaxPartitionSeries < 0 {
		return nil, server.Permanent(fmt.Errorf("http port: max partition series %d is negative: give 0 (the default, %d) or more", s.MaxPartitionSeries, DefaultMaxPartitionSeries))
	}
	if s.MaxPartitionSeries == 0 {
		s.MaxPartitionSeries = DefaultMaxPartitionSeries
	}
	m := newMetrics(h, s.MaxPartitionSeries)
	adv := newAdvisories()
	if err := adv.start(h.Conn()); err != nil {
		ln.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, adv, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cl, err := qxd.NewClient(h.Conn(), qxd.WithLogger(h.Logger()))
	if err != nil {
		ln.Close()
		adv.stop()
		return nil, fmt.Errorf("http port: console client: %w", err)
	}
	m.bridges = cl.Admin()
	r := &running{h: h, log: h.Logger(), ln: ln, metrics: m, adv: adv, unobserve: h.Observe(m), done: make(chan struct{})}
	// The probes answer anyone; the rest authenticates on a node with users.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", r.healthz)
	mux.HandleFunc("GET /readyz", r.readyz)
	inner := http.NewServeMux()
	(&api{r: r, cl: cl}).routes(inner)
	inner.Handle("/", consoleHandler())
	inner.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(h.Logger().Handler(), slog.LevelWarn), Registry: reg, Timeout: scrapeTimeout,
	}))
	mux.Handle("/", (&authn{h: h, tls: tc != nil}).wrap(inner))
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(h.Logger().Handler(), slog.LevelDebug)}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("http port stopped", "err", err)
		}
	}()
	r.cl = cl
	r.log.Info("http port serving metrics, probes and console", "addr", ln.Addr().String(),
		"tls", tc != nil, "auth", h.AuthEnabled())
	return r, nil
}

// scrapeTimeout bounds one scrape of /metrics.
const scrapeTimeout = 20 * time.Second

// running is a node's HTTP port.
type running struct {
	h         server.Host
	log       *slog.Logger
	ln        net.Listener
	srv       *http.Server
	metrics   *metrics
	adv       *advisories
	unobserve func()
	cl        *qxd.Client // the console's client, over the node's connection
	done      chan struct{}
}

// Close stops serving; requests under way get until ctx ends.
func (r *running) Close(ctx context.Context) {
	r.unobserve()
	r.adv.stop()
	if err := r.srv.Shutdown(ctx); err != nil {
		_ = r.srv.Close()
	}
	<-r.done
	r.cl.Close()
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Node   string `json:"node"`
	Status string `json:"status"` // "ok", or "not ready"
	// NotReady says what keeps the node from serving clients (/readyz only).
	NotReady []string `json:"not_ready,omitempty"`
}

// healthz answers 200 while the process serves HTTP at all: a liveness probe.
func (r *running) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Health{Node: r.h.Name(), Status: "ok"})
}

// readyz answers 200 when the node serves clients (JetStream current with a meta
// leader, partition writers started), else 503 with what is not ready.
func (r *running) readyz(w http.ResponseWriter, _ *http.Request) {
	if not := r.h.Ready(); len(not) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, Health{Node: r.h.Name(), Status: "not ready", NotReady: not})
		return
	}
	writeJSON(w, http.StatusOK, Health{Node: r.h.Name(), Status: "ok"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
