package localcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
)

// evictLog records OnEvict calls.
type evictLog struct {
	mu  sync.Mutex
	got []string
}

func (l *evictLog) add(k string, v int, r localcache.EvictReason) {
	l.mu.Lock()
	l.got = append(l.got, fmt.Sprintf("%s=%d %v", k, v, r))
	l.mu.Unlock()
}

func (l *evictLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.got)
}

func mustNew[K comparable, V any](t testing.TB, o localcache.Options[K, V]) *localcache.Cache[K, V] {
	t.Helper()
	c, err := localcache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    localcache.Options[string, int]
		want string // "" for no error
	}{
		{"negative MaxEntries", localcache.Options[string, int]{MaxEntries: -1}, "localcache: New: Options.MaxEntries must not be negative"},
		{"negative MaxBytes", localcache.Options[string, int]{MaxBytes: -1}, "localcache: New: Options.MaxBytes must not be negative"},
		{"negative TTL", localcache.Options[string, int]{TTL: -time.Second}, "localcache: New: Options.TTL must not be negative"},
		{"negative Shards", localcache.Options[string, int]{Shards: -2}, "localcache: New: Options.Shards must not be negative"},
		{"negative ErrorTTL", localcache.Options[string, int]{ErrorTTL: -1}, "localcache: New: Options.ErrorTTL must not be negative"},
		{"negative StaleWhileRevalidate", localcache.Options[string, int]{StaleWhileRevalidate: -1}, "localcache: New: Options.StaleWhileRevalidate must not be negative"},
		{"MaxBytes without Cost", localcache.Options[string, int]{MaxBytes: 10}, "localcache: New: Options.MaxBytes needs Options.Cost"},
		{"zero value", localcache.Options[string, int]{}, ""},
		{"odd shard count", localcache.Options[string, int]{Shards: 3}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := localcache.New(tt.o)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				c.Close()
			}
			if got != tt.want {
				t.Fatalf("got error %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGetSetDelete(t *testing.T) {
	var log evictLog
	c := mustNew(t, localcache.Options[string, int]{OnEvict: log.add})
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache had a")
	}
	c.Set("a", 1)
	c.Set("b", 2)
	c.Set("a", 3)
	if v, ok := c.Get("a"); !ok || v != 3 {
		t.Fatalf("got %v %v, want 3 true", v, ok)
	}
	if !c.Delete("b") {
		t.Error("Delete(b) = false, want true")
	}
	if c.Delete("missing") {
		t.Error("Delete(missing) = true, want false")
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("deleted b still there")
	}
	if c.Len() != 1 {
		t.Fatalf("Len %d, want 1", c.Len())
	}
	if n := c.Purge(); n != 1 {
		t.Errorf("Purge removed %d, want 1", n)
	}
	if c.Len() != 0 {
		t.Fatalf("Len after Purge %d, want 0", c.Len())
	}
	if got, want := log.String(), "[a=1 replaced b=2 deleted a=3 deleted]"; got != want {
		t.Errorf("OnEvict got %s, want %s", got, want)
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 2 || st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	var log evictLog
	c := mustNew(t, localcache.Options[string, int]{MaxEntries: 3, Shards: 1, OnEvict: log.add})
	c.Set("a", 1)
	c.Set("b", 2)
	c.Set("c", 3)
	c.Get("a") // a is now used more recently than b
	c.Set("d", 4)
	if _, ok := c.Get("b"); ok {
		t.Error("b survived; want it evicted as least recently used")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if got, want := log.String(), "[b=2 evicted]"; got != want {
		t.Errorf("OnEvict got %s, want %s", got, want)
	}
	if st := c.Stats(); st.Evictions != 1 || st.Entries != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestMaxEntriesAcrossShards(t *testing.T) {
	c := mustNew(t, localcache.Options[int, int]{MaxEntries: 100})
	for i := range 10_000 {
		c.Set(i, i)
		if n := c.Len(); n > 100 {
			t.Fatalf("Len %d after %d sets, want <= 100", n, i+1)
		}
	}
	if n := c.Len(); n != 100 {
		t.Errorf("Len %d, want 100", n)
	}
}

// TestByteBound floods the cache from several goroutines with values of
// random size and checks the byte total never passes MaxBytes, and that it
// matches the values actually held.
func TestByteBound(t *testing.T) {
	const maxBytes = 64 << 10
	var held atomic.Int64 // bytes of values in the cache, from OnEvict
	c := mustNew(t, localcache.Options[string, []byte]{
		MaxBytes: maxBytes,
		Cost:     func(k string, v []byte) int64 { return int64(len(k) + len(v)) },
		OnEvict: func(k string, v []byte, r localcache.EvictReason) {
			held.Add(-int64(len(k) + len(v)))
		},
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 5000 {
				k := fmt.Sprintf("k%d-%d", g, i)
				v := make([]byte, r.IntN(2048))
				held.Add(int64(len(k) + len(v)))
				c.Set(k, v)
				if b := c.Stats().Bytes; b > maxBytes {
					t.Errorf("Bytes %d > MaxBytes %d", b, maxBytes)
					return
				}
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	if st.Bytes > maxBytes || st.Bytes != held.Load() {
		t.Errorf("Bytes %d, held per OnEvict %d, MaxBytes %d", st.Bytes, held.Load(), maxBytes)
	}
	if st.Bytes < maxBytes/2 {
		t.Errorf("Bytes %d: cache badly underfilled", st.Bytes)
	}
	// A value bigger than the bound is not stored, and evicts nothing.
	c.Set("huge", make([]byte, maxBytes))
	if _, ok := c.Get("huge"); ok {
		t.Error("stored a value larger than the bound")
	}
	if got := c.Stats(); got.Entries != st.Entries {
		t.Errorf("entries went from %d to %d", st.Entries, got.Entries)
	}
}

func TestTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log evictLog
		c := mustNew(t, localcache.Options[string, int]{TTL: time.Minute, OnEvict: log.add})
		c.Set("default", 1)
		c.SetWithTTL("short", 2, time.Second)
		c.SetWithTTL("forever", 3, 0)
		time.Sleep(2 * time.Second)
		if _, ok := c.Get("short"); ok {
			t.Error("short outlived its TTL")
		}
		if _, ok := c.Get("default"); !ok {
			t.Error("default expired early")
		}
		time.Sleep(time.Minute)
		if _, ok := c.Get("default"); ok {
			t.Error("default outlived TTL")
		}
		if v, ok := c.Get("forever"); !ok || v != 3 {
			t.Error("forever expired")
		}
		if got, want := log.String(), "[short=2 expired default=1 expired]"; got != want {
			t.Errorf("OnEvict got %s, want %s", got, want)
		}
		if st := c.Stats(); st.Expirations != 2 || st.Entries != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestGetOrLoadCoalesces(t *testing.T) {
	c := mustNew(t, localcache.Options[string, int]{})
	var calls atomic.Int32
	release := make(chan struct{})
	loader := func(ctx context.Context, k string) (int, error) {
		calls.Add(1)
		<-release
		return len(k), nil
	}
	const n = 20
	var started, wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			v, err := c.GetOrLoad(context.Background(), "hello", loader)
			if err == nil && v != 5 {
				err = fmt.Errorf("got %d, want 5", v)
			}
			errs <- err
		})
	}
	started.Wait()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("loader ran %d times, want 1", got)
	}
	if v, err := c.GetOrLoad(context.Background(), "hello", loader); v != 5 || err != nil {
		t.Errorf("cached: got %v %v", v, err)
	}
	if st := c.Stats(); st.Loads != 1 || st.Entries != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestGetOrLoadLastWaiterCancelsLoad(t *testing.T) {
	c := mustNew(t, localcache.Options[string, string]{})
	loaderDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := c.GetOrLoad(ctx, "k", func(lctx context.Context, k string) (string, error) {
		cancel()
		<-lctx.Done()
		loaderDone <- lctx.Err()
		return "", lctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if err := <-loaderDone; !errors.Is(err, context.Canceled) {
		t.Errorf("loader context: %v", err)
	}
	// A later caller starts a fresh load.
	v, err := c.GetOrLoad(context.Background(), "k", func(context.Context, string) (string, error) { return "fresh", nil })
	if v != "fresh" || err != nil {
		t.Errorf("got %q %v, want fresh", v, err)
	}
}

func TestGetOrLoadPanic(t *testing.T) {
	c := mustNew(t, localcache.Options[string, int]{})
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = c.GetOrLoad(context.Background(), "k", func(context.Context, string) (int, error) {
				<-release
				panic("boom")
			})
		})
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, localcache.ErrLoaderPanic) {
			t.Errorf("waiter %d got %v, want ErrLoaderPanic", i, err)
		}
	}
	if _, ok := c.Get("k"); ok {
		t.Error("panicking load stored a value")
	}
}

func TestErrorTTL(t *testing.T) {
	errDown := errors.New("backend down")
	tests := []struct {
		name      string
		errTTL    time.Duration
		wantCalls int32
	}{
		{"off by default", 0, 3},
		{"cached for ErrorTTL", time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := mustNew(t, localcache.Options[string, int]{ErrorTTL: tt.errTTL})
				var calls atomic.Int32
				loader := func(context.Context, string) (int, error) { calls.Add(1); return 0, errDown }
				for _, step := range []time.Duration{0, 500 * time.Millisecond, time.Second} {
					time.Sleep(step)
					if _, err := c.GetOrLoad(context.Background(), "k", loader); !errors.Is(err, errDown) {
						t.Fatalf("got %v, want errDown", err)
					}
				}
				if got := calls.Load(); got != tt.wantCalls {
					t.Errorf("loader ran %d times, want %d", got, tt.wantCalls)
				}
				if _, ok := c.Get("k"); ok {
					t.Error("Get returned a cached error as a value")
				}
			})
		})
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		replaced := make(chan int, 1)
		c := mustNew(t, localcache.Options[string, int]{
			TTL: time.Minute, StaleWhileRevalidate: 10 * time.Second,
			OnEvict: func(k string, v int, r localcache.EvictReason) {
				if r == localcache.Replaced {
					replaced <- v
				}
			},
		})
		var version atomic.Int32
		release := make(chan struct{})
		loader := func(context.Context, string) (int, error) {
			if version.Add(1) > 1 {
				<-release
			}
			return int(version.Load()), nil
		}
		ctx := context.Background()
		if v, _ := c.GetOrLoad(ctx, "k", loader); v != 1 {
			t.Fatalf("got %d, want 1", v)
		}
		time.Sleep(time.Minute + 5*time.Second) // expired, inside the stale window
		for range 3 {
			if v, err := c.GetOrLoad(ctx, "k", loader); v != 1 || err != nil {
				t.Fatalf("stale read got %d %v, want 1", v, err)
			}
		}
		if _, ok := c.Get("k"); ok {
			t.Error("Get returned an expired value")
		}
		close(release)
		if old := <-replaced; old != 1 {
			t.Errorf("refresh replaced %d, want 1", old)
		}
		if v, _ := c.GetOrLoad(ctx, "k", loader); v != 2 {
			t.Errorf("after refresh got %d, want 2", v)
		}
		if got := version.Load(); got != 2 {
			t.Errorf("loader ran %d times, want 2 (one refresh)", got)
		}
		// Past the stale window a read waits for a fresh load.
		time.Sleep(2 * time.Minute)
		if v, _ := c.GetOrLoad(ctx, "k", loader); v != 3 {
			t.Errorf("past the stale window got %d, want 3", v)
		}
	})
}

func TestCloseStopsLoads(t *testing.T) {
	c, err := localcache.New(localcache.Options[string, int]{})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go c.GetOrLoad(ctx, "k", func(lctx context.Context, k string) (int, error) {
		close(entered)
		<-lctx.Done()
		return 0, lctx.Err()
	})
	<-entered
	cancel() // ...the waiter leaves; the loader would run on without Close
	c.Close()
	if _, err := c.GetOrLoad(context.Background(), "x", func(context.Context, string) (int, error) { return 1, nil }); !errors.Is(err, localcache.ErrClosed) {
		t.Errorf("after Close got %v, want ErrClosed", err)
	}
}

func TestConcurrentMixed(t *testing.T) {
	c := mustNew(t, localcache.Options[int, string]{MaxEntries: 500, TTL: time.Hour})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range 20_000 {
				k := r.IntN(2000)
				switch r.IntN(10) {
				case 0:
					c.Set(k, strconv.Itoa(k))
				case 1:
					c.Delete(k)
				case 2:
					v, err := c.GetOrLoad(context.Background(), k, func(_ context.Context, k int) (string, error) { return strconv.Itoa(k), nil })
					if err != nil || v != strconv.Itoa(k) {
						t.Errorf("GetOrLoad(%d) = %q, %v", k, v, err)
						return
					}
				default:
					if v, ok := c.Get(k); ok && v != strconv.Itoa(k) {
						t.Errorf("Get(%d) = %q", k, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 500 {
		t.Errorf("Len %d > 500", n)
	}
}

func TestHitDoesNotAllocate(t *testing.T) {
	c := mustNew(t, localcache.Options[string, []byte]{TTL: time.Hour})
	c.Set("key", []byte("value"))
	ctx := context.Background()
	loader := func(context.Context, string) ([]byte, error) { return nil, nil }
	if n := testing.AllocsPerRun(100, func() { c.Get("key") }); n != 0 {
		t.Errorf("Get hit allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.GetOrLoad(ctx, "key", loader) }); n != 0 {
		t.Errorf("GetOrLoad hit allocates %v times", n)
	}
}

func TestGetOrLoadWaiterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustNew(t, localcache.Options[string, string]{})
		release := make(chan struct{})
		var loaderCtxErr error
		var calls atomic.Int32
		loader := func(ctx context.Context, k string) (string, error) {
			calls.Add(1)
			<-release
			loaderCtxErr = ctx.Err()
			return "v", nil
		}
		ctx1, cancel1 := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() {
			_, err := c.GetOrLoad(ctx1, "k", loader)
			first <- err
		}()
		second := make(chan string, 1)
		go func() {
			v, _ := c.GetOrLoad(context.Background(), "k", loader)
			second <- v
		}()
		synctest.Wait() // both wait for the one load
		cancel1()
		synctest.Wait()
		select {
		case err := <-first:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
			}
		default:
			t.Fatal("cancelled waiter still waiting for the load")
		}
		close(release)
		if v := <-second; v != "v" {
			t.Errorf("other waiter got %q, want v", v)
		}
		if loaderCtxErr != nil {
			t.Errorf("loader's context was cancelled: %v", loaderCtxErr)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("loader ran %d times, want 1", n)
		}
	})
}

// TestInvalidationDuringLoad: a load that was running when its key was
// deleted, set or purged must not store what it read (it may be older than
// the change), though its waiters get it; a caller arriving after a Delete
// or Purge starts a new load instead of joining the old one.
func TestInvalidationDuringLoad(t *testing.T) {
	tests := []struct {
		name       string
		invalidate func(c *localcache.Cache[string, string])
		wantLate   string // what a GetOrLoad after the invalidation gets
		lateWaits  bool   // whether it waits for the old load
		wantCached string // "" for nothing cached
		discarded  uint64
	}{
		{"no invalidation", func(*localcache.Cache[string, string]) {}, "old", true, "old", 0},
		{"Delete of another key", func(c *localcache.Cache[string, string]) { c.Delete("other") }, "old", true, "old", 0},
		{"Delete", func(c *localcache.Cache[string, string]) { c.Delete("k") }, "new", false, "new", 1},
		{"Purge", func(c *localcache.Cache[string, string]) { c.Purge() }, "new", false, "new", 1},
		{"Set", func(c *localcache.Cache[string, string]) { c.Set("k", "set") }, "set", false, "set", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := mustNew(t, localcache.Options[string, string]{Shards: 1})
				db := "old" // what the loader reads
				release := make(chan struct{})
				load := func(context.Context, string) (string, error) {
					v := db // read before the write below...
					<-release
					return v, nil // ...returned after it
				}
				first := make(chan string, 1)
				go func() {
					v, _ := c.GetOrLoad(context.Background(), "k", load)
					first <- v
				}()
				synctest.Wait()
				db = "new" // the write...
				tt.invalidate(c)
				late := make(chan string, 1)
				go func() {
					v, _ := c.GetOrLoad(context.Background(), "k", func(context.Context, string) (string, error) { return db, nil })
					late <- v
				}()
				synctest.Wait()
				if waiting := len(late) == 0; waiting != tt.lateWaits {
					t.Errorf("GetOrLoad after the invalidation waits for the old load: %v, want %v", waiting, tt.lateWaits)
				}
				close(release)
				if v := <-first; v != "old" {
					t.Errorf("the old load's waiter got %q, want old", v)
				}
				if v := <-late; v != tt.wantLate {
					t.Errorf("GetOrLoad after the invalidation got %q, want %q", v, tt.wantLate)
				}
				synctest.Wait()
				if got, _ := c.Get("k"); got != tt.wantCached {
					t.Errorf("cached %q, want %q", got, tt.wantCached)
				}
				if st := c.Stats(); st.LoadsDiscarded != tt.discarded {
					t.Errorf("LoadsDiscarded %d, want %d", st.LoadsDiscarded, tt.discarded)
				}
			})
		})
	}
}

func TestStatsJSON(t *testing.T) {
	c := mustNew(t, localcache.Options[string, int]{})
	c.Set("a", 1)
	c.Get("a")
	c.Get("b")
	b, err := json.Marshal(c.Stats())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"hits":1,"misses":1,"loads":0,"load_errors":0,"loads_discarded":0,"evictions":0,"expirations":0,"entries":1,"bytes":0}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

// TestLoad: Load reads through a cached value and stores the fresh one,
// unless its key is invalidated meanwhile; an older GetOrLoad load running
// alongside must not overwrite what Load stored.
func TestLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := mustNew(t, localcache.Options[string, string]{})
		c.Set("k", "cached")
		v, err := c.Load(ctx, "k", func(context.Context, string) (string, error) { return "fresh", nil })
		if v != "fresh" || err != nil {
			t.Fatalf("Load got %q, %v; want fresh, nil", v, err)
		}
		if got, _ := c.Get("k"); got != "fresh" {
			t.Errorf("after Load cached %q, want fresh", got)
		}

		// Delete while Load runs: not stored.
		v, _ = c.Load(ctx, "k", func(context.Context, string) (string, error) { c.Delete("k"); return "read before the delete", nil })
		if _, ok := c.Get("k"); ok || v != "read before the delete" {
			t.Errorf("Load across a Delete returned %q and stored it: %v; want returned, not stored", v, ok)
		}

		// An older GetOrLoad load ends after Load stored: Load's value stays.
		release := make(chan struct{})
		go c.GetOrLoad(ctx, "k", func(context.Context, string) (string, error) {
			<-release
			return "stale", nil
		})
		synctest.Wait()
		c.Load(ctx, "k", func(context.Context, string) (string, error) { return "primary", nil })
		close(release)
		synctest.Wait()
		if got, _ := c.Get("k"); got != "primary" {
			t.Errorf("cached %q, want primary (the older load must not overwrite it)", got)
		}

		c.Close()
		if _, err := c.Load(ctx, "k", func(context.Context, string) (string, error) { return "x", nil }); !errors.Is(err, localcache.ErrClosed) {
			t.Errorf("after Close got %v, want ErrClosed", err)
		}
	})
}
