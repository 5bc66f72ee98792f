package localcache

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseResolution is how often the shared coarse clock ticks. Entries may
// outlive their TTL by up to this much.
const coarseResolution = time.Millisecond

// coarse is a clock shared by every Cache that expires entries: one
// goroutine stores the time every millisecond, so a hit reads an atomic
// instead of calling time.Now (about 40 ns on a kvm-clock virtual machine).
// It runs while at least one such cache is open.
var coarse struct {
	mu    sync.Mutex
	users int
	stop  chan struct{}
	now   atomic.Int64 // time.Since(coarseBase), updated every tick
}

var coarseBase = time.Now()

// coarseStart registers a user of the coarse clock, starting it if needed.
func coarseStart() {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	coarse.users++
	if coarse.users > 1 {
		return
	}
	coarse.now.Store(int64(time.Since(coarseBase)))
	stop := make(chan struct{})
	coarse.stop = stop
	go func() {
		t := time.NewTicker(coarseResolution)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				coarse.now.Store(int64(time.Since(coarseBase)))
			case <-stop:
				return
			}
		}
	}()
}

// coarseStop unregisters a user, stopping the clock after the last one.
func coarseStop() {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	coarse.users--
	if coarse.users == 0 {
		close(coarse.stop)
	}
}
