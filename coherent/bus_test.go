package coherent_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing/coherent"
)

// mapCache is a TypedCache that records what the Bus does to it.
type mapCache struct {
	mu      sync.Mutex
	m       map[string]string
	deletes []string
	purges  int
}

func newMapCache() *mapCache { return &mapCache{m: map[string]string{}} }

func (c *mapCache) Get(k string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *mapCache) GetOrLoad(ctx context.Context, k string, load func(context.Context, string) (string, error)) (string, error) {
	if v, ok := c.Get(k); ok {
		return v, nil
	}
	return c.Load(ctx, k, load)
}

func (c *mapCache) Load(ctx context.Context, k string, load func(context.Context, string) (string, error)) (string, error) {
	v, err := load(ctx, k)
	if err == nil {
		c.mu.Lock()
		c.m[k] = v
		c.mu.Unlock()
	}
	return v, err
}

func (c *mapCache) Delete(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	delete(c.m, k)
	c.deletes = append(c.deletes, k)
	return ok
}

func (c *mapCache) Purge() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.m)
	clear(c.m)
	c.purges++
	return n
}

// chanListener delivers what the test sends on its channel, and fails
// with what the test sends on fail.
type chanListener struct {
	payloads chan string
	fail     chan error
}

func (l *chanListener) Listen(context.Context, string) error { return nil }
func (l *chanListener) Close() error                         { return nil }
func (l *chanListener) WaitForNotification(ctx context.Context) (string, error) {
	select {
	case p := <-l.payloads:
		return p, nil
	case err := <-l.fail:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Dial failures are retried with backoff doubling from 50 ms up to
// MaxBackoff; every (re)connection flushes; a payload that does not decode
// flushes too; notifications delete keys; errors reach ErrorHandler and
// Stats. (No PostgreSQL: without Replicas and before the first heartbeat
// the Bus sends no query.)
func TestReconnectBackoffAndFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu       sync.Mutex
			attempts []time.Time
			errs     []error
		)
		l := &chanListener{payloads: make(chan string), fail: make(chan error)}
		bus, err := coherent.New(coherent.Options{
			DB:         &sql.DB{}, // never used: no Replicas, no heartbeat within the test
			Heartbeat:  time.Hour,
			MaxBackoff: 300 * time.Millisecond,
			Dial: func(context.Context) (coherent.Listener, error) {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, time.Now())
				if len(attempts) <= 5 {
					return nil, errors.New("connection refused")
				}
				return l, nil
			},
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				if w != nil || r != nil {
					t.Error("ErrorHandler got a request for a background failure")
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer bus.Close()
		cache := newMapCache()
		users, err := coherent.NewCache(bus, "users", cache)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := coherent.NewCache(bus, "users", cache); err == nil {
			t.Error("a second cache named users was accepted")
		}

		time.Sleep(time.Second) // fake time: the dial attempts run out
		synctest.Wait()
		mu.Lock()
		var gaps []time.Duration
		for i := 1; i < len(attempts); i++ {
			gaps = append(gaps, attempts[i].Sub(attempts[i-1]))
		}
		nErrs := len(errs)
		mu.Unlock()
		want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
		if len(gaps) != len(want) {
			t.Fatalf("gaps between dials %v, want %v", gaps, want)
		}
		for i := range want {
			if gaps[i] != want[i] {
				t.Errorf("gaps between dials %v, want %v", gaps, want)
				break
			}
		}
		if nErrs != 5 {
			t.Errorf("ErrorHandler heard %d errors, want 5", nErrs)
		}
		s := bus.Stats()
		if !s.Connected || s.Connects != 1 || s.Flushes != 1 || cache.purges != 1 {
			t.Errorf("after connecting: %+v, %d purges; want connected, one connect, one flush", s, cache.purges)
		}
		if err := bus.WaitConnected(context.Background()); err != nil {
			t.Errorf("WaitConnected while connected: %v", err)
		}

		cache.m["1"], cache.m["2"] = "a", "b"
		l.payloads <- "c1 00000001 0/16B3740\nk users 1\nk other 2"
		synctest.Wait()
		if _, ok := cache.Get("1"); ok {
			t.Error("key 1 still cached after its notification")
		}
		if _, ok := cache.Get("2"); !ok {
			t.Error("key 2 of another cache name was dropped")
		}
		if v, _ := users.GetOrLoad(context.Background(), "1", func(context.Context, string) (string, error) { return "loaded", nil }); v != "loaded" {
			t.Errorf("GetOrLoad after the invalidation: %q, want loaded", v)
		}

		l.payloads <- "garbage"
		synctest.Wait()
		if s := bus.Stats(); s.BadPayloads != 1 || s.Flushes != 2 || cache.purges != 2 {
			t.Errorf("after a malformed payload: %+v, %d purges; want one bad payload and a flush", s, cache.purges)
		}

		l.fail <- errors.New("connection reset")
		synctest.Wait()
		if s := bus.Stats(); s.Connected {
			t.Error("still connected after the listener failed")
		}
		waited := make(chan error, 1)
		go func() { waited <- bus.WaitConnected(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Errorf("WaitConnected returned %v while the listener was down", err)
		default:
		}
		time.Sleep(50 * time.Millisecond) // the first backoff after a working session
		synctest.Wait()
		select {
		case err := <-waited:
			if err != nil {
				t.Errorf("WaitConnected after the reconnect: %v", err)
			}
		default:
			t.Error("WaitConnected still waiting after the reconnect")
		}
		if s := bus.Stats(); !s.Connected || s.Connects != 2 || s.Flushes != 3 || cache.purges != 3 {
			t.Errorf("after reconnecting: %+v, %d purges; want a second connect and flush", s, cache.purges)
		}
	})
}
