package localcache_test

import (
	"context"
	"expvar"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
)

func ExampleCache_GetOrLoad() {
	users, err := localcache.New(localcache.Options[int, string]{
		MaxEntries: 10_000,
		TTL:        time.Minute,
	})
	if err != nil {
		panic(err)
	}
	defer users.Close()

	loads := 0
	loadUser := func(ctx context.Context, id int) (string, error) {
		loads++ // e.g. a database query
		return fmt.Sprintf("user-%d", id), nil
	}
	for range 3 {
		name, err := users.GetOrLoad(context.Background(), 42, loadUser)
		fmt.Println(name, err)
	}
	fmt.Println("loads:", loads, "hits:", users.Stats().Hits)
	// Output:
	// user-42 <nil>
	// user-42 <nil>
	// user-42 <nil>
	// loads: 1 hits: 2
}

func ExampleNew_maxBytes() {
	thumbs, err := localcache.New(localcache.Options[string, []byte]{
		MaxBytes: 64 << 20,
		Cost:     func(k string, v []byte) int64 { return int64(len(k) + len(v) + 200) },
	})
	if err != nil {
		panic(err)
	}
	defer thumbs.Close()
	thumbs.Set("cat.jpg/256", make([]byte, 30_000))
	fmt.Println(thumbs.Stats().Bytes)

	_, err = localcache.New(localcache.Options[string, []byte]{TTL: -time.Second})
	fmt.Println(err)
	// Output:
	// 30211
	// localcache: New: Options.TTL must not be negative
}

// A write drops the cached copy; the next read loads the new value. Delete
// also stops a load that was already running from caching what it read
// before the write.
func ExampleCache_Delete() {
	names, err := localcache.New(localcache.Options[int, string]{})
	if err != nil {
		panic(err)
	}
	defer names.Close()
	db := map[int]string{1: "alice", 2: "bob"} // stands in for a database
	load := func(_ context.Context, id int) (string, error) { return db[id], nil }
	ctx := context.Background()

	name, _ := names.GetOrLoad(ctx, 1, load)
	fmt.Println(name)

	db[1] = "alicia"             // the write...
	fmt.Println(names.Delete(1)) // ...then the invalidation: true, it was cached
	name, _ = names.GetOrLoad(ctx, 1, load)
	fmt.Println(name)

	names.GetOrLoad(ctx, 2, load)
	fmt.Println("purged:", names.Purge())
	// Output:
	// alice
	// true
	// alicia
	// purged: 2
}

func ExampleCache_Stats() {
	sessions, err := localcache.New(localcache.Options[string, int]{})
	if err != nil {
		panic(err)
	}
	defer sessions.Close()
	expvar.Publish("sessions_cache", expvar.Func(func() any { return sessions.Stats() }))

	sessions.Set("a", 1)
	sessions.Get("a")
	sessions.Get("b")
	fmt.Println(expvar.Get("sessions_cache")) // as /debug/vars shows it
	// Output:
	// {"hits":1,"misses":1,"loads":0,"load_errors":0,"loads_discarded":0,"evictions":0,"expirations":0,"entries":1,"bytes":0}
}

func ExampleResponseCache_Handler() {
	pages, err := localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 32 << 20})
	if err != nil {
		panic(err)
	}
	renders := 0
	home := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		renders++
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintln(w, "hello, world")
	})
	srv := httptest.NewServer(pages.Handler(home))
	defer srv.Close()

	for range 3 {
		res, err := http.Get(srv.URL + "/?utm=1")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s %s", res.Header.Get("X-Cache"), body)
	}
	fmt.Println("renders:", renders)
	// Output:
	// MISS hello, world
	// HIT hello, world
	// HIT hello, world
	// renders: 1
}
