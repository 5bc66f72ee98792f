package localcache_test

import (
	"context"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
)

// zipfKeys are 16 384 string keys; zipfTrace draws 1 Mi indexes into them
// from a Zipf distribution (s = 1.01), the trace bench/localcache uses too.
var (
	zipfKeys = func() []string {
		ks := make([]string, 16<<10)
		for i := range ks {
			ks[i] = "key:" + strconv.Itoa(i)
		}
		return ks
	}()
	zipfTrace = func() []int32 {
		z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.01, 1, uint64(len(zipfKeys)-1))
		t := make([]int32, 1<<20)
		for i := range t {
			t[i] = int32(z.Uint64())
		}
		return t
	}()
)

func zipfCache(b *testing.B, ttl time.Duration) *localcache.Cache[string, int] {
	c := mustNew(b, localcache.Options[string, int]{MaxEntries: len(zipfKeys), TTL: ttl})
	for i, k := range zipfKeys {
		c.Set(k, i)
	}
	return c
}

// parallelZipf runs op over the Zipf trace on GOMAXPROCS goroutines (run
// with -cpu 2,8 for 2 and 8 goroutines), each starting at its own offset.
func parallelZipf(b *testing.B, op func(key string)) {
	var seed atomic.Int32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1)) * 7919 * 16
		for pb.Next() {
			op(zipfKeys[zipfTrace[i&(len(zipfTrace)-1)]])
			i++
		}
	})
}

// BenchmarkGetZipf measures parallel Get hits: the path the hit counters,
// the clock and the index are tuned for (see the notes in cache.go).
func BenchmarkGetZipf(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"ttl=0", 0}, {"ttl=1h", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			c := zipfCache(b, bc.ttl)
			parallelZipf(b, func(k string) { c.Get(k) })
		})
	}
}

// BenchmarkGetOrLoadZipf measures parallel GetOrLoad hits with a TTL.
func BenchmarkGetOrLoadZipf(b *testing.B) {
	c := zipfCache(b, time.Hour)
	ctx := context.Background()
	load := func(_ context.Context, k string) (int, error) { return len(k), nil }
	parallelZipf(b, func(k string) { c.GetOrLoad(ctx, k, load) })
}

// BenchmarkSet measures replacing values of present keys on one goroutine.
func BenchmarkSet(b *testing.B) {
	c := zipfCache(b, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Set(zipfKeys[zipfTrace[i&(len(zipfTrace)-1)]], i)
		i++
	}
}

func BenchmarkResponseCache(b *testing.B) {
	body := make([]byte, 4096)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body)
	})
	rc, err := localcache.NewResponseCache(localcache.ResponseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", h}, {"hit", rc.Handler(h)}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/page?a=1", nil)
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
