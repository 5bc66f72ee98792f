package replicapin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors passed to [Options.ErrorHandler]. Neither changes the response:
// the handler has already done its work when they are found.
var (
	// ErrPositionUnknown means the primary's position could not be read
	// after a write, usually because the primary is down. The client is
	// pinned to the primary for MaxPin instead, as if by a time window.
	ErrPositionUnknown = errors.New("replicapin: cannot read the primary's position after a write; pinned to the primary for MaxPin")

	// ErrLateWrite means [DB.Writer] was called after the response headers
	// had gone out, too late to pin the client to that write. It is a
	// programming error: write before writing the response.
	ErrLateWrite = errors.New("replicapin: Writer called after the response headers were sent; the write is not pinned")
)

// ErrTimeline is reported in [NodeStats.Err] for a replica that answers but
// is on a different timeline from the primary (it follows an old primary,
// or the primary failed over without it), so it is not read from.
var ErrTimeline = errors.New("replicapin: replica is on a different timeline from the primary")

// Options configures a [DB]. The zero value of every field but Key means
// the default its comment states.
type Options struct {
	// Key signs the pin cookies. It must be at least 32 bytes and the same
	// on every app instance; use sharednothing.DeriveKey(secret,
	// "replicapin"). Required.
	Key []byte

	// PreviousKeys are keys that Key replaced, newest first; default none.
	// Pins sealed with them are still honoured, so a key rotation rolling
	// across the instances keeps clients pinned, while new pins are always
	// sealed with Key. A key can be dropped MaxPin after the last instance
	// stopped sealing with it. Each must be at least 32 bytes.
	PreviousKeys [][]byte

	// Cookie sets the pin cookie's name and attributes.
	Cookie CookieOptions

	// Positions reads positions from the primary and the replicas;
	// default [PostgresLSN].
	Positions Positions

	// WriteMethods lists the request methods that count as writes, so the
	// response pins the client even if the handler never called
	// [DB.Writer]. nil (the default) means every method but GET, HEAD,
	// OPTIONS and TRACE; an empty non-nil slice means only Writer marks a
	// request as writing.
	WriteMethods []string

	// MaxPin caps how long a pin lasts after the client's last write,
	// whatever the replicas do; default 30 s.
	MaxPin time.Duration

	// MaxLag excludes replicas that are further behind the primary than
	// this, in Position offsets (bytes of WAL for [PostgresLSN]), even for
	// clients that are not pinned; 0 (the default) means no limit. The lag
	// is measured between the last polls of the primary and the replica.
	MaxLag uint64

	// PollInterval is how often the primary's position and each replica's
	// replayed position are read; default 100 ms. A poll that takes longer
	// than PollTimeout fails, which marks a replica down until a later poll
	// succeeds.
	PollInterval time.Duration

	// PollTimeout bounds each poll and the read of the primary's position
	// after a write; default the larger of 1 s and 2×PollInterval.
	PollTimeout time.Duration

	// DebugHeader adds "X-Read-From: primary" or "X-Read-From: replica-N"
	// to every response whose handler called [DB.Reader], naming where its
	// last read went; default false.
	DebugHeader bool

	// ErrorHandler is told about failures found as a response goes out:
	// [ErrPositionUnknown] and [ErrLateWrite]. It cannot change the
	// response. The default logs them with the standard logger.
	ErrorHandler func(r *http.Request, err error)
}

// CookieOptions sets the pin cookie's name and attributes. The cookie is
// always HttpOnly; its Max-Age is MaxPin.
type CookieOptions struct {
	// Name is the cookie name; default "_pin". An app with several DBs
	// (several database clusters) gives each its own name. A name starting
	// with "__Host-" needs Path "/", no Domain and Insecure false.
	Name string

	// Path is the cookie's Path; default "/".
	Path string

	// Domain is the cookie's Domain; default empty (host-only).
	Domain string

	// SameSite is the cookie's SameSite attribute; default
	// http.SameSiteLaxMode.
	SameSite http.SameSite

	// Insecure leaves off the Secure attribute so the cookie also travels
	// over plain HTTP. Set it only for local development: browsers drop
	// Secure cookies on http:// origins, which silently turns pinning off.
	// Default false (Secure).
	Insecure bool
}

// DB routes reads to replicas that have caught up with each client's last
// write, and writes to the primary. Create it with [New], mount
// [DB.Handler], get connections with [DB.Reader] and [DB.Writer] inside
// handlers, and call [DB.Close] at shutdown.
//
// A DB is safe for concurrent use.
type DB struct {
	primary  *sql.DB
	replicas []*node
	primon   *node

	positions    Positions
	seal         *sealer
	cookie       CookieOptions
	writeMethods []string // nil: every method but GET, HEAD, OPTIONS, TRACE
	maxPin       time.Duration
	maxLag       uint64
	interval     time.Duration
	timeout      time.Duration
	debug        bool
	errorHandler func(*http.Request, error)
	now          func() time.Time // the clock for pin expiry; tests replace it

	rr           atomic.Uint64
	primaryReads atomic.Uint64
	retries      atomic.Uint64
	pinsSet      atomic.Uint64
	pinsCleared  atomic.Uint64

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a DB that writes to primary and reads from replicas, and
// starts one goroutine per server that polls its position every
// PollInterval until [DB.Close]. Until a replica's first poll succeeds,
// reads go to the primary. New does not close the *sql.DB values it is
// given; the caller still owns them.
//
// New returns an error for a nil primary or replica, a replica listed twice
// or equal to the primary, a Key shorter than 32 bytes, negative durations
// or invalid cookie settings.
func New(primary *sql.DB, replicas []*sql.DB, opts Options) (*DB, error) {
	if primary == nil {
		return nil, errors.New("replicapin: New: nil primary")
	}
	if len(opts.Key) < 32 {
		return nil, errors.New("replicapin: New: Key must be at least 32 bytes; use sharednothing.DeriveKey")
	}
	for _, k := range opts.PreviousKeys {
		if len(k) < 32 {
			return nil, errors.New("replicapin: New: every PreviousKeys key must be at least 32 bytes")
		}
	}
	if opts.MaxPin < 0 || opts.PollInterval < 0 || opts.PollTimeout < 0 {
		return nil, errors.New("replicapin: New: negative MaxPin, PollInterval or PollTimeout")
	}
	c := opts.Cookie
	if c.Name == "" {
		c.Name = "_pin"
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.SameSite == 0 {
		c.SameSite = http.SameSiteLaxMode
	}
	probe := http.Cookie{Name: c.Name, Value: "x", Path: c.Path, Domain: c.Domain}
	if err := probe.Valid(); err != nil {
		return nil, fmt.Errorf("replicapin: New: invalid cookie settings: %w", err)
	}
	if strings.HasPrefix(c.Name, "__Host-") && (c.Insecure || c.Path != "/" || c.Domain != "") {
		return nil, errors.New(`replicapin: New: a "__Host-" cookie must be Secure, with Path "/" and no Domain`)
	}
	if strings.HasPrefix(c.Name, "__Secure-") && c.Insecure {
		return nil, errors.New(`replicapin: New: a "__Secure-" cookie must be Secure`)
	}
	for _, m := range opts.WriteMethods {
		if m == "" || strings.ToUpper(m) != m {
			return nil, fmt.Errorf("replicapin: New: WriteMethods: %q is not an upper-case method", m)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	db := &DB{
		primary:      primary,
		positions:    opts.Positions,
		seal:         newSealer(c.Name, append([][]byte{opts.Key}, opts.PreviousKeys...)...),
		cookie:       c,
		writeMethods: opts.WriteMethods,
		maxPin:       opts.MaxPin,
		maxLag:       opts.MaxLag,
		interval:     opts.PollInterval,
		timeout:      opts.PollTimeout,
		debug:        opts.DebugHeader,
		errorHandler: opts.ErrorHandler,
		now:          time.Now,
		ctx:          ctx,
		cancel:       cancel,
	}
	if db.positions == nil {
		db.positions = PostgresLSN
	}
	if db.maxPin == 0 {
		db.maxPin = 30 * time.Second
	}
	if db.interval == 0 {
		db.interval = 100 * time.Millisecond
	}
	if db.timeout == 0 {
		db.timeout = max(time.Second, 2*db.interval)
	}
	if db.errorHandler == nil {
		db.errorHandler = func(r *http.Request, err error) {
			log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
		}
	}

	db.primon = newNode("primary", primary, db.positions.Primary)
	seen := map[*sql.DB]bool{primary: true}
	for i, r := range replicas {
		if r == nil {
			cancel()
			return nil, fmt.Errorf("replicapin: New: replica %d is nil", i+1)
		}
		if seen[r] {
			cancel()
			return nil, fmt.Errorf("replicapin: New: replica %d is the primary or listed twice", i+1)
		}
		seen[r] = true
		db.replicas = append(db.replicas, newNode(fmt.Sprintf("replica-%d", i+1), r, db.positions.Replica))
	}
	for _, n := range append([]*node{db.primon}, db.replicas...) {
		db.wg.Add(1)
		go db.monitor(n)
	}
	return db, nil
}

// Close stops the DB's monitor goroutines and waits for them to exit. The
// DB keeps routing with the positions it last saw, so close it only when
// shutting down. Close does not close the primary or the replicas. It is
// safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.cancel()
		db.wg.Wait()
	})
	return nil
}

// requestKey finds a request's state for one DB in its context. Keying by
// DB keeps an app with two DBs (two database clusters) from mixing their
// pins.
type requestKey struct{ db *DB }

type usePrimaryKey struct{}

// request returns the state Handler put in ctx for db, or nil.
func (db *DB) request(ctx context.Context) *request {
	st, _ := ctx.Value(requestKey{db}).(*request)
	return st
}

// UsePrimary returns a copy of ctx in which [DB.Reader] returns the primary,
// for reads that must see the latest data whatever the client's pin says,
// such as the read half of a read-modify-write.
func UsePrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, usePrimaryKey{}, true)
}

// Reader returns where a read for ctx should go: a replica that has
// replayed past the client's pin (round-robin among those that have), or
// the primary when none has, when the request has written (see
// [DB.Writer]), or when ctx comes from [UsePrimary]. It makes no round
// trip: it compares the pin with the positions last polled, which only
// understate how far a replica is.
//
// With a ctx not from a request served by [DB.Handler], Reader treats the
// caller as unpinned.
func (db *DB) Reader(ctx context.Context) *sql.DB {
	st := db.request(ctx)
	if st != nil && st.wrote.Load() || ctx.Value(usePrimaryKey{}) != nil {
		return db.readPrimary(st)
	}
	var p *pin
	if st != nil && st.pinned {
		if st.pin.unknown {
			return db.readPrimary(st)
		}
		p = &st.pin
	}
	// Round-robin among the replicas that qualify, so that one lagging
	// replica does not double the load on the next one.
	ps := db.primon.state.Load()
	var buf [8]int
	ok := buf[:0]
	for i, r := range db.replicas {
		s := r.state.Load()
		if db.usable(s, ps) && (p == nil || s.pos.Covers(p.pos)) {
			ok = append(ok, i)
		}
	}
	if len(ok) > 0 {
		i := ok[db.rr.Add(1)%uint64(len(ok))]
		r := db.replicas[i]
		r.reads.Add(1)
		if st != nil {
			st.target.Store(int32(i) + 1)
		}
		return r.db
	}
	return db.readPrimary(st)
}

func (db *DB) readPrimary(st *request) *sql.DB {
	db.primaryReads.Add(1)
	if st != nil {
		st.target.Store(-1)
	}
	return db.primary
}

// Writer returns the primary and marks the request as having written: its
// response will pin the client to the primary's position as the response
// starts, and later [DB.Reader] calls in the same request return the
// primary. Use it for transactions too. Write before the response's first
// byte; a Writer call after it is reported as [ErrLateWrite].
func (db *DB) Writer(ctx context.Context) *sql.DB {
	if st := db.request(ctx); st != nil {
		st.wrote.Store(true)
		if st.sent.Load() {
			db.errorHandler(st.r, ErrLateWrite)
		}
	}
	return db.primary
}

// Read calls fn with [DB.Reader](ctx). If fn fails on a replica, which may
// just have gone down, Read has that replica polled at once and calls fn
// again with the primary, so losing a replica costs a retry rather than a
// failed request. fn must only read, and may run twice. An error that is
// sql.ErrNoRows, or that comes after ctx is done, is returned as it is.
func (db *DB) Read(ctx context.Context, fn func(*sql.DB) error) error {
	q := db.Reader(ctx)
	err := fn(q)
	if err == nil || q == db.primary || errors.Is(err, sql.ErrNoRows) || ctx.Err() != nil {
		return err
	}
	for _, r := range db.replicas {
		if r.db == q {
			r.pollSoon()
		}
	}
	db.retries.Add(1)
	return fn(db.readPrimary(db.request(ctx)))
}

// usable reports whether a replica in state s may serve reads at all,
// given the primary's state ps.
func (db *DB) usable(s, ps *nodeState) bool {
	if !s.up {
		return false
	}
	if ps.known && ps.pos.Timeline != s.pos.Timeline {
		return false
	}
	return db.maxLag == 0 || lag(s, ps) <= db.maxLag
}

// lag returns how far a replica in state s is behind the primary in state
// ps, or 0 if it is not behind or the two cannot be compared.
func lag(s, ps *nodeState) uint64 {
	if !s.known || !ps.known || s.pos.Timeline != ps.pos.Timeline || s.pos.Offset >= ps.pos.Offset {
		return 0
	}
	return ps.pos.Offset - s.pos.Offset
}

// passed reports whether every replica has replayed past p, judged by the
// last position each reported (also while it is down: when it comes back it
// has not gone backwards). A replica never heard from keeps the pin.
func (db *DB) passed(p pin) bool {
	if p.unknown || len(db.replicas) == 0 {
		return false
	}
	for _, r := range db.replicas {
		s := r.state.Load()
		if !s.known || !s.pos.Covers(p.pos) {
			return false
		}
	}
	return true
}

// Stats is a snapshot of a DB's routing counters and its servers' health.
type Stats struct {
	// PrimaryReads counts [DB.Reader] results that were the primary.
	PrimaryReads uint64

	// Retries counts [DB.Read] calls that failed on a replica and ran
	// again on the primary.
	Retries uint64

	// PinsSet counts responses that set or extended a pin.
	PinsSet uint64

	// PinsCleared counts pins cleared before they expired because every
	// replica had replayed past them.
	PinsCleared uint64

	// Primary is the primary's health and last polled position.
	Primary NodeStats

	// Replicas holds one entry per replica, in the order given to [New].
	Replicas []NodeStats
}

// NodeStats describes one server as last polled.
type NodeStats struct {
	// Name is "primary" or "replica-N", N counting from 1 in the order
	// given to [New]; the same as in the X-Read-From header.
	Name string

	// Up reports whether the last poll succeeded and, for a replica,
	// whether it is on the primary's timeline: whether reads may go to it.
	Up bool

	// Err says why the server is not up; nil when it is.
	Err error

	// Position is the last position polled; the zero Position if none has
	// been read yet.
	Position Position

	// Lag is how far a replica is behind the primary, in Position offsets
	// (bytes of WAL for [PostgresLSN]), from the last polls of both; 0 for
	// the primary and when the two are not comparable.
	Lag uint64

	// Reads counts [DB.Reader] results that were this replica; 0 for the
	// primary (see [Stats.PrimaryReads]).
	Reads uint64
}

// Stats returns the DB's counters and each server's state.
func (db *DB) Stats() Stats {
	ps := db.primon.state.Load()
	st := Stats{
		PrimaryReads: db.primaryReads.Load(),
		Retries:      db.retries.Load(),
		PinsSet:      db.pinsSet.Load(),
		PinsCleared:  db.pinsCleared.Load(),
		Primary:      NodeStats{Name: db.primon.name, Up: ps.up, Err: ps.err, Position: ps.pos},
	}
	for _, r := range db.replicas {
		s := r.state.Load()
		ns := NodeStats{Name: r.name, Up: s.up, Err: s.err, Position: s.pos, Lag: lag(s, ps), Reads: r.reads.Load()}
		if s.up && ps.known && ps.pos.Timeline != s.pos.Timeline {
			ns.Up = false
			ns.Err = fmt.Errorf("%w (replica %d, primary %d)", ErrTimeline, s.pos.Timeline, ps.pos.Timeline)
		}
		st.Replicas = append(st.Replicas, ns)
	}
	return st
}
