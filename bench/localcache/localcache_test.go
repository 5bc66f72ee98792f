// Package localcache_test compares localcache with golang-lru/v2, otter v2
// and ristretto v2 on the same Zipf traces, and its response cache's hit
// path with a bare handler and with a Redis GET on loopback.
package localcache_test

import (
	"fmt"
	"math/rand"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/maypok86/otter/v2"

	"github.com/sharednothing/sharednothing/localcache"
)

// cache is what every contender is driven through.
type cache interface {
	Get(string) (int, bool)
	Set(string, int)
	Close()
}

type contender struct {
	name string
	make func(size int) cache
}

var contenders = []contender{
	{"localcache", func(n int) cache {
		c, err := localcache.New(localcache.Options[string, int]{MaxEntries: n})
		if err != nil {
			panic(err)
		}
		return ours{c}
	}},
	{"localcache-ttl", func(n int) cache {
		c, err := localcache.New(localcache.Options[string, int]{MaxEntries: n, TTL: time.Hour})
		if err != nil {
			panic(err)
		}
		return ours{c}
	}},
	{"lru.Cache", func(n int) cache {
		c, err := lru.New[string, int](n)
		if err != nil {
			panic(err)
		}
		return hashicorp{c}
	}},
	{"expirable.LRU", func(n int) cache {
		return expLRU{expirable.NewLRU[string, int](n, nil, time.Hour)}
	}},
	{"otter", func(n int) cache {
		return otterC{otter.Must(&otter.Options[string, int]{MaximumSize: n})}
	}},
	{"ristretto", func(n int) cache {
		c, err := ristretto.NewCache(&ristretto.Config[string, int]{
			NumCounters: int64(10 * n), MaxCost: int64(n), BufferItems: 64, IgnoreInternalCost: true,
		})
		if err != nil {
			panic(err)
		}
		return ristrettoC{c}
	}},
}

type ours struct {
	c *localcache.Cache[string, int]
}

func (c ours) Get(k string) (int, bool) { return c.c.Get(k) }
func (c ours) Set(k string, v int)      { c.c.Set(k, v) }
func (c ours) Close()                   { c.c.Close() }

type hashicorp struct{ c *lru.Cache[string, int] }

func (c hashicorp) Get(k string) (int, bool) { return c.c.Get(k) }
func (c hashicorp) Set(k string, v int)      { c.c.Add(k, v) }
func (c hashicorp) Close()                   {}

type expLRU struct{ c *expirable.LRU[string, int] }

func (c expLRU) Get(k string) (int, bool) { return c.c.Get(k) }
func (c expLRU) Set(k string, v int)      { c.c.Add(k, v) }
func (c expLRU) Close()                   {}

type otterC struct{ c *otter.Cache[string, int] }

func (c otterC) Get(k string) (int, bool) { return c.c.GetIfPresent(k) }
func (c otterC) Set(k string, v int)      { c.c.Set(k, v) }
func (c otterC) Close()                   {}

type ristrettoC struct{ c *ristretto.Cache[string, int] }

func (c ristrettoC) Get(k string) (int, bool) { return c.c.Get(k) }
func (c ristrettoC) Set(k string, v int)      { c.c.Set(k, v, 1) }
func (c ristrettoC) Close()                   { c.c.Close() }

const (
	keySpace  = 16 << 10
	traceSize = 1 << 20
)

var keys = func() []string {
	ks := make([]string, keySpace)
	for i := range ks {
		ks[i] = "key:" + strconv.Itoa(i)
	}
	return ks
}()

// zipfTrace returns n key indices drawn from a Zipf distribution over
// keyspace (s = 1.01), the same for every contender.
func zipfTrace(n, keyspace int, seed int64) []int32 {
	z := rand.NewZipf(rand.New(rand.NewSource(seed)), 1.01, 1, uint64(keyspace-1))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(z.Uint64())
	}
	return t
}

var trace = zipfTrace(traceSize, keySpace, 1)

// prefilled returns a contender's cache holding every key.
func prefilled(b *testing.B, c contender) cache {
	cc := c.make(keySpace)
	for i, k := range keys {
		cc.Set(k, i)
	}
	if r, ok := cc.(ristrettoC); ok {
		r.c.Wait()
	}
	b.Cleanup(cc.Close)
	return cc
}

// run drives op over the trace from g goroutines (1 means the benchmark's
// own loop; with GOMAXPROCS above g, RunParallel's minimum of GOMAXPROCS
// goroutines) and reports the fraction of Gets that hit.
func run(b *testing.B, g int, op func(i int32) bool) {
	var hits, gets atomic.Int64
	b.ReportAllocs()
	if g == 1 {
		i, h, n := 0, int64(0), int64(0)
		for b.Loop() {
			if op(trace[i&(traceSize-1)]) {
				h++
			}
			n++
			i++
		}
		hits.Add(h)
		gets.Add(n)
	} else {
		var seed atomic.Int32
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((g + procs - 1) / procs) // g goroutines when GOMAXPROCS divides g
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(1)) * 7919 * 16
			h, n := int64(0), int64(0)
			for pb.Next() {
				if op(trace[i&(traceSize-1)]) {
					h++
				}
				n++
				i++
			}
			hits.Add(h)
			gets.Add(n)
		})
	}
	if n := gets.Load(); n > 0 {
		b.ReportMetric(100*float64(hits.Load())/float64(n), "hit%")
	}
}

// BenchmarkGetParallel: Zipf-distributed Get hits on a prefilled cache.
func BenchmarkGetParallel(b *testing.B) {
	for _, g := range []int{1, 2, 8} {
		for _, c := range contenders {
			b.Run(fmt.Sprintf("g=%d/%s", g, c.name), func(b *testing.B) {
				cc := prefilled(b, c)
				run(b, g, func(i int32) bool {
					_, ok := cc.Get(keys[i])
					return ok
				})
			})
		}
	}
}

// BenchmarkReadWrite: 75% Get, 25% Set on the same trace, prefilled.
func BenchmarkReadWrite(b *testing.B) {
	for _, g := range []int{1, 2, 8} {
		for _, c := range contenders {
			b.Run(fmt.Sprintf("g=%d/%s", g, c.name), func(b *testing.B) {
				cc := prefilled(b, c)
				run(b, g, func(i int32) bool {
					if i&3 == 3 {
						cc.Set(keys[i], int(i))
						return true
					}
					_, ok := cc.Get(keys[i])
					return ok
				})
			})
		}
	}
}

// BenchmarkHitRatio replays a Zipf trace over 16k keys through a cache a
// tenth that size, setting every miss; the hit% metric is what counts.
func BenchmarkHitRatio(b *testing.B) {
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			cc := c.make(keySpace / 10)
			b.Cleanup(cc.Close)
			run(b, 1, func(i int32) bool {
				if _, ok := cc.Get(keys[i]); ok {
					return true
				}
				cc.Set(keys[i], int(i))
				return false
			})
		})
	}
}
