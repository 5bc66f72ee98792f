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
	"strings"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/replicapin"
)

// The examples run against this package's test cluster.
func primaryDSN() string { return cluster.Primary.DSN }
func replicaDSN() string { return cluster.Replicas[0].DSN }

var secret = []byte("an application secret of 32+ bytes")

// A handler writes through Writer and reads through Reader; the middleware
// pins the client after its write, so the read that follows sees it even
// though the replica may not have replayed it yet.
func Example() {
	primary, _ := sql.Open("pgx", primaryDSN())
	replica, _ := sql.Open("pgx", replicaDSN())
	defer primary.Close()
	defer replica.Close()
	if _, err := primary.Exec(`CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)`); err != nil {
		log.Fatal(err)
	}

	db, err := replicapin.New(primary, []*sql.DB{replica}, replicapin.Options{
		Key:    sharednothing.DeriveKey(secret, "replicapin"),
		Cookie: replicapin.CookieOptions{Insecure: true}, // httptest serves plain HTTP
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO notes (body) VALUES ($1)`, r.FormValue("body"))
		if err != nil {
			http.Error(w, "cannot save", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /notes/last", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var body string
		err := db.Reader(ctx).QueryRowContext(ctx, `SELECT body FROM notes ORDER BY id DESC LIMIT 1`).Scan(&body)
		if err != nil {
			http.Error(w, "cannot load", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, body)
	})
	srv := httptest.NewServer(db.Handler(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	res, _ := client.PostForm(srv.URL+"/notes", url.Values{"body": {"hello, replicas"}})
	res.Body.Close()
	fmt.Println("POST:", res.Status, "pinned:", strings.Contains(res.Header.Get("Set-Cookie"), "_pin="))

	res, _ = client.Get(srv.URL + "/notes/last")
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println("GET:", string(b))
	// Output:
	// POST: 201 Created pinned: true
	// GET: hello, replicas
}

// Read retries a failed replica read on the primary, so a replica that dies
// mid-request costs a retry instead of an error.
func ExampleDB_Read() {
	primary, _ := sql.Open("pgx", primaryDSN())
	replica, _ := sql.Open("pgx", replicaDSN())
	defer primary.Close()
	defer replica.Close()
	db, err := replicapin.New(primary, []*sql.DB{replica}, replicapin.Options{
		Key: sharednothing.DeriveKey(secret, "replicapin"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx := context.Background()
	var n int
	err = db.Read(ctx, func(q *sql.DB) error {
		return q.QueryRowContext(ctx, `SELECT 6 * 7`).Scan(&n)
	})
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// TimeWindow pins for a fixed time after each write, for databases without
// replication positions.
func ExampleTimeWindow() {
	primary, _ := sql.Open("pgx", primaryDSN())
	replica, _ := sql.Open("pgx", replicaDSN())
	defer primary.Close()
	defer replica.Close()
	db, err := replicapin.New(primary, []*sql.DB{replica}, replicapin.Options{
		Key:       sharednothing.DeriveKey(secret, "replicapin"),
		Positions: replicapin.TimeWindow(2 * time.Second), // as Rails does
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.Writer(r.Context()) // marks the request as writing
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	// The cookie lives for MaxPin (30 s); once a replica has been seen 2 s
	// past the write, the next response clears it.
	c := rec.Result().Cookies()[0]
	fmt.Println(c.Name, c.MaxAge, c.Secure, c.HttpOnly)
	// Output: _pin 30 true true
}
