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

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver, pure Go

	sharednothing "github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/pgtest"
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

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", env("ADDR", "127.0.0.1:8080"), "listen address (env ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", os.Getenv("DATABASE_URL"),
		"PostgreSQL primary URL, or sqlite:PATH for an embedded SQLite file (env DATABASE_URL); empty: start a throwaway primary and replica, or use SQLite without PostgreSQL")
	replicas := envList("REPLICA_URLS")
	fs.Var(replicas, "replica-url", "PostgreSQL replica URL, repeatable (env REPLICA_URLS, comma-separated)")
	fs.StringVar(&c.secret, "secret", os.Getenv("SECRET"),
		"application secret of at least 32 bytes; every key is derived from it, and new cookies and URLs are sealed with it (env SECRET)")
	accept := envList("ACCEPT_SECRETS")
	fs.Var(accept, "accept-secret", "an older (or the next) secret still accepted when reading cookies and signed URLs, repeatable (env ACCEPT_SECRETS, comma-separated)")
	fs.StringVar(&c.dataDir, "data-dir", os.Getenv("DATA_DIR"),
		"directory for uploaded photos, shared by all instances (env DATA_DIR); required with -database-url")
	queue, _ := strconv.Atoi(os.Getenv("THUMB_QUEUE"))
	fs.IntVar(&c.thumbQueue, "thumb-queue", queue, "thumbnail renders allowed to wait for a render slot before 503s (env THUMB_QUEUE; default 64)")
	fs.BoolVar(&c.secureCookies, "secure-cookies", os.Getenv("SECURE_COOKIES") == "true",
		"mark cookies Secure: set it when the site is served over HTTPS (env SECURE_COOKIES=true)")
	host, _ := os.Hostname()
	fs.StringVar(&c.instance, "instance", env("INSTANCE", fmt.Sprintf("%s-%d", host, os.Getpid())), "instance name sent in X-Instance (env INSTANCE)")
	delay := env("REPLICA_DELAY", "1s")
	fs.Func("replica-delay", "artificial replica lag of the throwaway PostgreSQL replica (env REPLICA_DELAY; default 1s)", func(s string) error {
		delay = s
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	d, err := time.ParseDuration(delay)
	if err != nil {
		return c, fmt.Errorf("-replica-delay: %w", err)
	}
	c.replicaDelay = d
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is cancelled, then shuts down gracefully.
func run(ctx context.Context, c config) error {
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
	case pgtest.Available() == nil:
		log.Printf("starting a throwaway PostgreSQL primary and one streaming replica (replica delay %v)...", c.replicaDelay)
		cl, err := pgtest.Start(ctx, 1)
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer cl.Close()
		if err := cl.Replicas[0].SetApplyDelay(ctx, c.replicaDelay); err != nil {
			return err
		}
		c.databaseURL, c.replicaURLs = cl.Primary.DSN, []string{cl.Replicas[0].DSN}
	default:
		dialect = "sqlite"
		c.databaseURL = sqliteDSN(filepath.Join(c.dataDir, "example.db"))
		log.Printf("no PostgreSQL binaries found (%v): using an embedded SQLite database; replica pinning is idle", pgtest.ErrNoPostgres)
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
		IdleTimeout:       90 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("serving on http://%s/ (database: %s, %d replica(s), uploads in %s)", ln.Addr(), dialect, len(c.replicaURLs), uploads)
	fmt.Printf("\n  Open http://%s/ in your browser. Ctrl-C stops it.\n\n", ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// newApp opens the databases and builds the middlewares. Every key comes
// from the secrets: the first seals, all of them verify.
func newApp(ctx context.Context, c config, dialect, uploads string) (*app, func(), error) {
	driver := "pgx"
	if dialect == "sqlite" {
		driver = "sqlite"
	}
	primary, err := sql.Open(driver, c.databaseURL)
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
		db, err := sql.Open("pgx", u)
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
	a := &app{instance: c.instance, dialect: dialect, uploads: uploads, primary: primary}
	a.sessions = newSessions(secrets, c.secureCookies)
	if a.cache, err = newCache(); err != nil {
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
	return a, func() { a.pins.Close(); closeAll() }, nil
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
