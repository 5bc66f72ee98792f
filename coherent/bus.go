package coherent

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing/replicapin"
)

// Position is a point in the primary's history of commits, the same type
// [replicapin] pins clients with.
type Position = replicapin.Position

// Listener is one dedicated connection to the primary that listens for
// notifications; the application provides it (see the package
// documentation for a pgx adapter), so this package needs no driver. A Bus
// uses a Listener from one goroutine at a time and closes it when done.
type Listener interface {
	// Listen runs LISTEN for channel (a plain lower-case identifier).
	Listen(ctx context.Context, channel string) error

	// WaitForNotification returns the payload of the next notification on
	// the channel, blocking until one arrives, the connection fails or ctx
	// is done. After an error the Bus closes the Listener and dials anew.
	WaitForNotification(ctx context.Context) (payload string, err error)

	// Close closes the connection.
	Close() error
}

// Replicas tells a Bus how to make a read see a position, for
// position-aware refill. [Replicapin] adapts a *replicapin.DB.
type Replicas interface {
	// AtLeast returns a context whose reads see every commit up to p: they
	// go to a replica that has replayed p, or to the primary.
	AtLeast(ctx context.Context, p Position) context.Context

	// Replayed reports whether every replica a read may go to has replayed
	// p, so that any read sees it.
	Replayed(p Position) bool
}

// Options configures a [Bus]. The zero value of every field but Dial and
// DB means the default its comment states.
type Options struct {
	// Dial opens a new Listener connection to the primary. It is called at
	// start and after every failure, with backoff. Required. It must not
	// hand out a pooled connection that goes back to a pool, nor go through
	// a transaction-pooling proxy: LISTEN belongs to one session.
	Dial func(ctx context.Context) (Listener, error)

	// DB is the primary (a pool), for [Bus.Send], heartbeats and reading
	// the primary's position. Required.
	DB *sql.DB

	// Channel is the notification channel; default "sharednothing_coherent".
	// Every instance of one application uses the same one. It must be 1 to
	// 63 bytes of lower-case letters, digits and underscores.
	Channel string

	// Replicas turns on position-aware refill: after hearing that a key
	// changed at position P, loads of it read at P or later until every
	// replica has replayed P. Default nil: loads read as they would without
	// the Bus, which is right only when the application reads from the
	// primary alone.
	Replicas Replicas

	// Heartbeat is how often the Bus notifies itself to check that its
	// listener still hears the channel; default 1 s.
	Heartbeat time.Duration

	// MaxSilence is how long a heartbeat may take to come back before the
	// Bus treats its listener as dead or too far behind: it reconnects and
	// flushes every cache it governs. Default 3×Heartbeat.
	MaxSilence time.Duration

	// MaxBackoff caps the wait between reconnection attempts, which starts
	// at 50 ms and doubles; default 5 s.
	MaxBackoff time.Duration

	// MaxLag is how long a position-aware refill mark lives at most, even
	// if some replica has not replayed it (a replica that far behind should
	// be excluded by replicapin's MaxLag); default 1 min.
	MaxLag time.Duration

	// MaxMarks caps the marks kept per cache; beyond it the marks of that
	// cache collapse into one cache-wide mark at the latest position.
	// Default 65536.
	MaxMarks int

	// ErrorHandler hears of the Bus's failures: the listener losing its
	// connection or not reconnecting ([ErrDisconnected]), a flush, a
	// malformed payload. They happen outside any request, so w and r are
	// nil. Default: logged through log/slog. No request ever fails because
	// of them.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// Errors passed to Options.ErrorHandler.
var (
	// ErrDisconnected wraps the reason the listener lost (or could not
	// open) its connection. Until it is back, the caches it governs serve
	// entries that may be stale up to their TTL.
	ErrDisconnected = errors.New("coherent: listener disconnected")

	// ErrFlushed reports that every governed cache was emptied, because the
	// listener (re)connected after missing notifications, fell behind, or
	// received one it could not read.
	ErrFlushed = errors.New("coherent: caches flushed")

	// ErrClosed is returned by Send and SendTx after [Bus.Close].
	ErrClosed = errors.New("coherent: bus is closed")
)

// Bus carries invalidations between the instances of an application over
// PostgreSQL LISTEN/NOTIFY. Create it with [New], register caches with
// [NewCache] and [NewPages], send with [Bus.Send] or [Bus.SendTx], and
// [Bus.Close] it at shutdown. A Bus is safe for concurrent use.
type Bus struct {
	dial       func(context.Context) (Listener, error)
	db         *sql.DB
	channel    string
	replicas   Replicas
	heartbeat  time.Duration
	maxSilence time.Duration
	maxBackoff time.Duration
	maxLag     time.Duration
	maxMarks   int
	onError    func(http.ResponseWriter, *http.Request, error)
	id         string // names this bus's heartbeats

	mu   sync.Mutex
	regs map[string]*reg
	// heartbeats: the counter of the last one sent and seen, and when the
	// oldest one not yet seen was sent.
	hbSent, hbSeen uint64
	hbWaiting      time.Time
	kick           context.CancelFunc // ends the current listener session
	downSince      time.Time
	lastErr        string

	sendMu  sync.Mutex
	queue   []*sendReq // Sends waiting for the next statement
	sending bool       // a Send is sending for the queue

	connected   atomic.Bool
	up          chan struct{} // under mu: closed while connected, replaced when the listener drops
	connects    atomic.Uint64
	flushes     atomic.Uint64
	received    atomic.Uint64
	applied     atomic.Uint64
	sent        atomic.Uint64
	sendErrors  atomic.Uint64
	badPayloads atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a Bus: a goroutine that keeps a listener connected, and one
// that sends heartbeats and sweeps marks.
// Register the caches right after New: notifications for caches not
// registered are ignored.
//
// New returns an error for a missing Dial or DB, a bad Channel or negative
// options.
func New(opts Options) (*Bus, error) {
	if opts.Dial == nil {
		return nil, errors.New("coherent: New: Options.Dial is required")
	}
	if opts.DB == nil {
		return nil, errors.New("coherent: New: Options.DB is required")
	}
	for name, d := range map[string]time.Duration{"Heartbeat": opts.Heartbeat, "MaxSilence": opts.MaxSilence, "MaxBackoff": opts.MaxBackoff, "MaxLag": opts.MaxLag} {
		if d < 0 {
			return nil, fmt.Errorf("coherent: New: Options.%s must not be negative", name)
		}
	}
	if opts.MaxMarks < 0 {
		return nil, errors.New("coherent: New: Options.MaxMarks must not be negative")
	}
	if opts.Channel == "" {
		opts.Channel = "sharednothing_coherent"
	}
	if !validChannel(opts.Channel) {
		return nil, fmt.Errorf("coherent: New: Options.Channel %q must be 1 to 63 lower-case letters, digits or underscores", opts.Channel)
	}
	b := &Bus{
		dial:       opts.Dial,
		db:         opts.DB,
		channel:    opts.Channel,
		replicas:   opts.Replicas,
		heartbeat:  cmp(opts.Heartbeat, time.Second),
		maxBackoff: cmp(opts.MaxBackoff, 5*time.Second),
		maxLag:     cmp(opts.MaxLag, time.Minute),
		maxMarks:   opts.MaxMarks,
		onError:    opts.ErrorHandler,
		regs:       map[string]*reg{},
		downSince:  time.Now(),
		up:         make(chan struct{}),
	}
	b.maxSilence = cmp(opts.MaxSilence, 3*b.heartbeat)
	if b.maxMarks == 0 {
		b.maxMarks = 1 << 16
	}
	var id [6]byte
	rand.Read(id[:])
	b.id = hex.EncodeToString(id[:])
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(2)
	go b.listen()
	go b.beat()
	return b, nil
}

func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func validChannel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Close stops the Bus's goroutines and closes its listener. Caches keep
// their entries. Send and SendTx return [ErrClosed] afterwards. Close is
// safe to call more than once.
func (b *Bus) Close() error {
	b.cancel()
	b.wg.Wait()
	return nil
}

// WaitConnected waits until the listener hears the channel (and has
// flushed what it may have missed), and returns at once if it does now. It
// returns ctx's error, or [ErrClosed] after Close. An application need not
// call it: until the listener is up, caches are flushed on connect and
// bounded by their TTL. Start-up checks and tests use it.
func (b *Bus) WaitConnected(ctx context.Context) error {
	b.mu.Lock()
	up := b.up
	b.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-b.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// report passes a background failure to the ErrorHandler.
func (b *Bus) report(err error) {
	b.mu.Lock()
	b.lastErr = err.Error()
	b.mu.Unlock()
	if b.onError != nil {
		b.onError(nil, nil, err)
		return
	}
	slog.Warn("coherent: "+err.Error(), "channel", b.channel)
}

// listen keeps one listener session going until Close, reconnecting with
// backoff.
func (b *Bus) listen() {
	defer b.wg.Done()
	const minBackoff = 50 * time.Millisecond
	backoff := minBackoff
	for b.ctx.Err() == nil {
		listening, err := b.session()
		b.connected.Store(false)
		b.mu.Lock()
		select {
		case <-b.up:
			b.up = make(chan struct{})
		default:
		}
		b.downSince = time.Now()
		b.hbWaiting = time.Time{}
		b.mu.Unlock()
		if b.ctx.Err() != nil {
			return
		}
		b.report(fmt.Errorf("%w: %v", ErrDisconnected, err))
		if listening {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, b.maxBackoff)
	}
}

// session dials, listens, flushes what may have been missed, and applies
// notifications until the connection fails or is kicked. listening reports
// whether it got as far as hearing the channel.
func (b *Bus) session() (listening bool, err error) {
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	b.mu.Lock()
	b.kick = cancel
	b.mu.Unlock()

	l, err := b.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer l.Close()
	if err := l.Listen(ctx, b.channel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Notifications committed from now on reach us; what was committed
	// before, while nobody listened, is lost: flush. Connected first, so
	// that loads starting after the flush honour its marks (loads running
	// during it are not stored).
	b.connected.Store(true)
	if err := b.flush(ctx, "listener connected"); err != nil {
		return false, err
	}
	b.connects.Add(1)
	b.mu.Lock()
	close(b.up)
	b.mu.Unlock()
	for {
		payload, err := l.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil && b.ctx.Err() == nil {
				err = fmt.Errorf("no heartbeat for %v: %w", b.maxSilence, err)
			}
			return true, err
		}
		b.receive(ctx, payload)
	}
}

// primaryPosition reads the primary's current WAL position. Read after a
// commit (or after its notification arrived), it covers that commit.
func (b *Bus) primaryPosition(ctx context.Context) (Position, error) {
	var lsn, file string
	err := b.db.QueryRowContext(ctx, `SELECT l::text, pg_walfile_name(l) FROM (SELECT pg_current_wal_insert_lsn() AS l) p`).Scan(&lsn, &file)
	if err != nil {
		return Position{}, err
	}
	return parsePosition(file, lsn)
}

func parsePosition(file, lsn string) (Position, error) {
	if len(file) < 8 {
		return Position{}, fmt.Errorf("coherent: unexpected WAL file name %q", file)
	}
	tli, err := strconv.ParseUint(file[:8], 16, 32)
	if err != nil {
		return Position{}, fmt.Errorf("coherent: unexpected WAL file name %q", file)
	}
	off, err := parseLSN(lsn)
	if err != nil {
		return Position{}, fmt.Errorf("coherent: unexpected LSN %q", lsn)
	}
	return Position{Timeline: uint32(tli), Offset: off}, nil
}

// flush empties every governed cache and, with Replicas, makes loads read
// at the primary's current position or later until the replicas have
// replayed it: whatever notification was missed concerned a commit before
// that position.
func (b *Bus) flush(ctx context.Context, why string) error {
	var pos Position
	if b.replicas != nil {
		var err error
		if pos, err = b.primaryPosition(ctx); err != nil {
			return fmt.Errorf("position for flush: %w", err)
		}
	}
	b.mu.Lock()
	regs := make([]*reg, 0, len(b.regs))
	for _, r := range b.regs {
		regs = append(regs, r)
		if b.replicas != nil {
			b.setFloorLocked(r, pos)
		}
	}
	b.mu.Unlock()
	for _, r := range regs {
		r.all()
	}
	b.flushes.Add(1)
	if b.flushes.Load() > 1 {
		b.report(fmt.Errorf("%w: %s", ErrFlushed, why))
	}
	return nil
}

// receive applies one notification.
func (b *Bus) receive(ctx context.Context, payload string) {
	b.received.Add(1)
	m, err := decode(payload)
	if err != nil {
		// It may have carried invalidations: drop everything rather
		// than guess.
		b.badPayloads.Add(1)
		if err := b.flush(ctx, "malformed notification"); err != nil {
			b.report(err)
		}
		return
	}
	for _, it := range m.items {
		if it.op == 'h' && it.cache == b.id {
			b.heard(it.arg)
		}
	}
	if m.origin == b.id {
		return // Send applied these here before it returned
	}
	if !m.resolved && b.replicas != nil && hasInvalidation(m.items) {
		// Sent inside the writing transaction, before its commit record
		// existed: the position it could have carried was short of the
		// commit. The notification arrives only after the commit, so the
		// primary's position now covers it.
		p, err := b.primaryPosition(ctx)
		if err != nil {
			// Loads would go to a primary we cannot reach; mark with
			// the newest position known instead and say so.
			b.report(fmt.Errorf("coherent: cannot read the primary's position for a notification sent in a transaction: %w", err))
			p = b.newestMark()
		}
		m.pos = p
	}
	b.apply(m.items, m.pos, true)
}

func hasInvalidation(items []Item) bool {
	for _, it := range items {
		if it.op != 'h' {
			return true
		}
	}
	return false
}

// apply marks (when marked and with Replicas), then invalidates, each
// item. Marking first means a load that starts between the two already
// reads at pos. Heartbeats are not its business.
func (b *Bus) apply(items []Item, pos Position, marked bool) {
	for _, it := range items {
		if it.op == 'h' {
			continue
		}
		b.mu.Lock()
		r := b.regs[it.cache]
		if r != nil && marked && b.replicas != nil {
			switch it.op {
			case 'k':
				b.markLocked(r, it.arg, pos)
			case 'u':
				b.markLocked(r, urlPath(it.arg), pos)
			default:
				b.setFloorLocked(r, pos)
			}
		}
		b.mu.Unlock()
		if r == nil {
			continue
		}
		switch it.op {
		case 'k', 'u':
			r.del(it.arg)
		case 't':
			r.tag(it.arg)
		case 'a':
			r.all()
		}
		b.applied.Add(1)
	}
}

// heard records that one of this bus's own heartbeats came back.
func (b *Bus) heard(arg string) {
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	if n > b.hbSeen {
		b.hbSeen = n
	}
	if b.hbSeen >= b.hbSent {
		b.hbWaiting = time.Time{}
	}
	b.mu.Unlock()
}

// beat sends a heartbeat every Heartbeat, kicks the listener when one has
// not come back within MaxSilence, and sweeps marks.
func (b *Bus) beat() {
	defer b.wg.Done()
	t := time.NewTicker(b.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.sweep()
		if !b.connected.Load() {
			continue
		}
		b.mu.Lock()
		late := !b.hbWaiting.IsZero() && time.Since(b.hbWaiting) > b.maxSilence
		if late && b.kick != nil {
			b.kick()
		}
		b.hbSent++
		n := b.hbSent
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(b.ctx, b.heartbeat)
		err := b.send(ctx, []Item{{op: 'h', cache: b.id, arg: strconv.FormatUint(n, 10)}})
		cancel()
		if err != nil {
			continue // the primary is unreachable; the listener will notice
		}
		b.mu.Lock()
		if b.hbWaiting.IsZero() && b.hbSeen < n {
			b.hbWaiting = time.Now()
		}
		b.mu.Unlock()
	}
}

// Stats is a snapshot of a Bus's state and counters. It encodes cleanly as
// JSON.
type Stats struct {
	Connected     bool      `json:"connected"`            // the listener hears the channel now
	DownSince     time.Time `json:"down_since,omitzero"`  // when it last lost the channel, if not Connected
	Connects      uint64    `json:"connects"`             // sessions that started listening
	Flushes       uint64    `json:"flushes"`              // times every governed cache was emptied (one per connect, more after malformed payloads)
	Received      uint64    `json:"received"`             // notifications received, heartbeats included
	Invalidations uint64    `json:"invalidations"`        // items applied to a registered cache, local sends included
	Sent          uint64    `json:"sent"`                 // notifications sent (one statement may send several)
	SendErrors    uint64    `json:"send_errors"`          // Send calls and heartbeats that failed
	BadPayloads   uint64    `json:"bad_payloads"`         // notifications that did not decode
	Marks         int       `json:"marks"`                // position-aware refill marks held, cache-wide marks included
	LastError     string    `json:"last_error,omitempty"` // the last failure reported to ErrorHandler
}

// Stats returns the Bus's state and counters.
func (b *Bus) Stats() Stats {
	s := Stats{
		Connected:     b.connected.Load(),
		Connects:      b.connects.Load(),
		Flushes:       b.flushes.Load(),
		Received:      b.received.Load(),
		Invalidations: b.applied.Load(),
		Sent:          b.sent.Load(),
		SendErrors:    b.sendErrors.Load(),
		BadPayloads:   b.badPayloads.Load(),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.Connected {
		s.DownSince = b.downSince
	}
	s.LastError = b.lastErr
	for _, r := range b.regs {
		s.Marks += len(r.marks)
		if r.hasFloor {
			s.Marks++
		}
	}
	return s
}
