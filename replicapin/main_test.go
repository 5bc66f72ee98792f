package replicapin_test

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/pgtest"
	"github.com/sharednothing/sharednothing/replicapin"
)

// cluster is a primary and one streaming replica shared by this package's
// tests; a test that changes it (pauses replay, stops a server) restores it
// in t.Cleanup.
var cluster *pgtest.Cluster

// pgExamples are the Examples that run against the test cluster. Examples
// cannot skip themselves, so without PostgreSQL, outside CI, TestMain
// leaves them out; with CI=true a missing PostgreSQL fails the run.
const pgExamples = "^(Example|ExampleAtLeast)$"

func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true" {
		os.Exit(m.Run()) // the fuzz targets need no cluster; one per worker would be too many
	}
	if pgtest.Available() != nil && os.Getenv("CI") != "true" {
		skip := pgExamples
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip = s + "|" + skip
		}
		flag.Set("test.skip", skip)
	}
	pgtest.Run(m, 1, &cluster)
}

// replicas names dbs "replica-1", "replica-2", … as New would.
func replicas(dbs ...*sql.DB) []replicapin.Replica {
	var rs []replicapin.Replica
	for _, db := range dbs {
		rs = append(rs, replicapin.Replica{DB: db})
	}
	return rs
}

var testKey = sharednothing.DeriveKey([]byte(strings.Repeat("s", 32)), "replicapin")

// forever is a PollInterval that never ticks in a test: the monitors poll
// once at start and then only when the test calls PollNow.
const forever = time.Hour

// pgDBs opens the test cluster's primary and replica for one test.
func pgDBs(t *testing.T) (c *pgtest.Cluster, primary, replica *sql.DB) {
	t.Helper()
	c = pgtest.Need(t, cluster)
	primary, err := c.Primary.Open()
	if err != nil {
		t.Fatal(err)
	}
	replica, err = c.Replicas[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Close(); replica.Close() })
	return c, primary, replica
}

// newDB is replicapin.New that fails the test on error and closes the DB at
// the end of it.
func newDB(t testing.TB, primary *sql.DB, reps []replicapin.Replica, opts replicapin.Options) *replicapin.DB {
	t.Helper()
	if opts.Key == nil {
		opts.Key = testKey
	}
	opts.Cookie.Insecure = true // httptest serves plain HTTP
	opts.DebugHeader = true
	db, err := replicapin.New(primary, reps, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pollNow(t testing.TB, dbs ...*replicapin.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, db := range dbs {
		if err := db.PollNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// kvTable creates a key-value table for one test and waits until the
// replica has it.
func kvTable(t *testing.T, c *pgtest.Cluster, primary *sql.DB) string {
	t.Helper()
	name := "kv_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_").Replace(t.Name()))
	ctx := context.Background()
	if _, err := primary.ExecContext(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s; CREATE TABLE %[1]s (k text PRIMARY KEY, v text NOT NULL)`, name)); err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, c)
	return name
}

func waitReplayed(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitReplayed(ctx, c.Replicas[0]); err != nil {
		t.Fatal(err)
	}
}

// kvApp is a tiny app over table: POST /kv?k=K&v=V writes through Writer,
// GET /kv?k=K reads through Read and answers with the value. A write that
// fails answers 503, so it does not pin.
func kvApp(db *replicapin.DB, table string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /kv", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		_, err := db.Writer(ctx).ExecContext(ctx,
			`INSERT INTO `+table+` (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`,
			r.FormValue("k"), r.FormValue("v"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /kv", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var v string
		_, err := db.Read(ctx, func(q *sql.DB) error {
			return q.QueryRowContext(ctx, `SELECT v FROM `+table+` WHERE k = $1`, r.FormValue("k")).Scan(&v)
		})
		switch {
		case errors.Is(err, sql.ErrNoRows):
			http.Error(w, "not found", http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			io.WriteString(w, v)
		}
	})
	return db.Handler(mux)
}

// client is a browser: one cookie jar across requests and servers.
type client struct {
	t    *testing.T
	http *http.Client
}

func newClient(t *testing.T) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, http: &http.Client{Jar: jar}}
}

type reply struct {
	status int
	body   string
	from   string // X-Read-From
	cookie *http.Cookie
}

func (c *client) do(method, base, path string) reply {
	c.t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err == nil {
		var res *http.Response
		if res, err = c.http.Do(req); err == nil {
			return c.read(res)
		}
	}
	// Errorf, not Fatal: do runs on load goroutines too.
	c.t.Errorf("%s %s: %v", method, path, err)
	return reply{}
}

func (c *client) read(res *http.Response) reply {
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	rep := reply{status: res.StatusCode, body: string(b), from: res.Header.Get("X-Read-From")}
	for _, ck := range res.Cookies() {
		if ck.Name == "_pin" {
			rep.cookie = ck
		}
	}
	return rep
}

// pinCookie returns the pin cookie the jar holds for base, or "".
func (c *client) pinCookie(base string) string {
	u, _ := url.Parse(base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "_pin" {
			return ck.Value
		}
	}
	return ""
}

func serve(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// errorLog collects what an ErrorHandler is told.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) handle(_ http.ResponseWriter, _ *http.Request, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}
