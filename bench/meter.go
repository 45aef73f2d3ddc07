package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// meter counts records and bytes as a side moves them, samples the count every
// Interval into a series and reports progress about once a second.
type meter struct {
	records, bytes atomic.Int64
	interval       time.Duration
	progress       func(Progress)
	base           Progress

	mu     sync.Mutex
	series []int64
	done   chan struct{}
	wg     sync.WaitGroup
}

func startMeter(c Config, system, phase string) *meter {
	m := &meter{interval: c.Interval, progress: c.Progress, done: make(chan struct{}),
		base: Progress{Mode: c.Mode, System: system, Phase: phase}}
	m.wg.Add(1)
	go m.run()
	return m
}

func (m *meter) add(records, bytes int64) {
	if m == nil {
		return
	}
	m.records.Add(records)
	m.bytes.Add(bytes)
}

func (m *meter) run() {
	defer m.wg.Done()
	start := time.Now()
	t := time.NewTicker(m.interval)
	defer t.Stop()
	var last, lastRep, lastRepBytes int64
	lastRepAt := start
	for {
		select {
		case <-m.done:
			m.mu.Lock()
			m.series = append(m.series, m.records.Load()-last)
			m.mu.Unlock()
			return
		case now := <-t.C:
			n := m.records.Load()
			m.mu.Lock()
			m.series = append(m.series, n-last)
			m.mu.Unlock()
			last = n
			if m.progress != nil && now.Sub(lastRepAt) >= time.Second {
				b := m.bytes.Load()
				secs := now.Sub(lastRepAt).Seconds()
				p := m.base
				p.Records, p.Elapsed = n, now.Sub(start)
				p.PerSec, p.MBPerSec = float64(n-lastRep)/secs, float64(b-lastRepBytes)/1e6/secs
				m.progress(p)
				lastRep, lastRepBytes, lastRepAt = n, b, now
			}
		}
	}
}

// stop ends sampling and returns the series.
func (m *meter) stop() []int64 {
	close(m.done)
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.series
}
