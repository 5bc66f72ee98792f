package localcache

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// call is one load in flight, shared by every GetOrLoad waiting for its key.
type call[V any] struct {
	done    chan struct{} // closed when val and err are set
	val     V
	err     error
	waiters int                // under the shard's mu
	cancel  context.CancelFunc // cancels the loader's context
}

// GetOrLoad returns the value for key, calling loader to produce and store
// it on a miss.
//
// Concurrent misses for one key run loader once and all get its result. The
// loader runs on its own goroutine with a context that keeps ctx's values
// but not its cancellation: a caller whose ctx is done returns ctx.Err() at
// once while the load goes on for the others. When every waiter has gone the
// loader's context is cancelled. [Cache.Close] cancels it too.
//
// If loader panics, every waiter gets an error wrapping [ErrLoaderPanic]. If
// it returns an error, that error is returned and, with Options.ErrorTTL
// set, cached for that long. With Options.StaleWhileRevalidate set, an entry
// that expired less than that long ago is returned at once while one
// background call of loader refreshes it.
func (c *Cache[K, V]) GetOrLoad(ctx context.Context, key K, loader func(ctx context.Context, key K) (V, error)) (V, error) {
	h := c.hash(key)
	s := c.shardFor(h)
	if n := s.find(h, key); n != nil {
		if n.expires == 0 {
			return c.hit(s, n)
		}
		now := c.now()
		if now < n.expires {
			return c.hit(s, n)
		}
		if n.err == nil && c.swr > 0 && now < n.expires+int64(c.swr) {
			if n.refreshing.CompareAndSwap(false, true) {
				c.refresh(ctx, n, loader)
			}
			return c.hit(s, n)
		}
	}
	c.stats.miss()
	return c.load(ctx, s, h, key, loader)
}

// hit counts a hit on n and returns what it holds.
func (c *Cache[K, V]) hit(s *shard[K, V], n *node[K, V]) (V, error) {
	if n.ref.Load() == 0 {
		n.ref.Store(1)
	}
	c.stats.hit()
	return n.value, n.err
}

// load joins or starts the load of key and waits for it or for ctx.
func (c *Cache[K, V]) load(ctx context.Context, s *shard[K, V], h uint64, key K, loader func(context.Context, K) (V, error)) (V, error) {
	var zero V
	s.mu.Lock()
	if n := s.find(h, key); n != nil && (n.expires == 0 || c.now() < n.expires) {
		s.mu.Unlock()
		return n.value, n.err // loaded while we took the lock
	}
	cl := s.calls[key]
	if cl == nil {
		if !c.startWork() {
			s.mu.Unlock()
			return zero, ErrClosed
		}
		var lctx context.Context
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(c.ctx, cancel)
		cl = &call[V]{done: make(chan struct{}), cancel: cancel}
		if s.calls == nil {
			s.calls = make(map[K]*call[V])
		}
		s.calls[key] = cl
		go func() {
			defer c.wg.Done()
			defer stop()
			defer cancel()
			val, err := runLoader(lctx, key, loader)
			if err == nil {
				c.loads.Add(1)
				c.store(key, val, c.ttl, nil, nil)
			} else {
				c.loadErrors.Add(1)
				if c.errTTL > 0 && lctx.Err() == nil {
					c.store(key, zero, c.errTTL, err, nil)
				}
			}
			s.mu.Lock()
			if s.calls[key] == cl {
				delete(s.calls, key)
			}
			cl.val, cl.err = val, err
			s.mu.Unlock()
			close(cl.done)
		}()
	}
	cl.waiters++
	s.mu.Unlock()

	select {
	case <-cl.done:
		return cl.val, cl.err
	case <-ctx.Done():
		s.mu.Lock()
		cl.waiters--
		if cl.waiters == 0 {
			// Nobody wants the result any more: stop the loader, and let
			// the next caller start afresh rather than join a cancelled load.
			cl.cancel()
			if s.calls[key] == cl {
				delete(s.calls, key)
			}
		}
		s.mu.Unlock()
		return zero, ctx.Err()
	}
}

// refresh reloads stale in the background, for stale-while-revalidate.
func (c *Cache[K, V]) refresh(ctx context.Context, stale *node[K, V], loader func(context.Context, K) (V, error)) {
	if !c.startWork() {
		stale.refreshing.Store(false)
		return
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(c.ctx, cancel)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		val, err := runLoader(lctx, stale.key, loader)
		if err != nil {
			c.loadErrors.Add(1)
			stale.refreshing.Store(false) // the next stale hit tries again
			return
		}
		c.loads.Add(1)
		c.store(stale.key, val, c.ttl, nil, stale)
	}()
}

// startWork registers a goroutine with wg unless the cache is closed.
func (c *Cache[K, V]) startWork() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// store puts a loaded value (or error) under key. If expect is non-nil it
// is stored only if expect is still the entry.
func (c *Cache[K, V]) store(key K, val V, ttl time.Duration, err error, expect *node[K, V]) {
	n := &node[K, V]{key: key, value: val, err: err}
	if ttl > 0 {
		n.expires = c.now() + int64(ttl)
	}
	if c.cost != nil && err == nil {
		n.cost = max(0, c.cost(key, val))
	}
	c.put(n, expect)
}

// runLoader calls loader, turning a panic into an error.
func runLoader[K comparable, V any](ctx context.Context, key K, loader func(context.Context, K) (V, error)) (val V, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrLoaderPanic, r, debug.Stack())
		}
	}()
	return loader(ctx, key)
}
