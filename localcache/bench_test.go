package localcache_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/sharednothing/sharednothing/localcache"
)

var benchKeys = func() []string {
	ks := make([]string, 4096)
	for i := range ks {
		ks[i] = "key:" + strconv.Itoa(i)
	}
	return ks
}()

func benchCache(b *testing.B) *localcache.Cache[string, int] {
	c := mustNew(b, localcache.Options[string, int]{MaxEntries: len(benchKeys)})
	for i, k := range benchKeys {
		c.Set(k, i)
	}
	return c
}

func BenchmarkGetHit(b *testing.B) {
	c := benchCache(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(benchKeys[i&(len(benchKeys)-1)])
		i++
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	c := benchCache(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(benchKeys[i&(len(benchKeys)-1)])
			i++
		}
	})
}

func BenchmarkSet(b *testing.B) {
	c := benchCache(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Set(benchKeys[i&(len(benchKeys)-1)], i)
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
