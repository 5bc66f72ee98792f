package replicapin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing"
)

// Errors passed to [Options.ErrorHandler]. Both are found once the handler
// has chosen its response, so neither changes it.
var (
	// ErrPositionUnknown means the primary's position could not be read
	// after a successful write, usually because the primary has just gone
	// down. The client is pinned to the primary for MaxPin instead, as if
	// by a time window.
	ErrPositionUnknown = errors.New("replicapin: cannot read the primary's position after a write; pinned to the primary for MaxPin")

	// ErrLateWrite means [DB.Writer] or [DB.Wrote] was called after the
	// response headers had gone out, too late to pin the client to that
	// write. It is a programming error: write before writing the response.
	ErrLateWrite = errors.New("replicapin: Writer or Wrote called after the response headers were sent; the write is not pinned")
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
	// Pins signed with them are still honoured, so a key rotation rolling
	// across the instances keeps clients pinned, while new pins are always
	// signed with Key. A key can be dropped MaxPin after the last instance
	// stopped signing with it. Each must be at least 32 bytes.
	PreviousKeys [][]byte

	// Cookie sets the pin cookie's name and attributes; the zero value is
	// a Secure, HttpOnly, SameSite=Lax, host-only cookie named "_pin" on
	// Path "/". An app with several DBs (several database clusters) gives
	// each its own name. The pin cookie always carries Max-Age and Expires
	// (MaxPin ahead), whatever Persist says: a pin is short-lived by nature.
	Cookie sharednothing.Cookie

	// Positions reads positions from the primary and the replicas;
	// default [PostgresLSN].
	Positions Positions

	// Succeeded reports whether a response with this status means that the
	// request's writes through [DB.Writer] took effect, so that the client
	// is pinned to them; default: status < 400. A request that called
	// Writer and failed (a 503 because the primary is down, a 422 for a
	// form that did not validate) is not pinned, and costs no round trip.
	// [DB.Wrote] pins whatever the status.
	Succeeded func(status int) bool

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

	// DebugHeader adds "X-Read-From: primary" or "X-Read-From: <replica
	// name>" to every response whose handler read through the DB, naming
	// where its last read went; default false.
	DebugHeader bool

	// ErrorHandler is told about the failures found as a response goes
	// out: [ErrPositionUnknown] and [ErrLateWrite]. The handler has already
	// chosen the response by then, so ErrorHandler cannot change it: what
	// it writes to its ResponseWriter is discarded. nil (the default) logs
	// through log/slog (the toolkit's internal/httperr.Default).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// Replica is one read replica and the name it goes by in [DB.Read]'s
// result, [NodeStats.Name] and the X-Read-From header.
type Replica struct {
	// Name defaults to "replica-N", N counting from 1 in the order given
	// to [New]. Names must be unique and not "primary".
	Name string

	// DB is the replica's connection pool. Required.
	DB *sql.DB
}

// Primary is the name [DB.Read] returns, and Stats and the X-Read-From
// header use, for the primary.
const Primary = "primary"

// DB routes reads to replicas that have caught up with each client's last
// write, and writes to the primary. Create it with [New], mount
// [DB.Handler], get connections with [DB.Read], [DB.Reader] and
// [DB.Writer] inside handlers, and call [DB.Close] at shutdown.
//
// A DB is safe for concurrent use.
type DB struct {
	primary  *sql.DB
	replicas []*node
	primon   *node

	positions    Positions
	seal         sealer
	cookie       sharednothing.Cookie
	succeeded    func(status int) bool
	maxPin       time.Duration
	maxLag       uint64
	interval     time.Duration
	timeout      time.Duration
	debug        bool
	errorHandler func(http.ResponseWriter, *http.Request, error)

	rr           atomic.Uint64
	primaryReads atomic.Uint64
	retries      atomic.Uint64
	pinsSet      atomic.Uint64
	pinsCleared  atomic.Uint64
	failedWrites atomic.Uint64

	cancel    context.CancelFunc // stops the monitors
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a DB that writes to primary and reads from replicas, and
// starts one goroutine per server that polls its position every
// PollInterval until [DB.Close]. Until a replica's first poll succeeds,
// reads go to the primary. New does not close the *sql.DB values it is
// given; the caller still owns them.
//
// For failover, open primary with a connection string that follows the
// writable server (for PostgreSQL, several hosts and
// target_session_attrs=read-write): the DB then follows a promotion
// without a restart.
//
// New returns an error for a nil primary or replica, a replica listed twice
// or equal to the primary, duplicate replica names, a Key shorter than 32
// bytes, negative durations or invalid cookie settings.
func New(primary *sql.DB, replicas []Replica, opts Options) (*DB, error) {
	if primary == nil {
		return nil, errors.New("replicapin: New: nil primary")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"MaxPin", opts.MaxPin}, {"PollInterval", opts.PollInterval}, {"PollTimeout", opts.PollTimeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("replicapin: New: Options.%s must not be negative", d.name)
		}
	}
	c := opts.Cookie.WithDefaults("_pin")
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("replicapin: New: %w", err)
	}
	c.Persist = true
	seal, err := newSealer(c.Name, opts.Key, opts.PreviousKeys...)
	if err != nil {
		return nil, err
	}

	db := &DB{
		primary:      primary,
		positions:    opts.Positions,
		seal:         seal,
		cookie:       c,
		succeeded:    opts.Succeeded,
		maxPin:       opts.MaxPin,
		maxLag:       opts.MaxLag,
		interval:     opts.PollInterval,
		timeout:      opts.PollTimeout,
		debug:        opts.DebugHeader,
		errorHandler: opts.ErrorHandler,
	}
	if db.positions == nil {
		db.positions = PostgresLSN
	}
	if db.succeeded == nil {
		db.succeeded = func(status int) bool { return status < 400 }
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

	db.primon = newNode(Primary, primary, db.positions.Primary)
	seenDB := map[*sql.DB]bool{primary: true}
	seenName := map[string]bool{Primary: true}
	for i, r := range replicas {
		if r.DB == nil {
			return nil, fmt.Errorf("replicapin: New: replica %d has a nil DB", i+1)
		}
		if seenDB[r.DB] {
			return nil, fmt.Errorf("replicapin: New: replica %d is the primary or listed twice", i+1)
		}
		seenDB[r.DB] = true
		if r.Name == "" {
			r.Name = fmt.Sprintf("replica-%d", i+1)
		}
		if seenName[r.Name] {
			return nil, fmt.Errorf("replicapin: New: replica name %q is %q or used twice", r.Name, Primary)
		}
		seenName[r.Name] = true
		db.replicas = append(db.replicas, newNode(r.Name, r.DB, db.positions.Replica))
	}

	ctx, cancel := context.WithCancel(context.Background())
	db.cancel = cancel
	for _, n := range append([]*node{db.primon}, db.replicas...) {
		db.wg.Add(1)
		go db.monitor(ctx, n)
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

type (
	usePrimaryKey struct{}
	atLeastKey    struct{}
)

// UsePrimary returns a copy of ctx in which [DB.Reader] and [DB.Read]
// use the primary, for reads that must see the latest data whatever the
// client's pin says, such as the read half of a read-modify-write.
func UsePrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, usePrimaryKey{}, true)
}

// AtLeast returns a copy of ctx in which [DB.Reader] and [DB.Read] go to a
// replica that has replayed p (as well as the client's pin), or else to the
// primary: for a read that must see a given write, such as a cache refill
// after another instance announced a change at p (see
// [DB.PrimaryPosition]). Nested calls keep the furthest position.
func AtLeast(ctx context.Context, p Position) context.Context {
	if q, ok := ctx.Value(atLeastKey{}).(Position); ok {
		p = furthest(q, p)
	}
	return context.WithValue(ctx, atLeastKey{}, p)
}

// Reader returns where a read for ctx should go: a replica that has
// replayed past the client's pin and the position of [AtLeast], if any
// (round-robin among those that have), or the primary when none has, when
// the request has written (see [DB.Writer]), or when ctx comes from
// [UsePrimary]. It makes no round
// trip: it compares the pin with the positions last polled, which only
// understate how far a replica is.
//
// With a ctx not from a request served by [DB.Handler], Reader treats the
// caller as unpinned. Prefer [DB.Read], which also survives a replica
// going down and says where it read.
func (db *DB) Reader(ctx context.Context) *sql.DB {
	n := db.choose(ctx)
	if n == nil {
		return db.primary
	}
	return n.db
}

// ReadFrom returns the name of the server that the request's last read
// through [DB.Reader] or [DB.Read] went to: [Primary] or a
// replica's name; "" when the request has not read, or ctx does not come
// from a request served by [DB.Handler].
func (db *DB) ReadFrom(ctx context.Context) string {
	st := db.request(ctx)
	if st == nil {
		return ""
	}
	return db.targetName(st.target.Load())
}

// Read calls fn with where [DB.Reader] would send the read, and returns the
// name of the server that answered: [Primary] or the replica's name. If fn
// fails on a replica, which may just have gone down, Read has that replica
// polled at once and calls fn again with the primary, so losing a replica
// costs a retry rather than a failed request. fn must only read, and may
// run twice. An error that is sql.ErrNoRows, or that comes after ctx is
// done, is returned as it is.
func (db *DB) Read(ctx context.Context, fn func(*sql.DB) error) (from string, err error) {
	n := db.choose(ctx)
	if n == nil {
		return Primary, fn(db.primary)
	}
	err = fn(n.db)
	if err == nil || errors.Is(err, sql.ErrNoRows) || ctx.Err() != nil {
		return n.name, err
	}
	n.pollSoon()
	db.retries.Add(1)
	db.usePrimary(db.request(ctx))
	return Primary, fn(db.primary)
}

// PrimaryPosition reads the primary's current position: one round trip,
// bounded by ctx. Called after a transaction has committed, the position is
// at or past its end, so a server that covers it (see [AtLeast]) shows
// that transaction. It is what a message announcing a write to other
// instances should carry.
func (db *DB) PrimaryPosition(ctx context.Context) (Position, error) {
	return db.positions.Primary(ctx, db.primary)
}

// Replayed reports whether every replica has replayed p, as of their last
// polls (a replica that is down counts with the last position it
// reported; one never heard from has not replayed p). With no replicas it
// reports true. Once it does, reads for p no longer need the primary.
func (db *DB) Replayed(p Position) bool {
	for _, r := range db.replicas {
		s := r.state.Load()
		if !s.known || !s.pos.Covers(p) {
			return false
		}
	}
	return true
}

// choose picks the replica to read from for ctx, one that has replayed
// both the client's pin and the position of AtLeast, or returns nil for
// the primary, and counts the choice.
func (db *DB) choose(ctx context.Context) *node {
	st := db.request(ctx)
	if st != nil && st.wrote.Load() || ctx.Value(usePrimaryKey{}) != nil {
		db.usePrimary(st)
		return nil
	}
	var p *Position
	if st != nil && st.pinned {
		if st.pin.unknown {
			db.usePrimary(st)
			return nil
		}
		p = &st.pin.pos
	}
	at, hasAt := ctx.Value(atLeastKey{}).(Position)
	// Round-robin among the replicas that qualify, so that one lagging
	// replica does not double the load on the next one.
	ps := db.primon.state.Load()
	var buf [8]int
	ok := buf[:0]
	for i, r := range db.replicas {
		s := r.state.Load()
		if db.usable(s, ps) && (p == nil || s.pos.Covers(*p)) && (!hasAt || s.pos.Covers(at)) {
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		db.usePrimary(st)
		return nil
	}
	i := ok[db.rr.Add(1)%uint64(len(ok))]
	r := db.replicas[i]
	r.reads.Add(1)
	if st != nil {
		st.target.Store(int32(i) + 1)
	}
	return r
}

func (db *DB) usePrimary(st *request) {
	db.primaryReads.Add(1)
	if st != nil {
		st.target.Store(-1)
	}
}

// targetName names a request's read target: 0 none, -1 the primary, i+1
// replica i.
func (db *DB) targetName(t int32) string {
	switch {
	case t < 0:
		return Primary
	case t > 0:
		return db.replicas[t-1].name
	}
	return ""
}

// Writer returns the primary and marks the request as writing: if its
// response succeeds (see [Options.Succeeded]), the middleware pins the
// client to the primary's position as the response starts, and later reads
// in the same request go to the primary. Use it for transactions too.
// Write before the response's first byte; a Writer call after it is
// reported as [ErrLateWrite].
func (db *DB) Writer(ctx context.Context) *sql.DB {
	if st := db.request(ctx); st != nil {
		st.wrote.Store(true)
		if st.sent.Load() {
			db.reportError(st.r, ErrLateWrite)
		}
	}
	return db.primary
}

// Wrote marks the request as having written successfully, whatever its
// response status: for a handler that writes to the primary without
// [DB.Writer] (another pool, an ORM with its own), or that commits and
// then answers with an error status. The client is pinned as the response
// starts, and later reads in the same request go to the primary. Call it
// after the commit and before the response's first byte.
func (db *DB) Wrote(ctx context.Context) {
	if st := db.request(ctx); st != nil {
		st.marked.Store(true)
		st.wrote.Store(true)
		if st.sent.Load() {
			db.reportError(st.r, ErrLateWrite)
		}
	}
}

// reportError hands err to the ErrorHandler with a ResponseWriter that
// discards everything: the response has been chosen already.
func (db *DB) reportError(r *http.Request, err error) {
	h := db.errorHandler
	if h == nil {
		h = defaultErrorHandler
	}
	h(discard{}, r, err)
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

// passed reports whether every replica has replayed past p, so its cookie
// can go. A pin with an unknown position, or with no replicas, never
// passes: it lasts until it expires.
func (db *DB) passed(p pin) bool {
	return !p.unknown && len(db.replicas) > 0 && db.Replayed(p.pos)
}

// Stats is a snapshot of a DB's routing counters and its servers' health.
// It encodes to JSON (and expvar) as it is.
type Stats struct {
	// PrimaryReads counts reads routed to the primary.
	PrimaryReads uint64 `json:"primary_reads"`

	// Retries counts [DB.Read] calls that failed on a replica and ran
	// again on the primary.
	Retries uint64 `json:"retries"`

	// PinsSet counts responses that set or extended a pin.
	PinsSet uint64 `json:"pins_set"`

	// PinsCleared counts pins cleared before they expired because every
	// replica had replayed past them.
	PinsCleared uint64 `json:"pins_cleared"`

	// FailedWrites counts requests that called [DB.Writer] but answered
	// with a failure status (see [Options.Succeeded]), so were not pinned.
	FailedWrites uint64 `json:"failed_writes"`

	// Primary is the primary's health and last polled position.
	Primary NodeStats `json:"primary"`

	// Replicas holds one entry per replica, in the order given to [New].
	Replicas []NodeStats `json:"replicas"`
}

// NodeStats describes one server as last polled.
type NodeStats struct {
	// Name is [Primary] or the replica's name (see [Replica]).
	Name string `json:"name"`

	// Up reports whether the last poll succeeded and, for a replica,
	// whether it is on the primary's timeline: whether reads may go to it.
	Up bool `json:"up"`

	// Err says why the server is not up (the text of the poll's error,
	// [ErrNotReplica], [ErrNotPrimary] or [ErrTimeline]); "" when it is.
	Err string `json:"err,omitempty"`

	// Position is the last position polled: the primary's current
	// position, or how far a replica has replayed. It is the zero Position
	// if none has been read yet; a server that is down keeps its last one.
	Position Position `json:"position"`

	// Lag is how far a replica is behind the primary, in Position offsets
	// (bytes of WAL for [PostgresLSN]), from the last polls of both; 0 for
	// the primary and when the two are not comparable.
	Lag uint64 `json:"lag"`

	// Reads counts reads routed to this replica; 0 for the primary (see
	// [Stats.PrimaryReads]).
	Reads uint64 `json:"reads"`
}

// Stats returns the DB's counters and each server's state.
func (db *DB) Stats() Stats {
	ps := db.primon.state.Load()
	st := Stats{
		PrimaryReads: db.primaryReads.Load(),
		Retries:      db.retries.Load(),
		PinsSet:      db.pinsSet.Load(),
		PinsCleared:  db.pinsCleared.Load(),
		FailedWrites: db.failedWrites.Load(),
		Primary:      NodeStats{Name: db.primon.name, Up: ps.up, Err: errString(ps.err), Position: ps.pos},
	}
	for _, r := range db.replicas {
		s := r.state.Load()
		ns := NodeStats{Name: r.name, Up: s.up, Err: errString(s.err), Position: s.pos, Lag: lag(s, ps), Reads: r.reads.Load()}
		if s.up && ps.known && ps.pos.Timeline != s.pos.Timeline {
			ns.Up = false
			ns.Err = fmt.Sprintf("%v (replica %d, primary %d)", ErrTimeline, s.pos.Timeline, ps.pos.Timeline)
		}
		st.Replicas = append(st.Replicas, ns)
	}
	return st
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
