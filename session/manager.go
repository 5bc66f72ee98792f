package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/httperr"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// Errors passed to [Manager.ErrorHandler] or returned by the data methods.
var (
	// ErrTooLarge means the sealed session does not fit in one cookie (or in
	// MaxChunks cookies). The response becomes a 500 and the client keeps
	// its previous cookie. [Manager.Commit] returns it too.
	ErrTooLarge = errors.New("session: sealed session exceeds the 4096-byte cookie limit")

	// ErrHeadersWritten means the session was modified after the response
	// headers had gone out, so the change could not be sent to the client.
	// It is a programming error: modify the session before writing the
	// response.
	ErrHeadersWritten = errors.New("session: session modified after the response headers were written")

	// ErrNotFound is returned by [GetAs] when the session has no value for
	// the key.
	ErrNotFound = errors.New("session: no value for key")
)

// MinKeyLen is the shortest key [New] accepts.
const MinKeyLen = 32

// MaxChunksLimit is the largest MaxChunks a Manager accepts. Sixteen 4 KiB
// cookies already exceed the request-header limits of common proxies
// (nginx allows 8 KiB per header line by default).
const MaxChunksLimit = 16

// Status says what a request did to its session; see [Manager.Status].
type Status int

const (
	// Unmodified means the session needs no new token: nothing changed.
	Unmodified Status = iota
	// Modified means the client needs a new token: the data, ID, deadline
	// or persistence changed, or the session must be re-sealed (to record
	// activity for IdleTimeout, or with the newest key).
	Modified
	// Destroyed means [Manager.Destroy] ended the session and nothing was
	// put since.
	Destroyed
)

// String returns the constant's name.
func (s Status) String() string {
	switch s {
	case Unmodified:
		return "Unmodified"
	case Modified:
		return "Modified"
	case Destroyed:
		return "Destroyed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Manager seals sessions into cookies and serves them to handlers through
// the request context. Create one with [New], adjust its fields, then mount
// [Manager.LoadAndSave]. Its fields are read on every request, as scs reads
// them, so they may be changed between requests (not while requests are
// being served).
//
// A Manager is safe for concurrent use, and so are its data methods on one
// request's context.
type Manager struct {
	// Lifetime is the absolute lifetime of a session, fixed when it is
	// created (or renewed with [Manager.RenewToken]) and sealed into the
	// cookie; 0 means 24 hours, which [New] also sets.
	Lifetime time.Duration

	// IdleTimeout expires a session that has not been used for this long;
	// 0 (the default) turns it off. Activity is recorded in the cookie by
	// requests that use the session, at most once every IdleTimeout/10
	// (and at least once a minute), so a session survives as long as the
	// gaps between its requests stay under nine tenths of IdleTimeout.
	IdleTimeout time.Duration

	// Cookie sets the cookie's name and attributes. [New] sets Name
	// "session" and Persist true (as scs does); Secure and HttpOnly are
	// always on unless Insecure is set. Chunks are named Name+".1",
	// Name+".2", and so on. Settings that browsers would refuse (see
	// [sharednothing.Cookie.Check]) make [Manager.LoadAndSave] panic, or,
	// when set later, fail every request through ErrorHandler.
	Cookie sharednothing.Cookie

	// ErrorHandler is called for failures while serving a request:
	// [ErrTooLarge], [ErrHeadersWritten], a value that cannot be encoded,
	// or invalid settings. When the headers are not yet out, what it
	// writes replaces the handler's response (status 500 unless it sets
	// another). For [ErrHeadersWritten] the response is already under way
	// and what it writes is discarded. nil means the toolkit's default: log
	// with log/slog and reply 500 Internal Server Error. It must not call
	// the Manager's data methods. (scs calls this field ErrorFunc.)
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// MaxChunks lets a session too large for one cookie be split across
	// up to MaxChunks cookies (Name, Name.1, …). 0 or 1 (the default)
	// means one cookie: a larger session is [ErrTooLarge]. At most
	// [MaxChunksLimit].
	MaxChunks int

	// Validate, if set, is called once per request with each session
	// decoded from a valid, unexpired cookie; returning false discards it
	// and the request sees a new, empty session. Use it for revocation,
	// for example rejecting sessions issued before a user's
	// "log out everywhere". It must not call the Manager's data methods.
	Validate func(ctx context.Context, v *Values) bool

	codecs []*securecookie.SecureCookie // newest key first
	cfg    atomic.Pointer[config]       // the checked settings last seen
	stats  counters
}

// New returns a Manager whose cookies are sealed with key, at least
// [MinKeyLen] bytes (use [sharednothing.DeriveKey] with purpose "session").
// Cookies are always sealed with key; cookies sealed with one of
// previousKeys are still accepted and are re-sealed with key on that
// response, so keys rotate without logging anyone out. The HMAC-SHA256 and
// AES-256 keys are derived from each key with HKDF.
//
// New sets Lifetime to 24 hours and Cookie.Name to "session" with
// Cookie.Persist true. It panics if a key is too short: like
// [sharednothing.DeriveKey], it runs once at start-up, where a bad key must
// stop the program.
func New(key []byte, previousKeys ...[]byte) *Manager {
	m := &Manager{
		Lifetime: 24 * time.Hour,
		Cookie:   sharednothing.Cookie{Name: "session", Persist: true},
	}
	for i, k := range append([][]byte{key}, previousKeys...) {
		if len(k) < MinKeyLen {
			if i == 0 {
				panic(fmt.Sprintf("session: New: key must be at least %d bytes (use sharednothing.DeriveKey)", MinKeyLen))
			}
			panic(fmt.Sprintf("session: New: every previous key must be at least %d bytes", MinKeyLen))
		}
		sc := securecookie.New(
			sharednothing.DeriveKey(k, "session hmac-sha256"),
			sharednothing.DeriveKey(k, "session aes-256"),
		)
		// Our payload is already bytes and carries its own expiry; the
		// size limit is checked on whole Set-Cookie headers instead.
		sc.SetSerializer(securecookie.NopEncoder{}).MaxAge(0).MaxLength(0)
		m.codecs = append(m.codecs, sc)
	}
	return m
}

// settings are the fields that need checking and preparation; a request
// reuses the prepared config while they stay the same.
type settings struct {
	lifetime  time.Duration
	idle      time.Duration
	cookie    sharednothing.Cookie
	maxChunks int
}

// config is checked, prepared settings.
type config struct {
	settings
	err       error                // why the settings are invalid
	cookie    sharednothing.Cookie // with defaults applied
	lifetime  time.Duration
	idle      time.Duration // 0 = off
	throttle  time.Duration // least time between activity write-backs
	maxChunks int
	attrs     string // "; Path=/; HttpOnly; …" without Expires and Max-Age
	delAttrs  string // attrs plus the deletion's Expires and Max-Age
}

// config returns the prepared settings for m's current fields.
func (m *Manager) config() *config {
	s := settings{m.Lifetime, m.IdleTimeout, m.Cookie, m.MaxChunks}
	if c := m.cfg.Load(); c != nil && c.settings == s {
		return c
	}
	c := prepare(s)
	m.cfg.Store(c)
	return c
}

func prepare(s settings) *config {
	c := &config{settings: s}
	switch {
	case s.lifetime < 0:
		c.err = errors.New("session: Manager.Lifetime must not be negative")
	case s.idle < 0:
		c.err = errors.New("session: Manager.IdleTimeout must not be negative")
	case s.maxChunks < 0 || s.maxChunks > MaxChunksLimit:
		c.err = fmt.Errorf("session: Manager.MaxChunks must be within 0..%d", MaxChunksLimit)
	}
	if c.err != nil {
		return c
	}
	c.cookie = s.cookie.WithDefaults("session")
	if err := c.cookie.Check(); err != nil {
		c.err = fmt.Errorf("session: Manager.Cookie: %w", err)
		return c
	}
	c.lifetime = cmp(s.lifetime, 24*time.Hour)
	c.idle = s.idle
	c.throttle = min(s.idle/10, time.Minute)
	c.maxChunks = max(s.maxChunks, 1)
	hc := c.cookie.HTTPCookie("", time.Time{})
	c.attrs = strings.TrimPrefix(hc.String(), c.cookie.Name+"=")
	del := c.cookie.Deletion()
	c.delAttrs = strings.TrimPrefix(del.String(), c.cookie.Name+"=")
	return c
}

// cmp returns d, or def when d is 0.
func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ctxKey is the context key of a Manager's per-request state.
type ctxKey struct{ m *Manager }

// LoadAndSave is the middleware that gives next's requests a session. It
// does no session work up front: the cookie is opened only when a handler
// first uses the session, and a Set-Cookie header is added, just before the
// response headers go out, only if [Manager.Status] is Modified or
// Destroyed. A response whose session was used gets "Vary: Cookie".
//
// It also tells a response cache of this toolkit, mounted inside or
// outside it, which cookie carries the session and whether the response
// depended on it, so a cache never serves one client's page to another.
//
// LoadAndSave checks m's fields now and panics on an invalid setup, so the
// mistake shows at start-up; the fields are read again on every request.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	if len(m.codecs) == 0 {
		panic("session: Manager not created with session.New")
	}
	if c := m.config(); c.err != nil {
		panic(c.err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := m.config()
		if cfg.err != nil {
			m.stats.errors.Add(1)
			m.handleError(w, r, cfg.err)
			return
		}
		st := &state{m: m, cfg: cfg, managed: true}
		ctx, rs := reqstate.EnsureContextIn(r.Context(), &st.ownRS)
		rs.AddCookie(reqstate.Cookie{Name: cfg.cookie.Name, Kind: reqstate.Session})
		st.parent, st.rs = ctx, rs
		st.req = *r.WithContext(context.WithValue(ctx, ctxKey{m}, st))
		st.hw.Reset(w, st.commit)
		next.ServeHTTP(&st.hw, &st.req)
		st.finish()
	})
}

// Load returns a context carrying the session sealed in token, a value
// [Manager.Commit] returned, for handlers that carry the session themselves
// (in a header for an API or a websocket, or in custom middleware). A
// missing, tampered, expired or revoked token gives a new, empty session.
// If ctx already carries a session from m, Load returns ctx unchanged. It
// returns an error only when m's settings are invalid.
//
// Load does not write anything: call [Manager.Commit] and send the token
// (or [Manager.WriteSessionCookie]) when [Manager.Status] is not
// Unmodified. Load takes a whole token; chunked cookies (MaxChunks > 1)
// need [Manager.LoadAndSave].
//
// A response cache of this toolkit cannot see a session carried outside
// the session cookie, so a session loaded from a non-empty token counts as
// personal as soon as it is used, and such responses are never cached.
func (m *Manager) Load(ctx context.Context, token string) (context.Context, error) {
	if st, ok := ctx.Value(ctxKey{m}).(*state); ok && st != nil {
		return ctx, nil
	}
	if len(m.codecs) == 0 {
		panic("session: Manager not created with session.New")
	}
	cfg := m.config()
	if cfg.err != nil {
		return ctx, cfg.err
	}
	rs := reqstate.From(ctx)
	if rs == nil {
		var r *http.Request
		r, rs = reqstate.Ensure(new(http.Request).WithContext(ctx))
		ctx = r.Context()
	}
	rs.AddCookie(reqstate.Cookie{Name: cfg.cookie.Name, Kind: reqstate.Session})
	st := &state{m: m, parent: ctx, cfg: cfg, rs: rs, token: token, fromToken: true}
	return context.WithValue(ctx, ctxKey{m}, st), nil
}

// Commit seals the session in ctx with the newest key and returns the
// token to send to the client (the sealed session, not [Manager.Token]) and
// when it expires: the deadline, or sooner with an IdleTimeout. It records
// activity for IdleTimeout and gives a new session its ID. It returns
// [ErrTooLarge] when the token would not fit in MaxChunks cookies, and an
// error for a value that cannot be encoded.
//
// [Manager.LoadAndSave] commits by itself; Commit is for sessions from
// [Manager.Load].
func (m *Manager) Commit(ctx context.Context) (string, time.Time, error) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.load()
	now := time.Now()
	sealed, err := st.seal(now)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := st.expiry()
	if _, err := st.cfg.split(sealed, st.cookieAttrs(exp, now)); err != nil {
		return "", time.Time{}, err
	}
	return sealed, exp, nil
}

// WriteSessionCookie adds the session cookie carrying token, as
// [Manager.Commit] returned it, to w's headers, expiring at expiry. Expires
// and Max-Age are sent only if Cookie.Persist is set or the session in ctx
// had [Manager.RememberMe](true). A zero expiry deletes the cookie (and its
// chunks, when ctx's request sent any). A token too large for MaxChunks
// cookies writes nothing; Commit reports that as [ErrTooLarge].
func (m *Manager) WriteSessionCookie(ctx context.Context, w http.ResponseWriter, token string, expiry time.Time) {
	cfg := m.config()
	if cfg.err != nil {
		return
	}
	st, _ := ctx.Value(ctxKey{m}).(*state)
	h := w.Header()
	if expiry.IsZero() {
		sent := 1
		if st != nil {
			st.mu.Lock()
			if st.d != nil {
				sent = max(sent, st.d.sent)
			}
			st.mu.Unlock()
		}
		for i := range sent {
			h.Add("Set-Cookie", chunkName(cfg.cookie.Name, i)+"="+cfg.delAttrs)
		}
		h.Add("Cache-Control", `no-cache="Set-Cookie"`)
		return
	}
	persist := cfg.cookie.Persist
	if st != nil {
		st.mu.Lock()
		st.load()
		persist = persist || st.d.p.flags&flagRememberMe != 0
		st.mu.Unlock()
	}
	attrs := cfg.attrs
	if persist {
		attrs += expiresAttrs(expiry, time.Now())
	}
	cookies, err := cfg.split(token, attrs)
	if err != nil {
		return
	}
	for _, c := range cookies {
		h.Add("Set-Cookie", c)
	}
	h.Add("Cache-Control", `no-cache="Set-Cookie"`)
}

// state returns the session state in ctx, or panics: using a session outside
// LoadAndSave (or Load) is a programming error, as in scs.
func (m *Manager) state(ctx context.Context) *state {
	if st, ok := ctx.Value(ctxKey{m}).(*state); ok {
		return st
	}
	panic("session: no session in context; is the handler wrapped in this Manager's LoadAndSave?")
}

// handleError passes err to the ErrorHandler, or to the toolkit's default.
func (m *Manager) handleError(w http.ResponseWriter, r *http.Request, err error) {
	httperr.Handle(m.ErrorHandler, w, r, err)
}

// discardWriter is what ErrorHandler writes to when the response is
// already under way ([ErrHeadersWritten]).
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// Stats are a Manager's counters since it was created. They encode cleanly
// with encoding/json and expvar.
type Stats struct {
	// Loaded counts sessions opened from a valid, unexpired token.
	Loaded uint64 `json:"loaded"`
	// Fresh counts requests that used the session without bringing a valid
	// one, and so started with an empty session.
	Fresh uint64 `json:"fresh"`
	// Saved counts sessions sealed and sent to the client.
	Saved uint64 `json:"saved"`
	// Resealed counts sessions that came sealed with a previous key (they
	// are saved again with the newest key).
	Resealed uint64 `json:"resealed"`
	// Destroyed counts sessions ended with Destroy.
	Destroyed uint64 `json:"destroyed"`
	// Rejected counts tokens that did not give a session, by reason.
	Rejected RejectStats `json:"rejected"`
	// TooLarge counts sessions that did not fit (ErrTooLarge).
	TooLarge uint64 `json:"too_large"`
	// Errors counts calls of ErrorHandler (including TooLarge).
	Errors uint64 `json:"errors"`
}

// RejectStats counts rejected tokens by reason.
type RejectStats struct {
	// Invalid: too long, malformed, tampered, or sealed with an unknown
	// key or under another cookie name.
	Invalid uint64 `json:"invalid"`
	// Expired: past the session's deadline.
	Expired uint64 `json:"expired"`
	// Idle: unused for longer than IdleTimeout.
	Idle uint64 `json:"idle"`
	// Revoked: refused by Validate.
	Revoked uint64 `json:"revoked"`
}

type counters struct {
	loaded, fresh, saved, resealed, destroyed atomic.Uint64
	invalid, expired, idle, revoked           atomic.Uint64
	tooLarge, errors                          atomic.Uint64
}

// Stats returns a snapshot of m's counters.
func (m *Manager) Stats() Stats {
	c := &m.stats
	return Stats{
		Loaded:    c.loaded.Load(),
		Fresh:     c.fresh.Load(),
		Saved:     c.saved.Load(),
		Resealed:  c.resealed.Load(),
		Destroyed: c.destroyed.Load(),
		Rejected: RejectStats{
			Invalid: c.invalid.Load(),
			Expired: c.expired.Load(),
			Idle:    c.idle.Load(),
			Revoked: c.revoked.Load(),
		},
		TooLarge: c.tooLarge.Load(),
		Errors:   c.errors.Load(),
	}
}
