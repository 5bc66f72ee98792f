package localcache

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// fillsHeld counts the keys whose loads the cache still tracks.
func (c *Cache[K, V]) fillsHeld() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.fills)
		s.mu.Unlock()
	}
	return n
}

// TestFillsReleased: every way a load can end gives its bookkeeping back.
func TestFillsReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Options[int, int]{ErrorTTL: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		c.GetOrLoad(ctx, 1, func(context.Context, int) (int, error) { return 1, nil })
		c.GetOrLoad(ctx, 2, func(context.Context, int) (int, error) { return 0, errors.New("x") })
		c.GetOrLoad(ctx, 3, func(context.Context, int) (int, error) { panic("x") })
		c.GetOrLoad(ctx, 4, func(context.Context, int) (int, error) { c.Delete(4); return 4, nil })
		cctx, cancel := context.WithCancel(ctx)
		c.GetOrLoad(cctx, 5, func(lctx context.Context, _ int) (int, error) {
			cancel()
			<-lctx.Done()
			return 0, lctx.Err()
		})
		synctest.Wait()
		if n := c.fillsHeld(); n != 0 {
			t.Errorf("%d keys still tracked after their loads ended", n)
		}
	})
}

// TestClockStops: Close stops a TTL cache's clock goroutine, and so does
// garbage collection of a cache that was never closed; a cache without a
// TTL starts none.
func TestClockStops(t *testing.T) {
	waitGoroutines := func(want int) int {
		n := runtime.NumGoroutine()
		for i := 0; i < 1000 && n > want; i++ {
			runtime.GC()
			runtime.Gosched()
			n = runtime.NumGoroutine()
		}
		return n
	}
	for range 10 { // let earlier tests' goroutines finish
		runtime.GC()
		runtime.Gosched()
	}
	before := runtime.NumGoroutine()

	plain, _ := New(Options[string, int]{})
	if plain.clock != nil {
		t.Error("a cache without TTL started a clock")
	}
	plain.Close()

	c, _ := New(Options[string, int]{TTL: time.Hour})
	c.Set("k", 1)
	c.Close()
	c.Close()
	if got := waitGoroutines(before); got > before {
		t.Errorf("goroutines %d after Close, want %d", got, before)
	}
	if _, ok := c.Get("k"); !ok {
		t.Error("entry unreadable after Close")
	}

	func() {
		leaked, _ := New(Options[string, int]{TTL: time.Hour})
		leaked.Set("k", 1)
	}()
	if got := waitGoroutines(before); got > before {
		t.Errorf("goroutines %d after an unclosed cache was collected, want %d", got, before)
	}
}

// TestClockAdvances: the coarse clock follows time (fake time here).
func TestClockAdvances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := New(Options[string, int]{TTL: time.Second})
		defer c.Close()
		c.Set("k", 1)
		time.Sleep(999 * time.Millisecond)
		if _, ok := c.Get("k"); !ok {
			t.Error("expired before its TTL")
		}
		time.Sleep(2 * clockResolution)
		if _, ok := c.Get("k"); ok {
			t.Error("outlived its TTL by more than the clock's resolution")
		}
	})
}
