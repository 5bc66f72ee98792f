package lagbench

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/pgtest"
	"github.com/sharednothing/sharednothing/replicapin"
)

var cluster *pgtest.Cluster

// TestMain starts the cluster only when a benchmark is asked for, so that
// "go test ./..." costs nothing here.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	pgtest.Run(m, 1, &cluster)
}

// readsAfter are the times, after its write returned, at which a session
// reads its value back: at once, then as a user clicking around would.
var readsAfter = []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond}

// BenchmarkLagPolicy runs read-after-write sessions (one write, then the
// reads in readsAfter) against a replica with a steady replay lag, under
// three policies: no pinning, TimeWindow(2s) and PostgresLSN. Each
// iteration is one session; 32 run at once. It reports stale reads, the
// share of reads sent to the primary, and request latency percentiles.
func BenchmarkLagPolicy(b *testing.B) {
	c := pgtest.Need(b, cluster)
	ctx := context.Background()
	primary, err := c.Primary.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer primary.Close()
	replica, err := c.Replicas[0].Open()
	if err != nil {
		b.Fatal(err)
	}
	defer replica.Close()
	for _, db := range []*sql.DB{primary, replica} {
		db.SetMaxIdleConns(64)
	}
	if _, err := primary.Exec(`CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v bigint NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	defer c.Replicas[0].SetApplyDelay(ctx, 0)

	policies := []struct {
		name      string
		positions replicapin.Positions // nil: no pinning
	}{
		{"none", nil},
		{"TimeWindow2s", replicapin.TimeWindow(2 * time.Second)},
		{"PostgresLSN", replicapin.PostgresLSN},
	}
	var session atomic.Int64
	for _, lag := range []time.Duration{0, 100 * time.Millisecond, time.Second, 3 * time.Second} {
		if err := c.Replicas[0].SetApplyDelay(ctx, lag); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.WaitReplayed(wctx, c.Replicas[0])
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		for _, pol := range policies {
			b.Run(fmt.Sprintf("lag=%v/policy=%s", lag, pol.name), func(b *testing.B) {
				h, db := app(b, primary, replica, pol.positions)
				srv := httptest.NewServer(h)
				defer srv.Close()
				var r result
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r.add(runSession(srv.URL, fmt.Sprint("s", session.Add(1))))
					}
				})
				b.StopTimer()
				r.report(b)
				if db != nil {
					b.Logf("%+v", db.Stats())
				}
			})
		}
	}
}

// app serves POST /kv?k=&v= (a write) and GET /kv?k= (a read). With no
// positions it writes to the primary and reads from the replica.
func app(b *testing.B, primary, replica *sql.DB, positions replicapin.Positions) (http.Handler, *replicapin.DB) {
	var db *replicapin.DB
	writer := func(*http.Request) *sql.DB { return primary }
	reader := func(w http.ResponseWriter, _ *http.Request) *sql.DB {
		w.Header().Set("X-Read-From", "replica-1")
		return replica
	}
	if positions != nil {
		var err error
		db, err = replicapin.New(primary, []replicapin.Replica{{DB: replica}}, replicapin.Options{
			Key:         sharednothing.DeriveKey([]byte(strings.Repeat("s", 32)), "replicapin"),
			Cookie:      sharednothing.Cookie{Insecure: true},
			Positions:   positions,
			DebugHeader: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		writer = func(r *http.Request) *sql.DB { return db.Writer(r.Context()) }
		reader = func(_ http.ResponseWriter, r *http.Request) *sql.DB { return db.Reader(r.Context()) }
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /kv", func(w http.ResponseWriter, r *http.Request) {
		_, err := writer(r).ExecContext(r.Context(),
			`INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, r.FormValue("k"), r.FormValue("v"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /kv", func(w http.ResponseWriter, r *http.Request) {
		var v int64
		err := reader(w, r).QueryRowContext(r.Context(), `SELECT v FROM kv WHERE k = $1`, r.FormValue("k")).Scan(&v)
		if err == sql.ErrNoRows {
			v = 0 // never written, as far as this server knows: stale
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, v)
	})
	if db == nil {
		return mux, nil
	}
	return db.Handler(mux), db
}

type sessionResult struct {
	stale, reads, primaryReads, errors int
	latencies                          []time.Duration
}

// runSession writes 1 under key k, then reads it back at readsAfter.
func runSession(base, k string) sessionResult {
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	var s sessionResult
	do := func(method, path string) (string, string) {
		start := time.Now()
		res, err := cl.Do(must(http.NewRequest(method, base+path, nil)))
		if err != nil {
			s.errors++
			return "", ""
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		s.latencies = append(s.latencies, time.Since(start))
		if res.StatusCode >= 400 {
			s.errors++
		}
		return string(body), res.Header.Get("X-Read-From")
	}
	do("POST", "/kv?k="+k+"&v=1")
	wrote := time.Now()
	for _, after := range readsAfter {
		time.Sleep(time.Until(wrote.Add(after))) // think time, not synchronisation
		v, from := do("GET", "/kv?k="+k)
		s.reads++
		if v != "1" {
			s.stale++
		}
		if from == "primary" {
			s.primaryReads++
		}
	}
	return s
}

func must(r *http.Request, err error) *http.Request {
	if err != nil {
		panic(err)
	}
	return r
}

type result struct {
	mu                                 sync.Mutex
	sessions, staleSessions            int
	stale, reads, primaryReads, errors int
	latencies                          []time.Duration
}

func (r *result) add(s sessionResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions++
	if s.stale > 0 {
		r.staleSessions++
	}
	r.stale += s.stale
	r.reads += s.reads
	r.primaryReads += s.primaryReads
	r.errors += s.errors
	r.latencies = append(r.latencies, s.latencies...)
}

func (r *result) report(b *testing.B) {
	slices.Sort(r.latencies)
	pct := func(p float64) float64 {
		if len(r.latencies) == 0 {
			return 0
		}
		return float64(r.latencies[int(p*float64(len(r.latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(r.staleSessions), "stale-sessions")
	b.ReportMetric(float64(r.stale), "stale-reads")
	b.ReportMetric(float64(r.reads), "reads")
	b.ReportMetric(100*float64(r.primaryReads)/float64(max(r.reads, 1)), "primary-%")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(r.errors), "errors")
}
