package coherent_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/internal/pgwire"
	"github.com/sharednothing/sharednothing/localcache"
)

// Two instances of an application, each with its own Bus, listener
// connection and cache of user names. A write on one invalidates the key
// on both; the other loads the new value on its next read. (The example
// runs against the package's test cluster with the test driver; an
// application uses pgx and the adapter in the package documentation.)
func Example() {
	ctx := context.Background()
	primary, err := sql.Open(pgwire.DriverName, cluster.Primary.DSN)
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	if _, err := primary.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS example_users (id text PRIMARY KEY, name text)`); err != nil {
		log.Fatal(err)
	}
	if _, err := primary.ExecContext(ctx, `INSERT INTO example_users VALUES ('7', 'Ada') ON CONFLICT (id) DO UPDATE SET name = 'Ada'`); err != nil {
		log.Fatal(err)
	}

	dial := func(ctx context.Context) (coherent.Listener, error) {
		conn, err := pgwire.Connect(ctx, cluster.Primary.DSN)
		if err != nil {
			return nil, err
		}
		return wireListener{conn}, nil
	}
	loadName := func(ctx context.Context, id string) (string, error) {
		var name string
		err := primary.QueryRowContext(ctx, `SELECT name FROM example_users WHERE id = $1`, id).Scan(&name)
		return name, err
	}
	type instance struct {
		bus     *coherent.Bus
		names   *coherent.Cache[string]
		dropped chan string // keys the bus dropped from this instance's cache
	}
	start := func() instance {
		bus, err := coherent.New(coherent.Options{Dial: dial, DB: primary, Channel: "example"})
		if err != nil {
			log.Fatal(err)
		}
		dropped := make(chan string, 16)
		local, err := localcache.New(localcache.Options[string, string]{
			MaxEntries: 1000,
			TTL:        10 * time.Minute,
			OnEvict: func(key, _ string, reason localcache.EvictReason) {
				if reason == localcache.Deleted {
					dropped <- key
				}
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		names, err := coherent.NewCache(bus, "names", local)
		if err != nil {
			log.Fatal(err)
		}
		if err := bus.WaitConnected(ctx); err != nil { // a real instance need not wait
			log.Fatal(err)
		}
		return instance{bus, names, dropped}
	}
	a, b := start(), start()
	defer a.bus.Close()
	defer b.bus.Close()

	name, _ := b.names.GetOrLoad(ctx, "7", loadName)
	fmt.Println("b reads:", name)

	// Instance a handles a rename: write, then tell every instance.
	if _, err := primary.ExecContext(ctx, `UPDATE example_users SET name = 'Ada Lovelace' WHERE id = '7'`); err != nil {
		log.Fatal(err)
	}
	if err := a.bus.Send(ctx, a.names.Key("7")); err != nil {
		log.Print(err) // the write stands; other instances catch up by TTL
	}

	<-b.dropped // only so that the output is deterministic: b heard it
	name, _ = b.names.GetOrLoad(ctx, "7", loadName)
	fmt.Println("b reads:", name)
	// Output:
	// b reads: Ada
	// b reads: Ada Lovelace
}

// Two instances cache the home page for ten minutes. An upload on one
// purges the page's tag on both; the other instance renders it anew on
// its next request.
func ExampleNewPages() {
	ctx := context.Background()
	primary, err := sql.Open(pgwire.DriverName, cluster.Primary.DSN)
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	if _, err := primary.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS example_photos (id serial PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}
	if _, err := primary.ExecContext(ctx, `TRUNCATE example_photos`); err != nil {
		log.Fatal(err)
	}
	home := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if err := primary.QueryRowContext(r.Context(), `SELECT count(*) FROM example_photos`).Scan(&n); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		localcache.Tag(r, "photos")
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "%d photos", n)
	})
	type instance struct {
		bus    *coherent.Bus
		pages  *coherent.Pages
		h      http.Handler
		purged chan string // tags the bus purged from this instance's cache
	}
	start := func() instance {
		bus, err := coherent.New(coherent.Options{
			DB:      primary,
			Channel: "example_pages",
			Dial: func(ctx context.Context) (coherent.Listener, error) {
				conn, err := pgwire.Connect(ctx, cluster.Primary.DSN)
				if err != nil {
					return nil, err
				}
				return wireListener{conn}, nil
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		rc, err := localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 1 << 20})
		if err != nil {
			log.Fatal(err)
		}
		watched := tagWatcher{rc, make(chan string, 16)}
		pages, err := coherent.NewPages(bus, "pages", watched)
		if err != nil {
			log.Fatal(err)
		}
		if err := bus.WaitConnected(ctx); err != nil { // a real instance need not wait
			log.Fatal(err)
		}
		return instance{bus, pages, pages.Handler(rc.Handler(home)), watched.purged}
	}
	get := func(in instance) string {
		rec := httptest.NewRecorder()
		in.h.ServeHTTP(rec, httptest.NewRequest("GET", "http://example.com/", nil))
		return rec.Body.String() + " (" + rec.Header().Get("X-Cache") + ")"
	}
	a, b := start(), start()
	defer a.bus.Close()
	defer b.bus.Close()

	get(b)
	fmt.Println("b:", get(b))

	// Instance a handles an upload.
	if _, err := primary.ExecContext(ctx, `INSERT INTO example_photos DEFAULT VALUES`); err != nil {
		log.Fatal(err)
	}
	if err := a.bus.Send(ctx, a.pages.Tag("photos")); err != nil {
		log.Print(err)
	}
	<-b.purged // only so that the output is deterministic: b heard it
	fmt.Println("b:", get(b))
	fmt.Println("b:", get(b))
	// Output:
	// b: 0 photos (HIT)
	// b: 1 photos (MISS)
	// b: 1 photos (HIT)
}

// tagWatcher tells the example when the bus purged a tag, so that its
// output does not depend on timing.
type tagWatcher struct {
	*localcache.ResponseCache
	purged chan string
}

func (w tagWatcher) PurgeTag(tag string) int {
	n := w.ResponseCache.PurgeTag(tag)
	w.purged <- tag
	return n
}
