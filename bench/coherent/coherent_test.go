package coherent

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/internal/pgtest"
	"github.com/sharednothing/sharednothing/internal/reqstate"
	"github.com/sharednothing/sharednothing/localcache"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Run(m, 0, &cluster) }

// watched is a typed cache that reports every Delete to a callback, so
// the benchmark sees the moment a key is dropped without polling.
type watched struct {
	*localcache.Cache[string, string]
	onDelete atomic.Pointer[func(string)]
}

func (w *watched) Delete(key string) bool {
	ok := w.Cache.Delete(key)
	if f := w.onDelete.Load(); f != nil {
		(*f)(key)
	}
	return ok
}

type instance struct {
	bus   *coherent.Bus
	local *watched
	users *coherent.Cache[string]
}

func openPrimary(b *testing.B) *sql.DB {
	c := pgtest.Need(b, cluster)
	db, err := sql.Open("pgx", c.Primary.DSN)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxIdleConns(32)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v bigint NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	return db
}

func newInstance(b *testing.B, db *sql.DB, channel string) *instance {
	bus, err := coherent.New(coherent.Options{DB: db, Dial: Dial(cluster.Primary.DSN), Channel: channel})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bus.Close() })
	lc, err := localcache.New(localcache.Options[string, string]{MaxEntries: 1 << 16, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	in := &instance{bus: bus, local: &watched{Cache: lc}}
	if in.users, err = coherent.NewCache(bus, "users", coherent.TypedCache[string](in.local)); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		b.Fatal("listener not connected: ", err)
	}
	return in
}

// percentile returns the p-th percentile (0..1) of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkLatency: an UPDATE commits on the primary, the writing instance
// calls Send, and the clock stops when the last of three other instances'
// caches has dropped the key. p50/p99 are over the iterations.
func BenchmarkLatency(b *testing.B) {
	db := openPrimary(b)
	a := newInstance(b, db, "bench_latency")
	var listeners []*instance
	for range 3 {
		listeners = append(listeners, newInstance(b, db, "bench_latency"))
	}
	dropped := make(chan struct{}, 3)
	var want atomic.Value
	for _, in := range listeners {
		f := func(key string) {
			if w, _ := want.Load().(string); key == w {
				dropped <- struct{}{}
			}
		}
		in.local.onDelete.Store(&f)
	}
	ctx := context.Background()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		key := fmt.Sprint("lat", i)
		want.Store(key)
		if _, err := db.ExecContext(ctx, `INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, key, i); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := a.bus.Send(ctx, a.users.Key(key)); err != nil {
			b.Fatal(err)
		}
		for range listeners {
			select {
			case <-dropped:
			case <-time.After(5 * time.Second):
				b.Fatal("an instance did not drop the key within 5 s")
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkThroughput: invalidations per second through one primary,
// sent by 16 concurrent senders (one key per Send: batching is the Bus's
// group commit) or 100 keys per Send from one sender, counted when the
// listening instance has applied them all.
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range []struct {
		name    string
		senders int
		keys    int
	}{{"senders=16/keys=1", 16, 1}, {"senders=1/keys=100", 1, 100}, {"senders=1/keys=1", 1, 1}} {
		b.Run(tc.name, func(b *testing.B) {
			db := openPrimary(b)
			channel := fmt.Sprintf("bench_tp_%d_%d", tc.senders, tc.keys)
			a := newInstance(b, db, channel)
			l := newInstance(b, db, channel)
			items := make([]coherent.Item, tc.keys)
			for i := range items {
				items[i] = a.users.Key(fmt.Sprintf("user:%08d", i))
			}
			// The listener counts the keys it drops and says when it has
			// dropped as many as were sent.
			var dropped, want atomic.Int64
			all := make(chan struct{})
			var once sync.Once
			check := func() {
				if w := want.Load(); w > 0 && dropped.Load() >= w {
					once.Do(func() { close(all) })
				}
			}
			onDelete := func(string) { dropped.Add(1); check() }
			l.local.onDelete.Store(&onDelete)
			ctx := context.Background()
			var n atomic.Int64
			start := time.Now()
			b.SetParallelism(max(1, tc.senders/2)) // 2 cores
			if tc.senders == 1 {
				for b.Loop() {
					if err := a.bus.Send(ctx, items...); err != nil {
						b.Fatal(err)
					}
					n.Add(int64(len(items)))
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := a.bus.Send(ctx, items...); err != nil {
							b.Error(err)
							return
						}
						n.Add(int64(len(items)))
					}
				})
			}
			want.Store(n.Load())
			check()
			select {
			case <-all:
			case <-time.After(30 * time.Second):
				b.Fatalf("listener dropped %d of %d keys", dropped.Load(), n.Load())
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "inv/s")
			b.ReportMetric(float64(a.bus.Stats().Sent)/elapsed.Seconds(), "notify/s")
		})
	}
}

// BenchmarkWrite: what Send and SendTx add to a write request's database
// work: one UPDATE in a transaction, alone and with the invalidation.
func BenchmarkWrite(b *testing.B) {
	db := openPrimary(b)
	a := newInstance(b, db, "bench_write")
	ctx := context.Background()
	update := func(tx *sql.Tx, i int) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES ('w', $1) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, i); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(i int)
	}{
		{"plain", func(i int) {
			tx, _ := db.BeginTx(ctx, nil)
			update(tx, i)
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}},
		{"Send", func(i int) {
			tx, _ := db.BeginTx(ctx, nil)
			update(tx, i)
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if err := a.bus.Send(ctx, a.users.Key("w")); err != nil {
				b.Fatal(err)
			}
		}},
		{"SendTx", func(i int) {
			tx, _ := db.BeginTx(ctx, nil)
			update(tx, i)
			if err := a.bus.SendTx(ctx, tx, a.users.Key("w")); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				tc.run(i)
			}
		})
	}
}

// BenchmarkHit: a cache hit through localcache's GetOrLoad, and through
// coherent.Cache.GetOrLoad with a plain context and with a request's
// context (reqstate present, not pinned). No database is involved.
func BenchmarkHit(b *testing.B) {
	bus, err := coherent.New(coherent.Options{
		DB:           &sql.DB{},
		Dial:         func(context.Context) (coherent.Listener, error) { return nil, os.ErrNotExist },
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) {},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	lc, err := localcache.New(localcache.Options[string, string]{MaxEntries: 1 << 16, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	users, err := coherent.NewCache(bus, "users", lc)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("user:", i)
		lc.Set(keys[i], "value")
	}
	load := func(context.Context, string) (string, error) { panic("miss") }
	// A request's context as the toolkit's middlewares leave it: a
	// reqstate.State with the session and pin cookies registered.
	req, st := reqstate.Ensure(httptest.NewRequest("GET", "/", nil))
	st.AddCookie(reqstate.Cookie{Name: "session", Kind: reqstate.Session})
	st.AddCookie(reqstate.Cookie{Name: "_pin", Kind: reqstate.Pin})
	reqCtx := req.Context()
	for _, tc := range []struct {
		name string
		get  func(ctx context.Context, k string) (string, error)
		ctx  context.Context
	}{
		{"localcache", func(ctx context.Context, k string) (string, error) { return lc.GetOrLoad(ctx, k, load) }, context.Background()},
		{"coherent", func(ctx context.Context, k string) (string, error) { return users.GetOrLoad(ctx, k, load) }, context.Background()},
		{"localcache/request", func(ctx context.Context, k string) (string, error) { return lc.GetOrLoad(ctx, k, load) }, reqCtx},
		{"coherent/request", func(ctx context.Context, k string) (string, error) { return users.GetOrLoad(ctx, k, load) }, reqCtx},
		// What the pinned check would cost with a lock-free accessor on
		// reqstate.State: the context lookup alone.
		{"localcache+lookup/request", func(ctx context.Context, k string) (string, error) {
			if reqstate.From(ctx) == nil {
				panic("no state")
			}
			return lc.GetOrLoad(ctx, k, load)
		}, reqCtx},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					tc.get(tc.ctx, keys[i&1023])
				}
			})
		})
	}
}
