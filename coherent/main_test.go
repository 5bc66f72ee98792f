package coherent_test

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/internal/pgtest"
	"github.com/sharednothing/sharednothing/internal/pgwire"
	"github.com/sharednothing/sharednothing/localcache"
	"github.com/sharednothing/sharednothing/replicapin"
)

// cluster is a primary and one streaming replica shared by this package's
// tests; a test that pauses replay resumes it in t.Cleanup.
var cluster *pgtest.Cluster

// TestMain starts the cluster, except in fuzzing processes, whose targets
// need none. The Example needs PostgreSQL and cannot skip itself: without
// PostgreSQL, outside CI, it is left out (with CI=true the run fails).
func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true" {
		os.Exit(m.Run())
	}
	if pgtest.Available() != nil && os.Getenv("CI") != "true" {
		skip := "^(Example|ExampleNewPages)$"
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip = s + "|" + skip
		}
		flag.Set("test.skip", skip)
	}
	pgtest.Run(m, 1, &cluster)
}

// wireListener adapts the test driver's connection to coherent.Listener,
// as the pgx adapter in the package documentation does for pgx.
type wireListener struct{ c *pgwire.Conn }

func (l wireListener) Listen(ctx context.Context, channel string) error {
	_, err := l.c.ExecContext(ctx, `LISTEN "`+channel+`"`, nil)
	return err
}

func (l wireListener) WaitForNotification(ctx context.Context) (string, error) {
	n, err := l.c.WaitForNotification(ctx)
	return n.Payload, err
}

func (l wireListener) Close() error { return l.c.Close() }

// instance is one application instance: its own bus, listener connection,
// replicapin.DB, typed cache and loads counter.
type instance struct {
	name  string
	bus   *coherent.Bus
	db    *replicapin.DB
	local *localcache.Cache[string, string]
	users *coherent.Cache[string]
	loads atomic.Int64
	errs  atomic.Int64
	// gate, when not nil, holds the listener's Dial until it is closed.
	gate atomic.Pointer[chan struct{}]
}

type config struct {
	noRefill   bool // leave Options.Replicas nil: no position-aware refill
	heartbeat  time.Duration
	maxSilence time.Duration
	wrap       func(coherent.Listener) coherent.Listener
}

var testKey = sharednothing.DeriveKey([]byte(strings.Repeat("k", 32)), "replicapin")

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(pgwire.DriverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(8)
	t.Cleanup(func() { db.Close() })
	return db
}

// newInstance starts an instance whose listener connects with
// application_name=coherent_NAME, so a test can find and kill it.
func newInstance(t testing.TB, name string, cfg config) *instance {
	t.Helper()
	c := pgtest.Need(t, cluster)
	primary := openDB(t, c.Primary.DSN)
	replica := openDB(t, c.Replicas[0].DSN)
	in := &instance{name: name}
	var err error
	in.db, err = replicapin.New(primary, []replicapin.Replica{{DB: replica}}, replicapin.Options{
		Key:          testKey,
		PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.db.Close() })
	opts := coherent.Options{
		DB:         primary,
		Channel:    "coherent_test_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")),
		Heartbeat:  cfg.heartbeat,
		MaxSilence: cfg.maxSilence,
		MaxBackoff: 200 * time.Millisecond,
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) {
			t.Logf("%s: %v", name, err)
		},
		Dial: func(ctx context.Context) (coherent.Listener, error) {
			if g := in.gate.Load(); g != nil {
				select {
				case <-*g:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			conn, err := pgwire.Connect(ctx, c.Primary.DSN+"&application_name=coherent_"+name)
			if err != nil {
				return nil, err
			}
			var l coherent.Listener = wireListener{conn}
			if cfg.wrap != nil {
				l = cfg.wrap(l)
			}
			return l, nil
		},
	}
	if len(opts.Channel) > 63 {
		opts.Channel = opts.Channel[:63]
	}
	if !cfg.noRefill {
		opts.Replicas = coherent.Replicapin(in.db)
	}
	in.bus, err = coherent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.bus.Close() })
	in.local, err = localcache.New(localcache.Options[string, string]{MaxEntries: 10000, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in.users, err = coherent.NewCache(in.bus, "users", in.local)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, name+" listening", func() bool { return in.bus.Stats().Connected })
	return in
}

// get reads key through the instance's coherent cache, loading from
// wherever replicapin sends the read.
func (in *instance) get(ctx context.Context, key string) (string, error) {
	v, err := in.users.GetOrLoad(ctx, key, func(ctx context.Context, key string) (string, error) {
		in.loads.Add(1)
		var v string
		_, err := in.db.Read(ctx, func(q *sql.DB) error {
			return q.QueryRowContext(ctx, `SELECT v FROM coherent_kv WHERE k = $1`, key).Scan(&v)
		})
		return v, err
	})
	if err != nil {
		in.errs.Add(1)
	}
	return v, err
}

// cached returns what the instance's cache holds for key, without loading.
func (in *instance) cached(key string) (string, bool) { return in.local.Get(key) }

// waitFor polls cond every millisecond until it holds or d has passed.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		<-tick.C
	}
	return time.Since(start)
}

// kv creates the test table (once) and sets key to value on the primary,
// returning after the commit.
func write(t testing.TB, key, value string) {
	t.Helper()
	c := pgtest.Need(t, cluster)
	ctx := context.Background()
	if err := c.Primary.Exec(ctx, `CREATE TABLE IF NOT EXISTS coherent_kv (k text PRIMARY KEY, v text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := c.Primary.Exec(ctx, `INSERT INTO coherent_kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, key, value); err != nil {
		t.Fatal(err)
	}
}

// replicated waits until the replica shows everything committed so far.
func replicated(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cluster.WaitReplayed(ctx, cluster.Replicas[0]); err != nil {
		t.Fatal(err)
	}
}

// pauseReplay freezes the replica until the returned func (also run at
// cleanup) resumes it.
func pauseReplay(t testing.TB) (resume func()) {
	t.Helper()
	ctx := context.Background()
	r := cluster.Replicas[0]
	if err := r.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	done := false
	resume = func() {
		if done {
			return
		}
		done = true
		if err := r.ResumeReplay(ctx); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(resume)
	return resume
}

// errStop is a Dial failure for tests that never connect.
var errStop = errors.New("stop")
