package localcache

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
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
