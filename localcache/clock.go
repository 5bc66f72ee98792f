package localcache

import (
	"sync"
	"sync/atomic"
	"time"
)

// clockResolution is how often a cache's clock ticks. Entries may outlive
// their TTL by up to this much.
const clockResolution = time.Millisecond

// clock is the coarse clock of a cache whose entries expire: one goroutine
// stores the time every clockResolution, so a hit reads one atomic instead
// of the monotonic clock. Each cache owns its clock (made inside a
// testing/synctest bubble it ticks in fake time) and stops it in Close, or
// when the cache is garbage collected without Close.
//
// Measured (BenchmarkGetZipf/ttl=1h and BenchmarkGetOrLoadZipf, parallel
// Zipf hits over 16k keys with a 1 h TTL, -cpu 2,8, variants interleaved
// run by run on the shared 2-core kvm-clock VM, benchstat medians; raw in
// bench/localcache/mechanisms.txt): reading time.Since on every hit instead
// took +38 %, +48 %, +54 %, +53 % longer (2 and 8 goroutines, Get and
// GetOrLoad; n=10, quiet machine, p <= 0.03), +39 %, +61 %, +74 %, +44 %
// (n=20, p <= 0.007) and +78 % to +174 % (n=10, load average 20-38,
// p <= 0.009); spreads ±20-110 %. This per-cache clock measured +13 %
// (geomean, no cell with p < 0.19) against the process-wide ticker it
// replaced, i.e. the same within the noise.
type clock struct {
	now  atomic.Int64 // nanoseconds since base, at least 1; 0 once stopped
	base time.Time
	stop chan struct{}
	once sync.Once
}

func startClock(base time.Time) *clock {
	k := &clock{base: base, stop: make(chan struct{})}
	k.now.Store(sinceBase(base))
	go k.run()
	return k
}

func (k *clock) run() {
	t := time.NewTicker(clockResolution)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			k.now.Store(sinceBase(k.base))
		case <-k.stop:
			k.now.Store(0) // readers fall back to the monotonic clock
			return
		}
	}
}

// halt stops the clock; it is idempotent.
func (k *clock) halt() { k.once.Do(func() { close(k.stop) }) }

// sinceBase returns nanoseconds since base, at least 1.
func sinceBase(base time.Time) int64 { return int64(time.Since(base)) + 1 }
