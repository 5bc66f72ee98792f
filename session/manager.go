package session

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/sharednothing/sharednothing/internal/hook"
)

// Errors passed to [Manager.ErrorFunc].
var (
	// ErrTooLarge means the sealed session does not fit in one cookie (or in
	// MaxChunks cookies). The response becomes a 500 and the client keeps
	// its previous cookie.
	ErrTooLarge = errors.New("session: sealed session exceeds the 4096-byte cookie limit")

	// ErrHeadersWritten means the session was modified after the response
	// headers had gone out, so the change could not be sent to the client.
	// It is a programming error: modify the session before writing the
	// response.
	ErrHeadersWritten = errors.New("session: session modified after the response headers were written")
)

// MaxChunksLimit is the largest MaxChunks a Manager accepts. Sixteen 4 KiB
// cookies already exceed the request-header limits of common proxies
// (nginx allows 8 KiB per header line by default).
const MaxChunksLimit = 16

// CookieOptions controls the session cookie's name and attributes.
type CookieOptions struct {
	// Name is the cookie name; [New] sets "session". Chunks are named
	// Name+".1", Name+".2", and so on. A name starting with "__Host-" must
	// be Secure, have Path "/" and no Domain; one starting with "__Secure-"
	// must be Secure. [Manager.LoadAndSave] panics otherwise.
	Name string

	// Domain is the cookie's Domain attribute; empty (the default) means
	// host-only.
	Domain string

	// Path is the cookie's Path attribute; [New] sets "/".
	Path string

	// HttpOnly hides the cookie from JavaScript; [New] sets true.
	HttpOnly bool

	// Secure restricts the cookie to HTTPS; [New] sets true. Set it to
	// false only for plain-HTTP local development.
	Secure bool

	// SameSite is the cookie's SameSite attribute; [New] sets
	// http.SameSiteLaxMode.
	SameSite http.SameSite

	// Persist makes the cookie outlive the browser session by sending
	// Expires and Max-Age; [New] sets true. With Persist false the cookie
	// is a browser-session cookie, though the session still expires on
	// the server as Lifetime and IdleTimeout say.
	Persist bool

	// Partitioned sets the Partitioned attribute (CHIPS); default false.
	Partitioned bool
}

// Manager seals sessions into cookies and serves them to handlers through
// the request context. Create one with [New], adjust its fields, then call
// [Manager.LoadAndSave] once to build the middleware: the fields are read and
// checked at that moment, and later changes do not affect that middleware.
//
// A Manager is safe for concurrent use, and so are its data methods on one
// request's context.
type Manager struct {
	// Lifetime is the absolute lifetime of a session, fixed when it is
	// created and sealed into the cookie; [New] sets 24 hours.
	Lifetime time.Duration

	// IdleTimeout expires a session that has not been used for this long;
	// 0 (the default) turns it off. Activity is recorded in the cookie at
	// most once a minute, and only by requests that touch the session.
	IdleTimeout time.Duration

	// Cookie sets the cookie's name and attributes; see [CookieOptions]
	// for the defaults [New] sets.
	Cookie CookieOptions

	// ErrorFunc is called for failures while serving a request:
	// [ErrTooLarge], [ErrHeadersWritten], or a value that cannot be
	// encoded. When the headers are not yet out, what it writes to w
	// replaces the handler's response (status 500 unless it sets another).
	// For [ErrHeadersWritten] the response is already under way and writes
	// to w are appended to the body. The default logs the error and, if
	// the headers are not yet out, replies 500 Internal Server Error.
	// ErrorFunc must not call the Manager's data methods.
	ErrorFunc func(w http.ResponseWriter, r *http.Request, err error)

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

	codecs []*securecookie.SecureCookie
	now    func() time.Time // the clock; tests replace it
}

// New returns a Manager whose cookies are sealed with key pairs as for
// securecookie.CodecsFromPairs: a hash key (HMAC-SHA256) and a block key
// (AES-256), newest pair first. Cookies are always created with the first
// pair; cookies sealed with an older pair are still accepted and are
// re-sealed with the newest pair on that response, so keys rotate without
// logging anyone out.
//
// Every hash key must be at least 32 bytes and every block key exactly 32
// bytes; [sharednothing.DeriveKey] makes suitable keys from one secret. New
// panics on an empty list, an odd count or a bad key.
func New(keyPairs ...[]byte) *Manager {
	if len(keyPairs) == 0 {
		panic("session: New: no keys; want hash key and block key pairs")
	}
	if len(keyPairs)%2 != 0 {
		panic("session: New: keys come in pairs (hash key, block key); got an odd count")
	}
	m := &Manager{
		Lifetime: 24 * time.Hour,
		Cookie: CookieOptions{
			Name:     "session",
			Path:     "/",
			HttpOnly: true,
			Secure:   true,
			SameSite: http.SameSiteLaxMode,
			Persist:  true,
		},
		now: time.Now,
	}
	for i := 0; i < len(keyPairs); i += 2 {
		hashKey, blockKey := keyPairs[i], keyPairs[i+1]
		if len(hashKey) < 32 {
			panic("session: New: hash key shorter than 32 bytes")
		}
		if len(blockKey) != 32 {
			panic("session: New: block key must be 32 bytes (AES-256)")
		}
		sc := securecookie.New(hashKey, blockKey)
		// Our payload is already bytes and carries its own expiry; the
		// size limit is checked on whole Set-Cookie headers instead.
		sc.SetSerializer(securecookie.NopEncoder{}).MaxAge(0).MaxLength(0)
		m.codecs = append(m.codecs, sc)
	}
	return m
}

// config is the checked, frozen configuration one middleware serves with.
type config struct {
	m         *Manager
	codecs    []*securecookie.SecureCookie
	cookie    CookieOptions
	lifetime  int64 // seconds
	idle      int64 // seconds; 0 = off
	maxChunks int
	errorFunc func(http.ResponseWriter, *http.Request, error)
	validate  func(context.Context, *Values) bool
	now       func() time.Time
	attrs     string // "; Path=/; HttpOnly; …" without Expires and Max-Age
}

// freeze checks m's fields and returns a copy to serve with. It panics on an
// invalid setup, so the mistake shows at start-up.
func (m *Manager) freeze() *config {
	if len(m.codecs) == 0 {
		panic("session: Manager not created with session.New")
	}
	c := m.Cookie
	probe := http.Cookie{Name: c.Name, Value: "x", Domain: c.Domain, Path: c.Path}
	if err := probe.Valid(); err != nil {
		panic("session: invalid Cookie settings: " + err.Error())
	}
	if strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Path != "/" || c.Domain != "") {
		panic(`session: a "__Host-" cookie must be Secure, have Path "/" and no Domain`)
	}
	if strings.HasPrefix(c.Name, "__Secure-") && !c.Secure {
		panic(`session: a "__Secure-" cookie must be Secure`)
	}
	if m.Lifetime < 0 || m.IdleTimeout < 0 {
		panic("session: negative Lifetime or IdleTimeout")
	}
	if m.MaxChunks < 0 || m.MaxChunks > MaxChunksLimit {
		panic("session: MaxChunks out of range 0..16")
	}
	cfg := &config{
		m:         m,
		codecs:    m.codecs,
		cookie:    c,
		lifetime:  seconds(m.Lifetime),
		idle:      seconds(m.IdleTimeout),
		maxChunks: max(m.MaxChunks, 1),
		errorFunc: m.ErrorFunc,
		validate:  m.Validate,
		now:       m.now,
	}
	static := http.Cookie{
		Name: c.Name, Domain: c.Domain, Path: c.Path, HttpOnly: c.HttpOnly,
		Secure: c.Secure, SameSite: c.SameSite, Partitioned: c.Partitioned,
	}
	cfg.attrs = strings.TrimPrefix(static.String(), c.Name+"=")
	if m.Lifetime == 0 {
		cfg.lifetime = seconds(24 * time.Hour)
	}
	if cfg.errorFunc == nil {
		cfg.errorFunc = defaultErrorFunc
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return cfg
}

// seconds rounds d up to whole seconds, the resolution of sealed times.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

func defaultErrorFunc(w http.ResponseWriter, r *http.Request, err error) {
	log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
	if errors.Is(err, ErrHeadersWritten) {
		return
	}
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// LoadAndSave is the middleware that gives next's requests a session. It
// does no session work up front: the cookie is opened only when a handler
// first uses the session, and a Set-Cookie header is added, just before the
// response headers go out, only if the session changed, was renewed or
// destroyed, was sealed with an older key, or needs its idle-timeout
// refreshed. A response whose session was used gets "Vary: Cookie".
//
// LoadAndSave reads and checks m's fields once, now, and panics on an
// invalid setup. Mount it outside any middleware that caches responses.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	cfg := m.freeze()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{Context: r.Context(), cfg: cfg}
		st.req = *r.WithContext(st)
		st.hw.Reset(w, st.commit)
		next.ServeHTTP(&st.hw, &st.req)
		st.finish()
	})
}

// state is one request's session. It is also the request's context (its
// parent context plus itself as a value), so that the whole per-request
// setup is a single allocation plus the hook's closure.
type state struct {
	context.Context // the request's own context
	cfg             *config
	hw              hook.Writer
	req             http.Request

	mu         sync.Mutex
	d          *data // the opened session; nil until first use
	headersOut bool
}

// data is the session of a request that used it, kept apart from state so
// that requests which never touch the session allocate less.
type data struct {
	fresh     bool    // no valid session came in: p is new
	p         payload // the session
	codec     int     // index of the key pair that opened the cookie
	sent      int     // 1 + highest chunk index the client sent; 0: no cookie
	modified  bool
	destroyed bool
	late      error  // ErrHeadersWritten, reported after the handler returns
	errBody   []byte // ErrorFunc's body, written after the handler returns
	errStatus int
}

// Value returns st for its Manager's key and defers everything else to the
// request's context.
func (st *state) Value(key any) any {
	if m, ok := key.(*Manager); ok && m == st.cfg.m {
		return st
	}
	return st.Context.Value(key)
}

// String describes the context without its session data, so that logging a
// request's context never prints session values.
func (st *state) String() string {
	return fmt.Sprint(st.Context) + ".WithSession"
}

// state returns the session state in ctx, or panics: using a session outside
// LoadAndSave is a programming error, as in scs.
func (m *Manager) state(ctx context.Context) *state {
	if st, ok := ctx.(*state); ok && st.cfg.m == m {
		return st
	}
	if st, ok := ctx.Value(m).(*state); ok {
		return st
	}
	panic("session: no session in context; is the handler wrapped in this Manager's LoadAndSave?")
}
