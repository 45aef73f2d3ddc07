package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"time"
)

// Chart sizes, in SVG user units.
const (
	chartW, chartH = 960, 360
	panelW         = 420
	panelH         = 260
	panelTop       = 60
	leftA, leftB   = 70, 550
)

var sideColor = map[string]string{"qxd": "#1f77b4", "qxd-txn": "#2ca02c", "raw": "#d62728", "raw-pull": "#ff7f0e"}

// WriteSVG draws r as an SVG image: records per second over time for each side on
// the left, the latency histogram (log scale) on the right.
func (r *Result) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	c := r.Config
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("qxd bench %s: %s records, %d partitions, replicas %d, acks %s, linger %v",
		c.Mode, SizeString(c.Size), c.Partitions, c.Replicas, c.Acks, c.Linger)
	if c.Rate > 0 {
		title += fmt.Sprintf(", %d/s", c.Rate)
	}
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", leftA-40, html.EscapeString(title))
	sides := []*Measure{r.Qxd, r.Txn, r.Raw, r.RawPull}
	r.throughputPanel(bw, sides)
	r.latencyPanel(bw, sides)
	// Legend.
	x := leftA
	for _, m := range sides {
		if m == nil {
			continue
		}
		fmt.Fprintf(bw, `<rect x="%d" y="36" width="12" height="12" fill="%s"/><text x="%d" y="46">%s: %.0f records/s, %.1f MB/s</text>`+"\n",
			x, sideColor[m.System], x+16, m.System, m.PerSec(), m.MBPerSec())
		x += 300
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

func (r *Result) throughputPanel(w io.Writer, sides []*Measure) {
	var maxRate float64
	var maxT time.Duration
	for _, m := range sides {
		if m == nil || m.Interval <= 0 {
			continue
		}
		for _, n := range m.Series {
			maxRate = math.Max(maxRate, float64(n)/m.Interval.Seconds())
		}
		maxT = max(maxT, time.Duration(len(m.Series))*m.Interval)
	}
	axes(w, leftA, "time (s)", "records/s", maxT.Seconds(), maxRate, false)
	if maxRate == 0 || maxT == 0 {
		return
	}
	for _, m := range sides {
		if m == nil || len(m.Series) == 0 {
			continue
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, sideColor[m.System])
		for i, n := range m.Series {
			t := (time.Duration(i) + 1) * m.Interval
			x := leftA + float64(panelW)*t.Seconds()/maxT.Seconds()
			y := panelTop + panelH - float64(panelH)*(float64(n)/m.Interval.Seconds())/maxRate
			fmt.Fprintf(w, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintln(w, `"/>`)
	}
}

func (r *Result) latencyPanel(w io.Writer, sides []*Measure) {
	const nb = 60
	var lo, hi time.Duration
	for _, m := range sides {
		if m == nil || m.Latency == nil || m.Latency.Count() == 0 {
			continue
		}
		bs := m.Latency.Buckets(nb)
		if lo == 0 || bs[0].Lo < lo {
			lo = bs[0].Lo
		}
		hi = max(hi, bs[len(bs)-1].Hi)
	}
	if hi == 0 {
		axes(w, leftB, "latency (ms, log scale)", "share of records", 1, 1, true)
		fmt.Fprintf(w, `<text x="%d" y="%d">no per-record latency in %s mode</text>`+"\n", leftB+100, panelTop+panelH/2, r.Config.Mode)
		return
	}
	lo = max(lo, time.Microsecond)
	llo, lhi := math.Log10(ms(lo)), math.Log10(ms(hi))
	if lhi-llo < 1 {
		lhi = llo + 1
	}
	type bar struct {
		x0, x1, share float64
	}
	var maxShare float64
	bars := map[string][]bar{}
	for _, m := range sides {
		if m == nil || m.Latency == nil || m.Latency.Count() == 0 {
			continue
		}
		total := float64(m.Latency.Count())
		for _, b := range m.Latency.Buckets(nb) {
			if b.Count == 0 {
				continue
			}
			s := float64(b.Count) / total
			maxShare = math.Max(maxShare, s)
			x0 := (math.Log10(ms(max(b.Lo, lo))) - llo) / (lhi - llo)
			x1 := (math.Log10(ms(max(b.Hi, lo))) - llo) / (lhi - llo)
			bars[m.System] = append(bars[m.System], bar{x0, x1, s})
		}
	}
	axes(w, leftB, "latency (ms, log scale)", "share of records", 0, maxShare, true)
	// Decade ticks on the log axis.
	for d := math.Ceil(llo); d <= lhi; d++ {
		x := leftB + float64(panelW)*(d-llo)/(lhi-llo)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/><text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n",
			x, panelTop, x, panelTop+panelH, x, panelTop+panelH+16, math.Pow(10, d))
	}
	for _, m := range sides {
		if m == nil || m.Latency == nil || m.Latency.Count() == 0 {
			continue
		}
		for _, b := range bars[m.System] {
			x := leftB + float64(panelW)*b.x0
			wd := math.Max(float64(panelW)*(b.x1-b.x0), 1)
			h := float64(panelH) * b.share / maxShare
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.5"/>`+"\n",
				x, panelTop+panelH-h, wd, h, sideColor[m.System])
		}
		l := m.Latency.Summary()
		for _, q := range []struct {
			name string
			v    float64
		}{{"p50", l.P50}, {"p99", l.P99}, {"p99.9", l.P999}} {
			if q.v <= 0 {
				continue
			}
			x := leftB + float64(panelW)*(math.Log10(q.v)-llo)/(lhi-llo)
			if x < leftB || x > leftB+panelW {
				continue
			}
			fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="3,3"/><text x="%.1f" y="%d" fill="%s" font-size="10">%s</text>`+"\n",
				x, panelTop, x, panelTop+panelH, sideColor[m.System], x+2, panelTop+10, sideColor[m.System], q.name)
		}
	}
}

// axes draws a panel's frame, labels and, unless logX, linear ticks on both axes.
func axes(w io.Writer, left int, xlabel, ylabel string, maxX, maxY float64, logX bool) {
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, panelTop, panelW, panelH)
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", left+panelW/2, panelTop+panelH+34, xlabel)
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">%s</text>`+"\n",
		left-52, panelTop+panelH/2, left-52, panelTop+panelH/2, ylabel)
	for i := 0; i <= 4; i++ {
		y := panelTop + panelH - panelH*i/4
		v := maxY * float64(i) / 4
		label := fmt.Sprintf("%.0f", v)
		if maxY < 10 {
			label = fmt.Sprintf("%.2f", v)
		} else if v >= 1e6 {
			label = fmt.Sprintf("%.1fM", v/1e6)
		} else if v >= 1e3 {
			label = fmt.Sprintf("%.0fk", v/1e3)
		}
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eee"/><text x="%d" y="%d" text-anchor="end">%s</text>`+"\n",
			left, y, left+panelW, y, left-4, y+4, label)
		if !logX && maxX > 0 {
			x := left + panelW*i/4
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">%.1f</text>`+"\n", x, panelTop+panelH+16, maxX*float64(i)/4)
		}
	}
}
