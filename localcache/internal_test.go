package localcache

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// waiters returns how many GetOrLoad calls wait on key's load.
func (c *Cache[K, V]) waiters(key K) int {
	s := c.shardFor(c.hash(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl := s.calls[key]; cl != nil {
		return cl.waiters
	}
	return 0
}

func TestGetOrLoadWaiterCancel(t *testing.T) {
	c, _ := New(Options[string, string]{})
	defer c.Close()
	entered := make(chan struct{})
	release := make(chan struct{})
	var loaderCtxErr atomic.Value
	var calls atomic.Int32
	loader := func(ctx context.Context, k string) (string, error) {
		if calls.Add(1) == 1 {
			close(entered)
		}
		<-release
		if err := ctx.Err(); err != nil {
			loaderCtxErr.Store(err)
		}
		return "v", nil
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx1, "k", loader)
		first <- err
	}()
	<-entered
	second := make(chan string, 1)
	go func() {
		v, _ := c.GetOrLoad(context.Background(), "k", loader)
		second <- v
	}()
	for c.waiters("k") < 2 {
		runtime.Gosched()
	}
	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-second; v != "v" {
		t.Errorf("other waiter got %q, want v", v)
	}
	if err := loaderCtxErr.Load(); err != nil {
		t.Errorf("loader's context was cancelled: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("loader ran %d times, want 1", n)
	}
}

func coarseUsers() int {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	return coarse.users
}

func TestCloseStopsCoarseClock(t *testing.T) {
	before := coarseUsers()
	c, err := New(Options[string, int]{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := coarseUsers(); got != before+1 {
		t.Fatalf("coarse clock users %d, want %d", got, before+1)
	}
	c.Set("k", 1)
	if _, ok := c.Get("k"); !ok {
		t.Fatal("fresh entry missing")
	}
	c.Close()
	c.Close()
	if got := coarseUsers(); got != before {
		t.Errorf("after Close: coarse clock users %d, want %d", got, before)
	}
	if _, ok := c.Get("k"); !ok {
		t.Error("entry unreadable after Close")
	}
}
