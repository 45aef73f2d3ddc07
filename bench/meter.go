package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// tally counts records and bytes in shards on cache lines of their own, so that the
// goroutines of different partitions (qxd's producer calls back from one goroutine
// per partition) do not contend on one counter: a benchmark must not be slowed by
// its own bookkeeping.
type tally struct {
	shards [tallyShards]struct {
		records, bytes atomic.Int64
		_              [48]byte
	}
}

const tallyShards = 16

// add counts records and bytes in shard (any int, e.g. the partition).
func (t *tally) add(shard int, records, bytes int64) {
	s := &t.shards[uint(shard)%tallyShards]
	s.records.Add(records)
	s.bytes.Add(bytes)
}

// load returns the totals.
func (t *tally) load() (records, bytes int64) {
	for i := range t.shards {
		records += t.shards[i].records.Load()
		bytes += t.shards[i].bytes.Load()
	}
	return records, bytes
}

// meter counts records and bytes as a side moves them, samples the count every
// Interval into a series and reports progress about once a second.
type meter struct {
	t        tally
	interval time.Duration
	progress func(Progress)
	base     Progress

	end func() // the Config's OnPhase end, or nil

	// cpu is the process's CPU time when the meter started, then (after stop)
	// the CPU time the process used while it ran.
	cpu int64

	mu     sync.Mutex
	series []int64
	done   chan struct{}
	wg     sync.WaitGroup
}

func startMeter(c Config, system, phase string) *meter {
	m := &meter{interval: c.Interval, progress: c.Progress, done: make(chan struct{}),
		base: Progress{Mode: c.Mode, System: system, Phase: phase}}
	if phase == "run" {
		// Each side's timed part starts on a collected heap: without this, the
		// garbage of storing the records (or of the other side's run) is collected,
		// and its pages reused or returned to the system, on the clock of whichever
		// side runs next.
		runtime.GC()
	}
	if c.OnPhase != nil {
		m.end = c.OnPhase(system, phase)
	}
	m.cpu = processCPU()
	m.wg.Add(1)
	go m.run()
	return m
}

// add counts records and bytes moved, in shard (see tally.add).
func (m *meter) add(shard int, records, bytes int64) {
	if m == nil {
		return
	}
	m.t.add(shard, records, bytes)
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
			n, _ := m.t.load()
			m.series = append(m.series, n-last)
			m.mu.Unlock()
			return
		case now := <-t.C:
			n, b := m.t.load()
			m.mu.Lock()
			m.series = append(m.series, n-last)
			m.mu.Unlock()
			last = n
			if m.progress != nil && now.Sub(lastRepAt) >= time.Second {
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
	if used := processCPU() - m.cpu; m.cpu > 0 && used > 0 {
		m.cpu = used
	} else {
		m.cpu = 0
	}
	if m.end != nil {
		m.end()
	}
	close(m.done)
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.series
}
