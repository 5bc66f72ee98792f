package localcache

import (
	"context"
	"fmt"
	"runtime/debug"
)

// GetOrLoad returns the value for key, calling loader to produce and store
// it on a miss.
//
// Concurrent misses for one key run loader once and all get its result
// (through internal/flight, the toolkit's one coalescing mechanism). The
// loader runs on its own goroutine with a context that keeps ctx's values
// but not its cancellation: a caller whose ctx is done returns ctx.Err() at
// once while the load goes on for the others. When every waiter has gone the
// loader's context is cancelled, and the next caller starts a new load.
// [Cache.Close] cancels it too.
//
// A load that was running when its key was deleted, set or purged still
// returns its result to its waiters, but the result is not stored (see
// [Cache.Delete]).
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
	s.misses.Add(1)
	v, err, _ := s.flight.Do(ctx, key, func(fctx context.Context) (V, error) {
		return c.load(fctx, s, h, key, loader)
	})
	return v, err
}

// Load calls loader for key on the calling goroutine, ignoring any cached
// value, and stores what it returns, for a caller that must read through the
// cache (one that must see its own recent write, say). Like a GetOrLoad load,
// the result is not stored if key is deleted, set or purged while loader
// runs; once stored, it also supersedes the GetOrLoad loads of key running
// then, which may have read older data. loader gets ctx as is. A panic in
// loader is returned as an error wrapping [ErrLoaderPanic]; after
// [Cache.Close], Load returns [ErrClosed].
func (c *Cache[K, V]) Load(ctx context.Context, key K, loader func(ctx context.Context, key K) (V, error)) (V, error) {
	var zero V
	if !c.startWork() {
		return zero, ErrClosed
	}
	defer c.wg.Done()
	s := c.shardFor(c.hash(key))
	s.mu.Lock()
	fl := s.beginFillLocked(key)
	s.mu.Unlock()
	fl.supersede = true
	val, err := runLoader(ctx, key, loader)
	if err != nil {
		c.loadErrors.Add(1)
		s.mu.Lock()
		s.endFillLocked(key, fl)
		s.mu.Unlock()
		return zero, err
	}
	c.loads.Add(1)
	c.put(c.newNode(key, val, nil, c.ttl), nil, fl)
	return val, nil
}

// hit counts a hit on n and returns what it holds.
func (c *Cache[K, V]) hit(s *shard[K, V], n *node[K, V]) (V, error) {
	n.touch()
	s.hits.Add(1)
	return n.value, n.err
}

// load runs loader for key on behalf of every GetOrLoad waiting for it and
// stores the result, unless key was invalidated meanwhile.
func (c *Cache[K, V]) load(ctx context.Context, s *shard[K, V], h uint64, key K, loader func(context.Context, K) (V, error)) (V, error) {
	var zero V
	if !c.startWork() {
		return zero, ErrClosed
	}
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	s.mu.Lock()
	if n := s.find(h, key); n != nil && (n.expires == 0 || c.now() < n.expires) {
		s.mu.Unlock()
		return n.value, n.err // stored by a load that finished as this one began
	}
	fl := s.beginFillLocked(key)
	s.mu.Unlock()

	val, err := runLoader(ctx, key, loader)
	switch {
	case err == nil:
		c.loads.Add(1)
		c.put(c.newNode(key, val, nil, c.ttl), nil, fl)
	case c.errTTL > 0 && ctx.Err() == nil:
		c.loadErrors.Add(1)
		c.put(c.newNode(key, zero, err, c.errTTL), nil, fl)
	default:
		c.loadErrors.Add(1)
		s.mu.Lock()
		s.endFillLocked(key, fl)
		s.mu.Unlock()
	}
	return val, err
}

// refresh reloads stale in the background, for stale-while-revalidate. The
// result replaces stale only if stale is still the entry, so a Delete, Set
// or Purge meanwhile wins.
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
		c.put(c.newNode(stale.key, val, nil, c.ttl), stale, nil)
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

// runLoader calls loader, turning a panic into an error.
func runLoader[K comparable, V any](ctx context.Context, key K, loader func(context.Context, K) (V, error)) (val V, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrLoaderPanic, r, debug.Stack())
		}
	}()
	return loader(ctx, key)
}
