package replicapin_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/pgwire"
	"github.com/sharednothing/sharednothing/replicapin"
)

// The PostgreSQL examples run against this package's test cluster, through
// a stdlib-only driver. An app opens its databases with its own driver,
// usually pgx: import _ "github.com/jackc/pgx/v5/stdlib" and
// sql.Open("pgx", dsn).
const driverName = pgwire.DriverName

func primaryDSN() string { return cluster.Primary.DSN }
func replicaDSN() string { return cluster.Replicas[0].DSN }

var secret = []byte("an application secret of 32+ bytes")

// A handler writes through Writer and reads through Read; the middleware
// pins the client after a successful write, so the read that follows sees
// it even though the replica may not have replayed it yet. A write that
// fails pins nothing.
func Example() {
	primary, _ := sql.Open(driverName, primaryDSN())
	replica, _ := sql.Open(driverName, replicaDSN())
	defer primary.Close()
	defer replica.Close()
	if _, err := primary.Exec(`CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL CHECK (body <> ''))`); err != nil {
		log.Fatal(err)
	}

	db, err := replicapin.New(primary, []replicapin.Replica{{Name: "replica-1", DB: replica}}, replicapin.Options{
		Key:    sharednothing.DeriveKey(secret, "replicapin"),
		Cookie: sharednothing.Cookie{Insecure: true}, // httptest serves plain HTTP
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO notes (body) VALUES ($1)`, r.FormValue("body"))
		if err != nil { // here: an empty note breaks the CHECK
			http.Error(w, "not saved", http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /notes/last", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var body string
		from, err := db.Read(ctx, func(q *sql.DB) error {
			return q.QueryRowContext(ctx, `SELECT body FROM notes ORDER BY id DESC LIMIT 1`).Scan(&body)
		})
		if err != nil {
			http.Error(w, "cannot load", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s (read from the %s)", body, from)
	})
	srv := httptest.NewServer(db.Handler(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	post := func(body string) {
		res, err := client.PostForm(srv.URL+"/notes", url.Values{"body": {body}})
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
		fmt.Println("POST:", res.Status, "pinned:", len(res.Cookies()) > 0)
	}
	post("")
	post("hello, replicas")

	res, err := client.Get(srv.URL + "/notes/last")
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println("GET:", string(b))
	// Output:
	// POST: 422 Unprocessable Entity pinned: false
	// POST: 201 Created pinned: true
	// GET: hello, replicas (read from the primary)
}

// AtLeast serves a read that must see a given write, such as a cache refill
// after another instance announced a change at a position: the read uses a
// replica only once that replica has replayed the position.
func ExampleAtLeast() {
	primary, _ := sql.Open(driverName, primaryDSN())
	replica, _ := sql.Open(driverName, replicaDSN())
	defer primary.Close()
	defer replica.Close()
	db, err := replicapin.New(primary, []replicapin.Replica{{DB: replica}}, replicapin.Options{
		Key: sharednothing.DeriveKey(secret, "replicapin"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx := context.Background()
	if _, err := primary.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS counters (name text PRIMARY KEY, n int NOT NULL);
		INSERT INTO counters VALUES ('visits', 41) ON CONFLICT (name) DO UPDATE SET n = counters.n;
		UPDATE counters SET n = n + 1 WHERE name = 'visits'`); err != nil {
		log.Fatal(err)
	}
	at, err := db.PrimaryPosition(ctx) // after the commit
	if err != nil {
		log.Fatal(err)
	}

	var n int
	_, err = db.Read(replicapin.AtLeast(ctx, at), func(q *sql.DB) error {
		return q.QueryRowContext(ctx, `SELECT n FROM counters WHERE name = 'visits'`).Scan(&n)
	})
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// TimeWindow pins for a fixed time after each successful write, for
// databases without replication positions. (The "stub" driver of this
// example answers every query; an app uses its database's driver.)
func ExampleTimeWindow() {
	primary, _ := sql.Open("stub", "primary")
	replica, _ := sql.Open("stub", "replica")
	defer primary.Close()
	defer replica.Close()
	db, err := replicapin.New(primary, []replicapin.Replica{{DB: replica}}, replicapin.Options{
		Key:       sharednothing.DeriveKey(secret, "replicapin"),
		Positions: replicapin.TimeWindow(2 * time.Second), // as Rails does
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if _, err := db.Writer(ctx).ExecContext(ctx, "UPDATE …"); err != nil || r.FormValue("fail") != "" {
			http.Error(w, "not saved", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, target := range []string{"/save", "/save?fail=1"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", target, nil))
		res := rec.Result()
		fmt.Println(target, res.StatusCode)
		// The cookie lives for MaxPin (30 s); once a replica has been seen
		// 2 s past the write, the next response clears it.
		for _, c := range res.Cookies() {
			fmt.Println(" ", c.Name, c.MaxAge, c.Secure, c.HttpOnly)
		}
	}
	// Output:
	// /save 204
	//   _pin 30 true true
	// /save?fail=1 503
}

// A Position prints and parses as a PostgreSQL LSN with its timeline; it
// is how messages between instances carry "the write was at P".
func ExampleParsePosition() {
	p, err := replicapin.ParsePosition("16/B374D848@2")
	if err != nil {
		log.Fatal(err)
	}
	replayed := replicapin.Position{Timeline: 2, Offset: 0x16_B374D900}
	oldTimeline := replicapin.Position{Timeline: 1, Offset: 0x17_00000000}
	fmt.Println(p, replayed.Covers(p), oldTimeline.Covers(p))
	// Output: 16/B374D848@2 true false
}
