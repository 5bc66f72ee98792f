package thumbnail

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// recv waits for one value from ch, failing the test instead of hanging
// if it never comes (a broken implementation, not a timing assumption).
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// blocker makes renders wait: each render announces itself on started and
// then waits for release to be closed.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func newBlocker(h *Handler) *blocker {
	b := &blocker{started: make(chan struct{}, 100), release: make(chan struct{})}
	h.beforeRender = func() {
		b.started <- struct{}{}
		<-b.release
	}
	return b
}

func TestCoalescing(t *testing.T) {
	const n = 16
	h := newHandler(t, Options{CacheBytes: -1}) // no memory cache: only coalescing can dedupe
	joined := make(chan struct{}, n)
	h.flights.onJoin = func(string) { joined <- struct{}{} }
	b := newBlocker(h)
	u := h.URL("photo.jpg", Spec{Width: 64})

	var wg sync.WaitGroup
	statuses := make([]int, n)
	bodies := make([][]byte, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			r := get(h, "GET", u)
			statuses[i], bodies[i] = r.StatusCode, body(t, r)
		})
	}
	recv(t, b.started, "the leader to render") // the leader is rendering...
	for i := 0; i < n-1; i++ {
		recv(t, joined, "a request to join the flight") // ...and every other request has joined it
	}
	close(b.release)
	wg.Wait()
	if got := h.renders.Load(); got != 1 {
		t.Errorf("renders: got %d, want 1 for %d concurrent identical requests", got, n)
	}
	for i := range statuses {
		if statuses[i] != 200 || string(bodies[i]) != string(bodies[0]) {
			t.Errorf("request %d: status %d, %d bytes; want 200 and the leader's body", i, statuses[i], len(bodies[i]))
		}
	}
	// Without a flight in progress a new request renders again (the test
	// above would fail if coalescing were replaced by "render every time").
	h.beforeRender = nil
	get(h, "GET", u)
	if got := h.renders.Load(); got != 2 {
		t.Errorf("renders after the flight: got %d, want 2", got)
	}
}

func TestOverload(t *testing.T) {
	const queueSize = 3
	h := newHandler(t, Options{Concurrency: 1, QueueSize: queueSize, CacheBytes: -1, RetryAfter: 7 * time.Second})
	b := newBlocker(h)
	waiting := make(chan struct{}, 10)
	h.q.onWait = func() { waiting <- struct{}{} }

	var wg sync.WaitGroup
	statuses := make(chan int, 10)
	req := func(i int) {
		wg.Go(func() {
			r := get(h, "GET", h.URL("photo.jpg", Spec{Width: 10 + i}))
			statuses <- r.StatusCode
		})
	}
	req(0)
	recv(t, b.started, "the first render") // the only slot is taken
	for i := 1; i <= queueSize; i++ {
		req(i)
		recv(t, waiting, "a render to queue")
	}
	// The queue is full: more distinct renders are refused at once.
	for i := 0; i < 5; i++ {
		r := get(h, "GET", h.URL("photo.jpg", Spec{Width: 100 + i}))
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "7" {
			t.Fatalf("overload: got %d, Retry-After %q; want 503 and 7", r.StatusCode, r.Header.Get("Retry-After"))
		}
		if b := string(body(t, r)); b != "overloaded, try again shortly\n" {
			t.Errorf("overload body: got %q", b)
		}
	}
	if running, waiting := h.q.stats(); running != 1 || waiting != queueSize {
		t.Errorf("queue: got %d running, %d waiting; want 1, %d", running, waiting, queueSize)
	}
	// But a request for a thumbnail already being rendered joins it instead.
	joined := make(chan struct{}, 1)
	h.flights.onJoin = func(string) { joined <- struct{}{} }
	wg.Go(func() {
		statuses <- get(h, "GET", h.URL("photo.jpg", Spec{Width: 10})).StatusCode
	})
	recv(t, joined, "the duplicate to join")
	close(b.release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("queued request: got %d, want 200", s)
		}
	}
	if got := h.renders.Load(); got != 1+queueSize {
		t.Errorf("renders: got %d, want %d", got, 1+queueSize)
	}
}

func TestQueueTimeout(t *testing.T) {
	h := newHandler(t, Options{Concurrency: 1, CacheBytes: -1})
	b := newBlocker(h)
	fire := make(chan time.Time)
	h.q.after = func(time.Duration) (<-chan time.Time, func() bool) { return fire, func() bool { return true } }
	waiting := make(chan struct{}, 1)
	h.q.onWait = func() { waiting <- struct{}{} }

	done := make(chan int, 2)
	go func() { done <- get(h, "GET", h.URL("photo.jpg", Spec{Width: 10})).StatusCode }()
	recv(t, b.started, "the first render")
	go func() { done <- get(h, "GET", h.URL("photo.jpg", Spec{Width: 11})).StatusCode }()
	recv(t, waiting, "the second render to queue")
	fire <- time.Now() // the waiter's QueueTimeout passes
	if s := <-done; s != http.StatusServiceUnavailable {
		t.Errorf("timed-out waiter: got %d, want 503", s)
	}
	close(b.release)
	if s := <-done; s != 200 {
		t.Errorf("running render: got %d, want 200", s)
	}
	if running, waiting := h.q.stats(); running != 0 || waiting != 0 {
		t.Errorf("queue after: %d running, %d waiting; want 0, 0", running, waiting)
	}
}

func TestQueueFIFO(t *testing.T) {
	q := newQueue(1, 10, time.Hour)
	waiting := make(chan struct{}, 10)
	q.onWait = func() { waiting <- struct{}{} }
	if err := q.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 5)
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Go(func() {
			if err := q.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			order <- i
			q.release()
		})
		recv(t, waiting, "a waiter") // i is in line before i+1 starts
	}
	q.release()
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Errorf("slot %d went to waiter %d", want, got)
		}
		want++
	}
}

func TestQueueCancel(t *testing.T) {
	q := newQueue(1, 10, time.Hour)
	waiting := make(chan struct{}, 10)
	q.onWait = func() { waiting <- struct{}{} }
	if err := q.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- q.acquire(ctx) }()
	recv(t, waiting, "the waiter")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	q.release()
	if running, waiting := q.stats(); running != 0 || waiting != 0 {
		t.Errorf("got %d running, %d waiting; want 0, 0", running, waiting)
	}
}

// TestQueueRace hammers acquire/release/timeouts; run with -race.
func TestQueueRace(t *testing.T) {
	q := newQueue(2, 4, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	running, peak := 0, 0
	for i := 0; i < 50; i++ {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%7 == 0 {
				cancel()
			}
			if err := q.acquire(ctx); err != nil {
				return
			}
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			runtime.Gosched()
			mu.Lock()
			running--
			mu.Unlock()
			q.release()
		})
	}
	wg.Wait()
	if peak > 2 {
		t.Errorf("peak concurrency %d, limit 2", peak)
	}
	if r, w := q.stats(); r != 0 || w != 0 {
		t.Errorf("got %d running, %d waiting after all done", r, w)
	}
}

// TestLeaderGoneFollowersServed: the request that started a render going
// away does not fail the requests coalesced onto it.
func TestLeaderGoneFollowersServed(t *testing.T) {
	h := newHandler(t, Options{CacheBytes: -1})
	b := newBlocker(h)
	joined := make(chan struct{}, 1)
	h.flights.onJoin = func(string) { joined <- struct{}{} }
	u := h.URL("photo.jpg", Spec{Width: 33})

	ctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		req := httptest.NewRequest("GET", u, nil).WithContext(ctx)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}()
	recv(t, b.started, "the leader's render")
	follower := make(chan int, 1)
	go func() { follower <- get(h, "GET", u).StatusCode }()
	recv(t, joined, "the follower to join")
	cancel()
	close(b.release)
	if s := recv(t, follower, "the follower's response"); s != 200 {
		t.Errorf("follower: got %d, want 200", s)
	}
	recv(t, leaderDone, "the leader to return")
}
