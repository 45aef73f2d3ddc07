package qxdprom_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/qxdprom"
)

// value returns the value of the counter called name with the given label value
// (any labels when label is empty), summed.
func value(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestMetrics registers a client's metrics, produces and consumes through a real
// node, and reads the counts back from the registry.
func TestMetrics(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	m := qxdprom.New("app")
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	c, err := qxd.Connect(ctx, n.ClientURL(), qxd.Hooks(m))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qxdtest.CreateTopic(t, c, "prom", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "prom", Value: []byte("value")}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "prom", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 5; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(rs)
	}
	for _, want := range []struct {
		name, label string
		min         float64
	}{
		{"app_qxd_connects_total", "", 1},
		{"app_qxd_produce_batches_total", "prom", 5},
		{"app_qxd_produce_records_total", "prom", 5},
		{"app_qxd_produce_bytes_total", "prom", 5},
		{"app_qxd_produce_latency_seconds", "prom", 5},
		{"app_qxd_fetch_records_total", "prom", 5},
		{"app_qxd_fetch_batches_total", "prom", 1},
		{"app_qxd_fetch_bytes_total", "prom", 5},
	} {
		if got := value(t, reg, want.name, want.label); got < want.min {
			t.Errorf("%s{%s} = %v, want at least %v", want.name, want.label, got, want.min)
		}
	}
	if got := value(t, reg, "app_qxd_produce_records_total", "prom"); got != 5 {
		t.Errorf("produce_records_total = %v, want 5", got)
	}
}
