package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"           // the "sqlite" database/sql driver, pure Go

	sharednothing "github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/example/internal/pgcluster"
)

// config is the command line, with environment variables as defaults.
type config struct {
	addr          string
	databaseURL   string
	replicaURLs   []string
	secret        string
	acceptSecrets []string
	dataDir       string
	instance      string
	replicaDelay  time.Duration
	secureCookies bool
	thumbQueue    int
	pgBin         string
	drain         time.Duration
	uploadQuota   int64 // bytes per user

	// noRefill turns off the bus's position-aware refill, so that caches
	// refill from a lagging replica after an invalidation and may keep the
	// old data for their whole lifetime. It exists only so that the
	// end-to-end test can show that the refill matters; it is set by the
	// environment variable UNSAFE_NO_POSITION_AWARE_REFILL=1, not by a flag.
	noRefill bool
}

// listFlag is a repeatable flag whose default comes from a comma-separated
// environment variable.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(s string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	l.vals = append(l.vals, s)
	return nil
}

func envList(name string) *listFlag {
	l := &listFlag{}
	for _, s := range strings.Split(os.Getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.vals = append(l.vals, s)
		}
	}
	return l
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// usage opens -h: what the program is, before the flags.
const usage = `example: a photo notebook built on the sharednothing middlewares.

Run it with no flags for a demo: it starts a throwaway PostgreSQL primary and
a streaming replica (from the server binaries in -pg-bin), or, without
PostgreSQL, uses an embedded SQLite file, with a random secret. In
production run several instances behind a load balancer with the same
-secret, -database-url, -replica-url and -data-dir.

Every flag takes its default from the environment variable named with it.

`

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.addr, "addr", env("ADDR", "127.0.0.1:8080"), "listen address (env ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", os.Getenv("DATABASE_URL"),
		"PostgreSQL primary URL; list every node with target_session_attrs=read-write to follow a failover\n"+
			"(postgres://user@host1,host2/db?target_session_attrs=read-write), or sqlite:PATH for an embedded SQLite file;\n"+
			"empty: a throwaway PostgreSQL primary and replica, or SQLite when PostgreSQL is not installed (env DATABASE_URL)")
	replicas := envList("REPLICA_URLS")
	fs.Var(replicas, "replica-url", "PostgreSQL replica URL, repeatable (env REPLICA_URLS, comma-separated)")
	fs.StringVar(&c.secret, "secret", os.Getenv("SECRET"),
		"application secret of at least 32 bytes; every key is derived from it, and new cookies and URLs are sealed with it.\n"+
			"Every instance needs the same one. Empty: a random secret, so sessions end when the process does (env SECRET)")
	accept := envList("ACCEPT_SECRETS")
	fs.Var(accept, "accept-secret", "an older (or the next) secret still accepted when reading cookies and signed URLs, repeatable (env ACCEPT_SECRETS, comma-separated)")
	fs.StringVar(&c.dataDir, "data-dir", os.Getenv("DATA_DIR"),
		"directory for uploaded photos (in its photos/ subdirectory), shared by all instances; required with a PostgreSQL -database-url.\n"+
			"Empty: a temporary directory removed at exit (env DATA_DIR)")
	queue, _ := strconv.Atoi(os.Getenv("THUMB_QUEUE"))
	fs.IntVar(&c.thumbQueue, "thumb-queue", queue, "thumbnail renders allowed to wait for a render slot; beyond that, 503 at once (env THUMB_QUEUE; 0 means 64)")
	quota := int64(100)
	if v, err := strconv.ParseInt(os.Getenv("UPLOAD_QUOTA_MIB"), 10, 64); err == nil {
		quota = v
	}
	fs.Int64Var(&quota, "upload-quota-mib", quota, "photo storage per user, in MiB (env UPLOAD_QUOTA_MIB)")
	fs.BoolVar(&c.secureCookies, "secure-cookies", os.Getenv("SECURE_COOKIES") == "true",
		"the site is served over HTTPS: cookies are Secure with the __Host- prefix, and HSTS is sent (env SECURE_COOKIES=true)")
	host, _ := os.Hostname()
	fs.StringVar(&c.instance, "instance", env("INSTANCE", fmt.Sprintf("%s-%d", host, os.Getpid())), "instance name sent in X-Instance and as the PostgreSQL application_name (env INSTANCE)")
	fs.StringVar(&c.pgBin, "pg-bin", os.Getenv("PG_BIN"), "directory of the PostgreSQL server binaries for the throwaway database (env PG_BIN; default: the newest /usr/lib/postgresql/*/bin, else initdb on PATH)")
	durations := []struct {
		name, env, def, help string
		dst                  *time.Duration
	}{
		{"replica-delay", "REPLICA_DELAY", "1s", "artificial replication lag of the throwaway replica", &c.replicaDelay},
		{"drain", "DRAIN", "5s", "on SIGTERM, how long to keep serving while failing /healthz and closing keep-alive connections, before\n" +
			"shutting down; longer than the load balancer's health-check interval and upstream keepalive_timeout. Ctrl-C (SIGINT) skips it", &c.drain},
	}
	vals := map[string]*string{}
	for _, d := range durations {
		v := env(d.env, d.def)
		vals[d.name] = &v
		fs.Func(d.name, fmt.Sprintf("%s (env %s; default %s)", d.help, d.env, d.def), func(s string) error {
			*vals[d.name] = s
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, d := range durations {
		v, err := time.ParseDuration(*vals[d.name])
		if err != nil {
			return c, fmt.Errorf("-%s: %w", d.name, err)
		}
		if v < 0 {
			return c, fmt.Errorf("-%s must not be negative", d.name)
		}
		*d.dst = v
	}
	if quota <= 0 {
		return c, errors.New("-upload-quota-mib must be positive")
	}
	c.uploadQuota = quota << 20
	c.noRefill = os.Getenv("UNSAFE_NO_POSITION_AWARE_REFILL") == "1"
	c.replicaURLs, c.acceptSecrets = replicas.vals, accept.vals
	for _, s := range append([]string{c.secret}, c.acceptSecrets...) {
		if s != "" && len(s) < sharednothing.MinSecretLen {
			return c, fmt.Errorf("secrets must be at least %d bytes", sharednothing.MinSecretLen)
		}
	}
	if c.databaseURL != "" && !strings.HasPrefix(c.databaseURL, "sqlite:") && c.dataDir == "" {
		return c, errors.New("-data-dir is required with -database-url: uploads must outlive the process, like the database")
	}
	if c.databaseURL == "" && len(c.replicaURLs) > 0 {
		return c, errors.New("-replica-url needs -database-url")
	}
	return c, nil
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := run(context.Background(), c, sigs); err != nil {
		log.Fatal(err)
	}
}

// run serves until a signal arrives on stop, then shuts down gracefully:
// after SIGTERM it drains first (see [app.drainAware]).
func run(ctx context.Context, c config, stop <-chan os.Signal) error {
	log.SetPrefix("[" + c.instance + "] ")
	if c.secret == "" {
		b := make([]byte, 32)
		rand.Read(b)
		c.secret = hex.EncodeToString(b)
		log.Printf("WARNING: no -secret given; using a random one. Instances that share nothing but the secret must all be given the same -secret.")
	}

	// The data directory and databases: given, or throwaway ones.
	if c.dataDir == "" {
		dir, err := os.MkdirTemp("", "sharednothing-example-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.dataDir = dir
	}
	uploads := filepath.Join(c.dataDir, "photos")
	if err := os.MkdirAll(uploads, 0o755); err != nil {
		return err
	}

	dialect := "postgres"
	switch {
	case strings.HasPrefix(c.databaseURL, "sqlite:"):
		dialect = "sqlite"
		path := strings.TrimPrefix(c.databaseURL, "sqlite:")
		if path == "" {
			path = filepath.Join(c.dataDir, "example.db")
		}
		c.databaseURL = sqliteDSN(path)
		log.Printf("using the SQLite database %s; replica pinning is idle", path)
	case c.databaseURL != "":
	default:
		bin, err := pgcluster.BinDir(c.pgBin)
		if err != nil {
			dialect = "sqlite"
			c.databaseURL = sqliteDSN(filepath.Join(c.dataDir, "example.db"))
			log.Printf("%v; using an embedded SQLite database instead; replica pinning is idle", err)
			break
		}
		log.Printf("starting a throwaway PostgreSQL primary and one streaming replica from %s (replica delay %v)...", bin, c.replicaDelay)
		cl, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: bin})
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer cl.Close()
		r := cl.Replicas()[0]
		if err := r.SetApplyDelay(ctx, c.replicaDelay); err != nil {
			return err
		}
		c.databaseURL, c.replicaURLs = cl.PrimaryDSN(), []string{r.ReplicaDSN()}
	}

	a, cleanup, err := newApp(ctx, c, dialect, uploads)
	if err != nil {
		return err
	}
	defer cleanup()

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Longer than a load balancer keeps idle upstream connections
		// (nginx: keepalive_timeout in the upstream block), so it is
		// always the balancer that closes an idle connection, never this
		// server in the instant the balancer reuses it.
		IdleTimeout: 120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("serving on http://%s/ (database: %s, %d replica(s), uploads in %s)", ln.Addr(), dialect, len(c.replicaURLs), uploads)
	fmt.Printf("\n  Open http://%s/ in your browser. Ctrl-C stops it.\n\n", ln.Addr())

	sweep := time.NewTicker(10 * time.Minute)
	defer sweep.Stop()
	var sig os.Signal
	for sig == nil {
		select {
		case err := <-errc:
			return err
		case sig = <-stop:
		case <-sweep.C:
			if err := forgetWrites(ctx, a.primary); err != nil {
				log.Printf("forgetting old idempotency keys: %v", err)
			}
		}
	}
	if sig == syscall.SIGTERM && c.drain > 0 {
		// Drain: stay up, but fail /healthz so health-checking balancers
		// stop choosing this instance, drop page reads so passive ones do
		// too, and close every connection after its response so no idle
		// keep-alive connection is left for the balancer to reuse when the
		// listener closes (see app.drainAware). Then new connections are
		// refused, which a balancer retries on another instance even for
		// a POST: nothing was sent.
		log.Printf("%v: draining for %v", sig, c.drain)
		a.draining.Store(true)
		select {
		case <-time.After(c.drain):
		case sig = <-stop:
			log.Printf("%v: drain cut short", sig)
		}
	}
	log.Printf("shutting down: refusing new connections, finishing requests in flight")
	// Thumbnail renders may take up to 30 s.
	sctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// newApp opens the databases and builds the middlewares. Every key comes
// from the secrets: the first seals, all of them verify.
func newApp(ctx context.Context, c config, dialect, uploads string) (*app, func(), error) {
	open := func(dsn string) (*sql.DB, error) {
		if dialect == "sqlite" {
			return sql.Open("sqlite", dsn)
		}
		// Name the instance in pg_stat_activity.
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		cfg.RuntimeParams["application_name"] = c.instance
		return stdlib.OpenDB(*cfg), nil
	}
	primary, err := open(c.databaseURL)
	if err != nil {
		return nil, nil, err
	}
	if dialect == "sqlite" {
		primary.SetMaxOpenConns(1) // one writer; SQLite serialises anyway
	} else {
		// Keep the pool warm: database/sql keeps only 2 idle connections by
		// default, and a new PostgreSQL connection is a process fork.
		primary.SetMaxOpenConns(20)
		primary.SetMaxIdleConns(20)
		primary.SetConnMaxIdleTime(time.Minute)
	}
	var replicas []*sql.DB
	closeAll := func() {
		for _, db := range replicas {
			db.Close()
		}
		primary.Close()
	}
	for _, u := range c.replicaURLs {
		db, err := open(u)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(20)
		db.SetConnMaxIdleTime(time.Minute)
		replicas = append(replicas, db)
	}
	if err := migrateWithRetry(ctx, primary, dialect == "postgres"); err != nil {
		// The primary may be down while this instance (re)starts: serve
		// what the replicas can, and let writes fail cleanly until it is
		// back. The schema exists unless this is the very first start.
		log.Printf("WARNING: %v; serving anyway", err)
	}

	secrets := [][]byte{[]byte(c.secret)}
	for _, s := range c.acceptSecrets {
		secrets = append(secrets, []byte(s))
	}
	if c.uploadQuota == 0 {
		c.uploadQuota = 100 << 20
	}
	a := &app{instance: c.instance, dialect: dialect, uploads: uploads, primary: primary,
		secure: c.secureCookies, quota: c.uploadQuota}
	if a.logouts, err = newLogouts(); err != nil {
		closeAll()
		return nil, nil, err
	}
	a.sessions = newSessions(secrets, c.secureCookies, a.validSession)
	if a.cache, err = newCache(); err != nil {
		closeAll()
		return nil, nil, err
	}
	if a.summaryCache, err = newSummaries(); err != nil {
		closeAll()
		return nil, nil, err
	}
	if a.thumbs, err = newThumbs(uploads, secrets, c.thumbQueue); err != nil {
		closeAll()
		return nil, nil, err
	}
	if a.pins, err = newPins(primary, replicas, secrets, dialect, c.secureCookies); err != nil {
		closeAll()
		return nil, nil, err
	}
	a.logoutTimes, a.summaries = a.logouts, a.summaryCache
	if dialect == "postgres" {
		if c.noRefill {
			log.Printf("WARNING: UNSAFE_NO_POSITION_AWARE_REFILL=1: caches may refill from a lagging replica and keep old data (for tests only)")
		}
		if err := a.coherent(c, primary); err != nil {
			a.pins.Close()
			closeAll()
			return nil, nil, err
		}
	}
	return a, func() {
		if a.bus != nil {
			a.bus.Close()
		}
		a.pins.Close()
		a.logouts.Close()
		a.summaryCache.Close()
		closeAll()
	}, nil
}

// coherent starts the invalidation bus and registers the caches it
// governs, under names every instance shares.
func (a *app) coherent(c config, primary *sql.DB) (err error) {
	if a.bus, err = newBus(c.databaseURL, c.instance, primary, a.pins, !c.noRefill); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			a.bus.Close()
		}
	}()
	if a.logoutKeys, err = coherent.NewCache(a.bus, "logouts", a.logouts); err != nil {
		return err
	}
	if a.summaryKeys, err = coherent.NewCache(a.bus, "summaries", a.summaryCache); err != nil {
		return err
	}
	if a.pages, err = coherent.NewPages(a.bus, "pages", a.cache); err != nil {
		return err
	}
	a.logoutTimes, a.summaries = a.logoutKeys, a.summaryKeys
	return nil
}

// migrateWithRetry creates the schema, waiting up to 5 s for the primary.
func migrateWithRetry(ctx context.Context, db *sql.DB, postgres bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := migrate(ctx, db, postgres)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create schema: %w", err)
		case <-tick.C:
		}
	}
}

// sqliteDSN is the modernc.org/sqlite data source for the file at path.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"
}

// derive returns the key for purpose from each secret, newest first.
func derive(secrets [][]byte, purpose string) [][]byte {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = sharednothing.DeriveKey(s, purpose)
	}
	return keys
}
