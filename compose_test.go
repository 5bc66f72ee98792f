package sharednothing_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/localcache"
	"github.com/sharednothing/sharednothing/replicapin"
	"github.com/sharednothing/sharednothing/session"
)

// TestComposition is issue 11.1's matrix: for every mount order of the
// session middleware, the response cache and replicapin, for anonymous and
// two logged-in clients, and for pages that read the session and answer
// with no Cache-Control, public max-age, private, or max-age with and
// without Vary: Cookie, no client ever gets a page made for another
// client's session (cross-user), and a client pinned after its own write
// always sees that write (wrong state).
func TestComposition(t *testing.T) {
	kinds := map[string]string{
		"no-cache-control": "",
		"public-max-age":   "public, max-age=600",
		"private":          "private, max-age=600",
		"max-age":          "max-age=600",
		"max-age-vary":     "max-age=600",
	}
	for _, order := range permutations([]string{"session", "cache", "replicapin"}) {
		for kind, cc := range kinds {
			t.Run(strings.Join(order, ">")+"/"+kind, func(t *testing.T) {
				stack := newStack(t)
				var mws []func(http.Handler) http.Handler
				for _, name := range order {
					mws = append(mws, stack.middleware[name])
				}
				var version atomic.Int64
				mux := http.NewServeMux()
				mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
					stack.sessions.Put(r.Context(), "user", r.FormValue("user"))
				})
				mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
					version.Add(1)
					stack.db.Wrote(r.Context())
				})
				mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
					user := stack.sessions.GetString(r.Context(), "user")
					if user == "" {
						user = "anonymous"
					}
					if cc != "" {
						w.Header().Set("Cache-Control", cc)
					}
					if kind == "max-age-vary" {
						w.Header().Set("Vary", "Cookie")
					}
					fmt.Fprintf(w, "user=%s v=%d", user, version.Load())
				})
				srv := httptest.NewTLSServer(sharednothing.Chain(mws...)(mux))
				defer srv.Close()

				clients := map[string]*http.Client{}
				for _, name := range []string{"anonymous", "alice", "bob"} {
					jar, _ := cookiejar.New(nil)
					c := &http.Client{Transport: srv.Client().Transport, Jar: jar}
					clients[name] = c
					if name != "anonymous" {
						post(t, c, srv.URL+"/login?user="+name)
					}
				}
				crossUser, wrongState, hits := 0, 0, 0
				minVersion := map[string]int64{}
				get := func(name string) {
					t.Helper()
					res, err := clients[name].Get(srv.URL + "/page")
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					var user string
					var v int64
					if _, err := fmt.Sscanf(string(b), "user=%s v=%d", &user, &v); err != nil {
						t.Fatalf("%s: page %q", name, b)
					}
					if res.Header.Get("X-Cache") == "HIT" {
						hits++
					}
					if user != name {
						crossUser++
						t.Errorf("%s got %s's page (X-Cache %s)", name, user, res.Header.Get("X-Cache"))
					}
					if v < minVersion[name] {
						wrongState++
						t.Errorf("%s, pinned after writing v%d, got v%d (X-Cache %s)", name, minVersion[name], v, res.Header.Get("X-Cache"))
					}
				}
				seq := []string{"anonymous", "alice", "bob", "anonymous", "bob", "alice", "anonymous"}
				for _, name := range seq {
					get(name)
				}
				for _, writer := range []string{"alice", "anonymous"} {
					post(t, clients[writer], srv.URL+"/write")
					minVersion[writer] = version.Load()
					for _, name := range seq {
						get(name)
					}
				}
				if (kind == "public-max-age" || kind == "max-age") && hits == 0 {
					t.Errorf("no cache hit at all: the cache is not exercised")
				}
				if crossUser+wrongState > 0 {
					t.Errorf("%d cross-user responses, %d wrong-state pages; want 0", crossUser, wrongState)
				}
			})
		}
	}
}

// stack is the three middlewares under test. newStack is the one place
// that constructs them, so API changes in session or replicapin touch
// only it.
type stack struct {
	sessions   *session.Manager
	db         *replicapin.DB
	cache      *localcache.ResponseCache
	middleware map[string]func(http.Handler) http.Handler
}

func newStack(t *testing.T) *stack {
	t.Helper()
	secret := []byte("a test secret that is long enough to derive keys from")
	sessions := session.New(sharednothing.DeriveKey(secret, "session"))

	// replicapin with a primary and a replica that never answer queries:
	// positions come from lagPositions, so a pin stays valid (the replica
	// never catches up) and no database is needed.
	primary, replica := sql.OpenDB(noConnector{}), sql.OpenDB(noConnector{})
	db, err := replicapin.New(primary, []replicapin.Replica{{DB: replica}}, replicapin.Options{
		Key:       sharednothing.DeriveKey(secret, "replicapin"),
		Positions: lagPositions{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	cache, err := localcache.NewResponseCache(localcache.ResponseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	return &stack{
		sessions: sessions,
		db:       db,
		cache:    cache,
		middleware: map[string]func(http.Handler) http.Handler{
			"session":    sessions.LoadAndSave,
			"cache":      cache.Handler,
			"replicapin": db.Handler,
		},
	}
}

// lagPositions has the primary at offset 100 and the replica at 50 forever.
type lagPositions struct{}

func (lagPositions) Primary(context.Context, *sql.DB) (replicapin.Position, error) {
	return replicapin.Position{Timeline: 1, Offset: 100}, nil
}

func (lagPositions) Replica(context.Context, *sql.DB) (replicapin.Position, error) {
	return replicapin.Position{Timeline: 1, Offset: 50}, nil
}

// noConnector is a database/sql connector that refuses every connection.
type noConnector struct{}

func (noConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database in this test")
}
func (noConnector) Driver() driver.Driver { return noDriver{} }

type noDriver struct{}

func (noDriver) Open(string) (driver.Conn, error) { return nil, errors.New("no database in this test") }

func post(t *testing.T, c *http.Client, url string) {
	t.Helper()
	res, err := c.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, res.Status)
	}
}

func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{append([]string(nil), s...)}
	}
	var out [][]string
	for i := range s {
		rest := append(append([]string(nil), s[:i]...), s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}
