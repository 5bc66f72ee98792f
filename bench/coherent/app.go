package coherent

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/localcache"
	"github.com/sharednothing/sharednothing/replicapin"
)

// newApp is the setup README.md's "Coherence across instances and
// replicas" section shows (with pgxListener from pgx.go), kept here so that
// it keeps compiling.
var _ = newApp

func newApp(primaryDSN, replicaDSN string, secret []byte) (http.Handler, func(), error) {
	primary, err := sql.Open("pgx", primaryDSN)
	if err != nil {
		return nil, nil, err
	}
	replica, err := sql.Open("pgx", replicaDSN)
	if err != nil {
		return nil, nil, err
	}
	db, err := replicapin.New(primary, []replicapin.Replica{{DB: replica}}, replicapin.Options{
		Key: sharednothing.DeriveKey(secret, "replicapin"),
	})
	if err != nil {
		return nil, nil, err
	}
	bus, err := coherent.New(coherent.Options{
		DB: primary,
		Dial: func(ctx context.Context) (coherent.Listener, error) {
			conn, err := pgx.Connect(ctx, primaryDSN)
			if err != nil {
				return nil, err
			}
			return pgxListener{conn}, nil
		},
		Replicas: coherent.Replicapin(db),
	})
	if err != nil {
		return nil, nil, err
	}

	// The home page, cached for minutes, purged by tag on every instance.
	pageCache, err := localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 64 << 20})
	if err != nil {
		return nil, nil, err
	}
	pages, err := coherent.NewPages(bus, "pages", pageCache)
	if err != nil {
		return nil, nil, err
	}
	// Per-user photo counts, invalidated by key on every instance.
	countCache, err := localcache.New(localcache.Options[string, int]{MaxEntries: 100_000, TTL: 10 * time.Minute})
	if err != nil {
		return nil, nil, err
	}
	counts, err := coherent.NewCache(bus, "photo-counts", countCache)
	if err != nil {
		return nil, nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := db.Read(r.Context(), func(q *sql.DB) error {
			return q.QueryRowContext(r.Context(), `SELECT count(*) FROM photos`).Scan(&n)
		}); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		localcache.Tag(r, "photos")
		w.Header().Set("Cache-Control", "public, max-age=300")
		fmt.Fprintf(w, "%d photos\n", n)
	})
	mux.HandleFunc("GET /users/{id}/count", func(w http.ResponseWriter, r *http.Request) {
		n, err := counts.GetOrLoad(r.Context(), r.PathValue("id"), func(ctx context.Context, id string) (int, error) {
			var n int
			_, err := db.Read(ctx, func(q *sql.DB) error {
				return q.QueryRowContext(ctx, `SELECT count(*) FROM photos WHERE owner = $1`, id).Scan(&n)
			})
			return n, err
		})
		if err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%d\n", n)
	})
	mux.HandleFunc("POST /users/{id}/photos", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := r.PathValue("id")
		if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO photos (owner) VALUES ($1)`, id); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		// After the commit: drop the home page and the user's count on
		// every instance. A failure only leaves other instances on TTL.
		if err := bus.Send(ctx, pages.Tag("photos"), counts.Key(id)); err != nil {
			fmt.Println("coherent:", err) // log it; the upload succeeded
		}
		w.WriteHeader(http.StatusCreated)
	})

	// replicapin outermost, then coherent's refill marks, then the cache.
	h := db.Handler(pages.Handler(pageCache.Handler(mux)))
	stop := func() { bus.Close(); db.Close(); primary.Close(); replica.Close() }
	return h, stop, nil
}
