package thumbnail

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// gatedSource serves the files of a Source, but a render holds its slot:
// the reader gives the first 4 KiB (enough for the header that prices
// the render), then blocks until gate is closed or the render's context
// ends. Names for which slow returns false are served without a gate.
type gatedSource struct {
	Source
	gate      chan struct{}
	slow      func(name string) bool
	opens     atomic.Int32
	cancelled atomic.Int32 // reads that ended because the render's context did
}

func newGatedSource(src Source) *gatedSource {
	return &gatedSource{Source: src, gate: make(chan struct{}), slow: func(string) bool { return true }}
}

func (g *gatedSource) Open(ctx context.Context, name string) (io.ReadCloser, Info, error) {
	g.opens.Add(1)
	rc, info, err := g.Source.Open(ctx, name)
	if err != nil || !g.slow(name) {
		return rc, info, err
	}
	return &gatedReader{rc: rc, g: g, ctx: ctx, head: 4096}, info, nil
}

type gatedReader struct {
	rc   io.ReadCloser
	g    *gatedSource
	ctx  context.Context
	head int // bytes left before the gate
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.head > 0 {
		n, err := r.rc.Read(p[:min(len(p), r.head)])
		r.head -= n
		return n, err
	}
	select {
	case <-r.g.gate:
	case <-r.ctx.Done():
		r.g.cancelled.Add(1)
		return 0, r.ctx.Err()
	}
	return r.rc.Read(p)
}

func (r *gatedReader) Close() error { return r.rc.Close() }

// copiesDir returns a directory with n copies of a JPEG named
// p0.jpg, p1.jpg, …: distinct sources, as the queue tells them apart.
func copiesDir(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	b := encodeJPEG(t, photo(640, 480), 80) // larger than the gate's 4 KiB
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, "p"+strconv.Itoa(i)+".jpg"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 16
		src := newGatedSource(Dir(fixtureDir(t)))
		h := noMemoryCache(newHandler(t, Options{Source: src})) // only coalescing can dedupe
		u := h.URL("photo.jpg", Spec{Width: 64})

		var wg sync.WaitGroup
		statuses := make([]int, n)
		bodies := make([][]byte, n)
		for i := range n {
			wg.Go(func() {
				r := get(h, "GET", u)
				statuses[i], bodies[i] = r.StatusCode, body(t, r)
			})
		}
		synctest.Wait() // one render holds the slot; every other request waits for it
		if s := h.Stats(); s.Renders != 1 || s.Running != 1 {
			t.Fatalf("while rendering: %d renders, %d running; want 1, 1", s.Renders, s.Running)
		}
		close(src.gate)
		wg.Wait()
		if s := h.Stats(); s.Renders != 1 || s.Coalesced != n-1 {
			t.Errorf("got %d renders, %d coalesced; want 1, %d", s.Renders, s.Coalesced, n-1)
		}
		for i := range statuses {
			if statuses[i] != 200 || string(bodies[i]) != string(bodies[0]) {
				t.Errorf("request %d: status %d, %d bytes; want 200 and the leader's body", i, statuses[i], len(bodies[i]))
			}
		}
		// Without a flight in progress a new request renders again.
		get(h, "GET", u)
		if got := h.Stats().Renders; got != 2 {
			t.Errorf("renders after the flight: got %d, want 2", got)
		}
	})
}

func TestOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queueSize = 3
		src := newGatedSource(Dir(copiesDir(t, 10)))
		h := noMemoryCache(newHandler(t, Options{Source: src, Concurrency: 1, QueueSize: queueSize, RetryAfter: 7 * time.Second}))
		u := func(i int) string { return h.URL("p"+strconv.Itoa(i)+".jpg", Spec{Width: 10}) }

		var wg sync.WaitGroup
		statuses := make(chan int, 10)
		for i := range 1 + queueSize {
			wg.Go(func() { statuses <- get(h, "GET", u(i)).StatusCode })
		}
		synctest.Wait()
		if s := h.Stats(); s.Running != 1 || s.Waiting != queueSize {
			t.Fatalf("queue: got %d running, %d waiting; want 1, %d", s.Running, s.Waiting, queueSize)
		}
		// The queue is full: more renders are refused at once.
		for i := 5; i < 10; i++ {
			r := get(h, "GET", u(i))
			if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "7" {
				t.Fatalf("overload: got %d, Retry-After %q; want 503 and 7", r.StatusCode, r.Header.Get("Retry-After"))
			}
			if b := string(body(t, r)); b != "Service Unavailable\n" {
				t.Errorf("overload body: got %q", b)
			}
		}
		// But a request for a thumbnail already in the queue joins it.
		wg.Go(func() { statuses <- get(h, "GET", u(0)).StatusCode })
		synctest.Wait()
		close(src.gate)
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s != 200 {
				t.Errorf("queued request: got %d, want 200", s)
			}
		}
		s := h.Stats()
		if s.Renders != 1+queueSize || s.QueueRejections != 5 || s.Failures["503"] != 5 || s.Coalesced != 1 {
			t.Errorf("stats: %+v; want %d renders, 5 rejections (503), 1 coalesced", s, 1+queueSize)
		}
	})
}

func TestQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newGatedSource(Dir(copiesDir(t, 2)))
		h := noMemoryCache(newHandler(t, Options{Source: src, Concurrency: 1, QueueTimeout: 3 * time.Second}))
		done := make(chan int, 2)
		go func() { done <- get(h, "GET", h.URL("p0.jpg", Spec{Width: 10})).StatusCode }()
		synctest.Wait()
		start := time.Now()
		go func() { done <- get(h, "GET", h.URL("p1.jpg", Spec{Width: 11})).StatusCode }()
		if s := <-done; s != http.StatusServiceUnavailable || time.Since(start) != 3*time.Second {
			t.Errorf("waiter: got %d after %v, want 503 after the 3 s QueueTimeout", s, time.Since(start))
		}
		close(src.gate)
		if s := <-done; s != 200 {
			t.Errorf("running render: got %d, want 200", s)
		}
		if s := h.Stats(); s.Running != 0 || s.Waiting != 0 {
			t.Errorf("queue after: %d running, %d waiting; want 0, 0", s.Running, s.Waiting)
		}
	})
}

// grant describes one acquire in the queue unit tests below.
type grant struct {
	source string
	cost   int64
}

// startWaiters starts one acquire per grant, in order (each is in line
// before the next starts), and returns the order in which they got a slot
// and the errors of those that did not. Each releases its slot at once.
func startWaiters(q *queue, gs []grant) (order chan string, errs chan error) {
	order, errs = make(chan string, len(gs)), make(chan error, len(gs))
	for _, g := range gs {
		go func() {
			tk, err := q.acquire(context.Background(), g.source, g.cost)
			if err != nil {
				errs <- err
				return
			}
			order <- g.source
			tk.release()
		}()
		synctest.Wait()
	}
	return order, errs
}

func TestQueueCheapestFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(1, 10, time.Hour)
		first, err := q.acquire(context.Background(), "first", 1)
		if err != nil {
			t.Fatal(err)
		}
		order, _ := startWaiters(q, []grant{{"5M", 5e6}, {"1M-a", 1e6}, {"30M", 30e6}, {"1M-b", 1e6}, {"3M", 3e6}})
		first.release()
		synctest.Wait()
		close(order)
		var got []string
		for s := range order {
			got = append(got, s)
		}
		if want := "1M-a 1M-b 3M 5M 30M"; strings.Join(got, " ") != want {
			t.Errorf("order: got %v, want %s", got, want)
		}
	})
}

func TestQueueHeavyLeavesASlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(2, 10, time.Hour)
		heavy, err := q.acquire(context.Background(), "heavy-1", 49e6)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = startWaiters(q, []grant{{"heavy-2", 49e6}})
		if running, waiting := q.stats(); running != 1 || waiting != 1 {
			t.Fatalf("second heavy render: got %d running, %d waiting; want 1, 1 (one slot kept for light work)", running, waiting)
		}
		light, err := q.acquire(context.Background(), "light", 1e6)
		if err != nil {
			t.Fatalf("light render with a heavy one waiting: %v", err)
		}
		light.release()
		heavy.release()
		synctest.Wait()
		if running, waiting := q.stats(); running != 0 || waiting != 0 {
			t.Errorf("after: %d running, %d waiting", running, waiting)
		}
	})
}

func TestQueueLineLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(1, 20, time.Hour) // heavy renders may fill 10 places
		block, err := q.acquire(context.Background(), "block", 1)
		if err != nil {
			t.Fatal(err)
		}
		var gs []grant
		for i := range q.heavySize + 1 { // the last finds no room for heavy renders
			gs = append(gs, grant{"heavy-" + strconv.Itoa(i), 49e6})
		}
		for i := range perSourceLine + 1 { // the last finds no room for source s
			gs = append(gs, grant{"s", int64(i + 1)})
		}
		gs = append(gs, grant{"light", 1})
		_, errs := startWaiters(q, gs)
		if running, waiting := q.stats(); running != 1 || waiting != q.heavySize+perSourceLine+1 {
			t.Fatalf("got %d running, %d waiting; want 1, %d", running, waiting, q.heavySize+perSourceLine+1)
		}
		if got := len(errs); got != 2 {
			t.Fatalf("refused: got %d, want 2", got)
		}
		for range 2 {
			if err := <-errs; !errors.Is(err, ErrOverloaded) {
				t.Errorf("got %v, want ErrOverloaded", err)
			}
		}
		block.release()
		synctest.Wait()
		if running, waiting := q.stats(); running != 0 || waiting != 0 {
			t.Errorf("after: %d running, %d waiting", running, waiting)
		}
	})
}

func TestQueueOneRenderPerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(4, 10, time.Hour)
		a, err := q.acquire(context.Background(), "a", 1)
		if err != nil {
			t.Fatal(err)
		}
		order, _ := startWaiters(q, []grant{{"a", 1}, {"b", 1}})
		if running, waiting := q.stats(); running != 1 || waiting != 1 {
			t.Fatalf("got %d running, %d waiting; want a running, a's second render waiting (b ran)", running, waiting)
		}
		if got := <-order; got != "b" {
			t.Fatalf("got %s, want b", got)
		}
		a.release()
		synctest.Wait()
		if got := <-order; got != "a" {
			t.Errorf("got %s, want a's second render", got)
		}
	})
}

func TestQueueCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(1, 10, time.Hour)
		first, err := q.acquire(context.Background(), "a", 1)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := q.acquire(ctx, "b", 1)
			errc <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		first.release()
		if running, waiting := q.stats(); running != 0 || waiting != 0 || len(q.sources) != 0 {
			t.Errorf("got %d running, %d waiting, %d sources; want 0, 0, 0", running, waiting, len(q.sources))
		}
	})
}

// TestQueueRace hammers acquire/release/cancellation; run with -race.
func TestQueueRace(t *testing.T) {
	q := newQueue(2, 8, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	running, peak, heavy := 0, 0, 0
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%7 == 0 {
				cancel()
			}
			cost := int64(i%3) * 5e6 // 0, 5 M, 10 M (heavy)
			tk, err := q.acquire(ctx, strconv.Itoa(i%5), cost)
			if err != nil {
				return
			}
			mu.Lock()
			running++
			peak = max(peak, running)
			if cost > heavyPixels {
				heavy++
				if heavy > 1 {
					t.Errorf("%d heavy renders at once, limit 1", heavy)
				}
			}
			mu.Unlock()
			runtime.Gosched()
			mu.Lock()
			running--
			if cost > heavyPixels {
				heavy--
			}
			mu.Unlock()
			tk.release()
		})
	}
	wg.Wait()
	if peak > 2 {
		t.Errorf("peak concurrency %d, limit 2", peak)
	}
	if r, w := q.stats(); r != 0 || w != 0 || len(q.sources) != 0 {
		t.Errorf("got %d running, %d waiting, %d sources after all done", r, w, len(q.sources))
	}
}

// TestLeaderGoneFollowersServed: the request that started a render going
// away does not fail the requests coalesced onto it.
func TestLeaderGoneFollowersServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newGatedSource(Dir(fixtureDir(t)))
		h := noMemoryCache(newHandler(t, Options{Source: src}))
		u := h.URL("photo.jpg", Spec{Width: 33})

		ctx, cancel := context.WithCancel(context.Background())
		go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", u, nil).WithContext(ctx))
		synctest.Wait()
		follower := make(chan int, 1)
		go func() { follower <- get(h, "GET", u).StatusCode }()
		synctest.Wait()
		cancel()
		synctest.Wait()
		close(src.gate)
		if s := <-follower; s != 200 {
			t.Errorf("follower: got %d, want 200", s)
		}
		if n := src.cancelled.Load(); n != 0 {
			t.Errorf("the render was cancelled while a follower waited")
		}
	})
}

// TestRenderCancelledWhenEveryClientLeaves: once no request waits for a
// render, it stops (inside the source read here), frees its slot, and is
// counted.
func TestRenderCancelledWhenEveryClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newGatedSource(Dir(fixtureDir(t)))
		h := noMemoryCache(newHandler(t, Options{Source: src}))
		u := h.URL("photo.jpg", Spec{Width: 33})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", u, nil).WithContext(ctx)) })
		}
		synctest.Wait()
		cancel()
		wg.Wait()
		synctest.Wait()
		s := h.Stats()
		if src.cancelled.Load() != 1 || s.CancelledRenders != 1 || s.Running != 0 {
			t.Errorf("render cancelled %d times, stats %+v; want 1 cancelled render, none running", src.cancelled.Load(), s)
		}
		if len(s.Failures) != 0 {
			t.Errorf("gone clients counted as failures: %v", s.Failures)
		}
	})
}
