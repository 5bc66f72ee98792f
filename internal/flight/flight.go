// Package flight is the toolkit's one implementation of coalescing: of
// concurrent callers asking for the same key, one does the work and the
// others wait for its result. localcache's GetOrLoad, the response cache's
// miss handling and thumbnail renders all use it.
package flight

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// Group coalesces work by key. The zero value is ready to use; a Group is
// safe for concurrent use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*Call[V]
}

// Call is one piece of work in flight.
type Call[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int                // under the group's mu
	cancel  context.CancelFunc // for Do: cancels the work when no waiter is left
	unlink  func()
}

// Begin returns the call in flight for key and leader false, or, if there
// is none, a new call and leader true: the caller must then do the work and
// call [Call.Finish] exactly once. Callers that are not the leader wait with
// [Call.Wait].
func (g *Group[K, V]) Begin(key K) (c *Call[V], leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.calls[key]; c != nil {
		c.waiters++
		return c, false
	}
	if g.calls == nil {
		g.calls = make(map[K]*Call[V])
	}
	c = &Call[V]{done: make(chan struct{}), waiters: 1}
	c.unlink = func() {
		g.mu.Lock()
		if g.calls[key] == c {
			delete(g.calls, key)
		}
		g.mu.Unlock()
	}
	g.calls[key] = c
	return c, true
}

// Finish publishes the result to every waiter and removes the call from the
// group, so the next Begin for its key starts new work.
func (c *Call[V]) Finish(v V, err error) {
	c.unlink()
	c.val, c.err = v, err
	close(c.done)
}

// Wait returns the call's result once it is finished, or ctx.Err() as soon
// as ctx is done (the work goes on for the others).
func (c *Call[V]) Wait(ctx context.Context) (V, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Done is closed when the call has finished.
func (c *Call[V]) Done() <-chan struct{} { return c.done }

// PanicError wraps a value recovered from a panicking fn in [Group.Do].
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v\n\n%s", p.Value, p.Stack) }

// Do runs fn once for concurrent callers with the same key and returns its
// result to each; shared reports whether the result went to more than one
// caller.
//
// fn runs on its own goroutine with a context that keeps the first caller's
// values but not its cancellation. A caller whose ctx is done returns
// ctx.Err() at once while fn goes on for the others; when every caller has
// gone, fn's context is cancelled, so abandoned work stops, and the next
// caller for key starts new work. A panic in fn reaches every caller as a
// *[PanicError].
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(context.Context) (V, error)) (v V, err error, shared bool) {
	c, leader := g.Begin(key)
	if leader {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g.mu.Lock()
		c.cancel = cancel
		g.mu.Unlock()
		go func() {
			defer cancel()
			var v V
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = &PanicError{Value: p, Stack: debug.Stack()}
					}
				}()
				v, err = fn(wctx)
			}()
			c.Finish(v, err)
		}()
	}
	v, err = c.Wait(ctx)
	g.mu.Lock()
	shared = c.waiters > 1
	if err != nil && err == ctx.Err() {
		select {
		case <-c.done:
		default:
			c.waiters--
			if c.waiters == 0 {
				// Nobody wants the result any more: stop the work, and let
				// the next caller start afresh rather than join work whose
				// context is cancelled.
				if c.cancel != nil {
					c.cancel()
				}
				if g.calls[key] == c {
					delete(g.calls, key)
				}
			}
		}
	}
	g.mu.Unlock()
	return v, err, shared
}

// Forget detaches the call in flight for key, if any: callers already
// waiting for it still get its result, but later callers for key start new
// work instead of joining it. Use it when the work's result has become out
// of date, e.g. because what it reads was changed while it ran.
func (g *Group[K, V]) Forget(key K) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}
