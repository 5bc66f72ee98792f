package session

import (
	"context"
	"crypto/rand"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sharednothing/sharednothing/internal/hook"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// maxCookieHeader is the most bytes one Set-Cookie header line may take:
// browsers drop cookies beyond 4096 bytes.
const maxCookieHeader = 4096

// headerPrefix is counted in every Set-Cookie line's size.
const headerPrefix = len("Set-Cookie: ")

// state is one request's session. [Manager.LoadAndSave] creates it with the
// response hook; [Manager.Load] creates it without one.
//
// It reaches handlers through a plain context.WithValue. The previous
// design made state itself the request's context (an embedded
// context.Context with a Value override) to save that one allocation.
// BenchmarkContextShape (bench_test.go) measures both side by side:
// 2026-12-02, 2 cores, load average 20-30, -count 10, benchstat medians:
// withvalue 2.07 µs ±62 %, 416 B, 3 allocs; custom-context 2.77 µs ±58 %,
// 400 B, 2 allocs. One 16-byte allocation, with no time difference beyond
// the noise, so the plain form stays.
type state struct {
	m         *Manager
	parent    context.Context // the request's context, for Validate
	cfg       *config
	rs        *reqstate.State
	ownRS     reqstate.State // the request's State when no outer middleware made one
	managed   bool           // created by LoadAndSave: hw and req are in use
	hw        hook.Writer
	req       http.Request
	token     string // the token given to Load
	fromToken bool   // created by Load

	mu         sync.Mutex
	d          *data // the opened session; nil until first use
	headersOut bool
}

// data is the session of a request that used it, kept apart from state so
// that requests which never touch the session allocate less.
type data struct {
	fresh     bool    // no valid session came in: p is new
	p         payload // the session
	codec     int     // index of the key that opened the token
	sent      int     // 1 + highest chunk index the client sent; 0: no cookie
	modified  bool
	destroyed bool
	putErr    error  // a value Put could not encode, reported on saving
	late      error  // ErrHeadersWritten, reported after the handler returns
	errBody   []byte // ErrorHandler's body, written after the handler returns
	errStatus int
}

// unixNano returns t in Unix nanoseconds, clamped to what int64 holds.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// newPayload is an empty session starting at now.
func (st *state) newPayload(now int64) payload {
	return payload{issued: now, expires: addClamped(now, st.cfg.lifetime), active: now}
}

func addClamped(t int64, d time.Duration) int64 {
	if t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

// load opens the session token on first use. Anything wrong with it
// (missing, foreign, tampered, truncated, expired, revoked) gives an empty
// new session. It tells the request's reqstate how the session was used.
// st.mu is held.
func (st *state) load() {
	if st.d != nil {
		return
	}
	st.d = new(data)
	now := unixNano(time.Now())
	sealed := st.token
	if !st.fromToken {
		sealed = st.readCookies()
	}
	if sealed != "" {
		if p, codec, ok := st.open(sealed, now); ok {
			st.d.p, st.d.codec = p, codec
			st.m.stats.loaded.Add(1)
			if codec > 0 {
				st.m.stats.resealed.Add(1)
			}
			st.markRead(len(p.entries) > 0)
			return
		}
	}
	st.d.fresh = true
	st.d.p = st.newPayload(now)
	st.m.stats.fresh.Add(1)
	st.markRead(false)
}

// markRead records that the handler read the session. A session carried
// outside the cookie (Load with a token) is personal whatever it holds: a
// response cache cannot tell such requests apart.
func (st *state) markRead(nonEmpty bool) {
	if nonEmpty || (st.fromToken && st.token != "") {
		st.rs.Used(reqstate.Personal)
	} else {
		st.rs.Used(reqstate.Anonymous)
	}
}

// open unseals and checks a token. It counts rejections by reason.
func (st *state) open(sealed string, now int64) (payload, int, bool) {
	c := &st.m.stats
	// Length first: no MAC work for values no browser could have sent.
	if len(sealed) > st.cfg.maxChunks*maxCookieHeader || !canonical(sealed) {
		c.invalid.Add(1)
		return payload{}, 0, false
	}
	for i, sc := range st.m.codecs {
		var b []byte
		// securecookie checks the MAC (name bound in) in constant time
		// before decrypting; only then do we decode.
		if sc.Decode(st.cfg.cookie.Name, sealed, &b) != nil {
			continue
		}
		var p payload
		switch {
		case decodePayload(b, &p) != nil || p.id == [idLen]byte{}:
			c.invalid.Add(1)
		case now >= p.expires:
			c.expired.Add(1)
		case st.cfg.idle > 0 && now >= addClamped(p.active, st.cfg.idle):
			c.idle.Add(1)
		case st.m.Validate != nil && !st.m.Validate(st.parent, &Values{&p}):
			c.revoked.Add(1)
		default:
			return p, i, true
		}
		return payload{}, 0, false
	}
	c.invalid.Add(1)
	return payload{}, 0, false
}

// canonical reports whether s ends like a canonical padded base64url string:
// the bits that a final partial group leaves unused must be zero. Without
// this check a lenient decoder maps several cookie values to the same bytes,
// so a changed last character would still be accepted.
func canonical(s string) bool {
	if len(s)%4 != 0 {
		return false
	}
	pad := len(s) - len(strings.TrimRight(s, "="))
	var mask byte
	switch pad {
	case 0:
		return true
	case 1:
		mask = 0x03
	case 2:
		mask = 0x0f
	default:
		return false
	}
	i := strings.IndexByte(base64URL, s[len(s)-pad-1])
	return i >= 0 && byte(i)&mask == 0
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// readCookies returns the sealed value from the request's session cookie
// and its chunks, and records in st.d.sent how many of our cookies it
// carried. It parses the Cookie header itself to avoid allocating for other
// cookies. The first cookie of each name wins (the browser sends the one
// with the longest path first).
func (st *state) readCookies() string {
	name := st.cfg.cookie.Name
	var main string
	var haveMain bool
	var chunks [MaxChunksLimit]string
	for _, line := range st.req.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || !strings.HasPrefix(k, name) {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if k == name {
				if !haveMain {
					main, haveMain = v, true
					st.d.sent = max(st.d.sent, 1)
				}
				continue
			}
			rest, ok := strings.CutPrefix(k[len(name):], ".")
			n, err := strconv.Atoi(rest)
			if !ok || err != nil || n < 1 || n >= MaxChunksLimit || rest != strconv.Itoa(n) {
				continue
			}
			if chunks[n] == "" {
				chunks[n] = v
			}
			st.d.sent = max(st.d.sent, n+1)
		}
	}
	// A chunked session's first cookie is "<count>.<part 0>"; '.' is not
	// in the base64url alphabet of an unchunked value.
	count, first, chunked := strings.Cut(main, ".")
	if !chunked {
		return main
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 2 || n > st.cfg.maxChunks {
		return ""
	}
	var b strings.Builder
	b.WriteString(first)
	for i := 1; i < n; i++ {
		if chunks[i] == "" {
			return ""
		}
		b.WriteString(chunks[i])
	}
	return b.String()
}

// status is [Manager.Status] at time now. st.mu is held and the session
// loaded.
func (st *state) status(now int64) Status {
	d := st.d
	switch {
	case d.destroyed && !d.modified:
		return Destroyed
	case d.modified:
		return Modified
	case !d.fresh && d.codec > 0:
		return Modified // re-seal with the newest key
	case !d.fresh && st.cfg.idle > 0 && now-d.p.active >= int64(st.cfg.throttle):
		return Modified // record activity for the idle timeout
	}
	return Unmodified
}

// commit is the hook that runs just before the response headers go out: it
// adds Vary and, when needed, the Set-Cookie headers.
func (st *state) commit(status int) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.headersOut = true
	if st.d == nil {
		return status
	}
	h := st.hw.Header()
	h.Add("Vary", "Cookie")
	now := time.Now()
	switch st.status(unixNano(now)) {
	case Unmodified:
		return status
	case Destroyed:
		if st.d.sent > 0 {
			st.expireChunks(h, 0)
			h.Add("Cache-Control", `no-cache="Set-Cookie"`)
		}
		return status
	}
	sealed, err := st.seal(now)
	if err != nil {
		return st.fail(err)
	}
	cookies, err := st.cfg.split(sealed, st.cookieAttrs(st.expiry(), now))
	if err != nil {
		st.m.stats.tooLarge.Add(1)
		return st.fail(err)
	}
	for _, c := range cookies {
		h.Add("Set-Cookie", c)
	}
	st.expireChunks(h, len(cookies))
	h.Add("Cache-Control", `no-cache="Set-Cookie"`)
	st.m.stats.saved.Add(1)
	return status
}

// seal records activity at now, gives a new session its ID, and encodes
// and seals it with the newest key. st.mu is held and the session loaded.
func (st *state) seal(now time.Time) (string, error) {
	if st.d.putErr != nil {
		return "", st.d.putErr
	}
	if st.d.p.id == [idLen]byte{} {
		rand.Read(st.d.p.id[:])
	}
	st.d.p.active = unixNano(now)
	b, err := appendPayload(make([]byte, 0, 128), &st.d.p)
	if err != nil {
		return "", err
	}
	return st.m.codecs[0].Encode(st.cfg.cookie.Name, b)
}

// expiry is when the session ends unless used again: its deadline, or
// sooner with an idle timeout. st.mu is held and the session loaded.
func (st *state) expiry() time.Time {
	exp := st.d.p.expires
	if st.cfg.idle > 0 {
		exp = min(exp, addClamped(st.d.p.active, st.cfg.idle))
	}
	return time.Unix(0, exp)
}

// cookieAttrs returns the cookie attributes for a session expiring at exp:
// with Expires and Max-Age when the cookie persists.
func (st *state) cookieAttrs(exp, now time.Time) string {
	if st.cfg.cookie.Persist || st.d.p.flags&flagRememberMe != 0 {
		return st.cfg.attrs + expiresAttrs(exp, now)
	}
	return st.cfg.attrs
}

// expiresAttrs returns "; Expires=…; Max-Age=…" for exp, both rounded up to
// the second so the browser never drops the cookie before the server would.
func expiresAttrs(exp, now time.Time) string {
	secs := exp.Unix()
	if exp.Nanosecond() > 0 {
		secs++
	}
	maxAge := max((exp.Sub(now)+time.Second-1)/time.Second, 1)
	return "; Expires=" + time.Unix(secs, 0).UTC().Format(http.TimeFormat) +
		"; Max-Age=" + strconv.FormatInt(int64(maxAge), 10)
}

// split returns the Set-Cookie header values that carry sealed with attrs,
// each fitting in maxCookieHeader bytes: one cookie, or up to MaxChunks.
func (c *config) split(sealed, attrs string) ([]string, error) {
	name := c.cookie.Name
	// room is how many value bytes fit in the Set-Cookie line of cookie i.
	room := func(i int) int {
		return maxCookieHeader - headerPrefix - len(chunkName(name, i)) - len("=") - len(attrs)
	}
	if len(sealed) <= room(0) {
		return []string{name + "=" + sealed + attrs}, nil
	}
	// Chunk: find the fewest cookies that hold it.
	for n := 2; n <= c.maxChunks; n++ {
		prefix := strconv.Itoa(n) + "."
		total := -len(prefix)
		for i := range n {
			total += room(i)
		}
		if total < len(sealed) {
			continue
		}
		out := make([]string, 0, n)
		rest := sealed
		for i := range n {
			r := room(i)
			if i == 0 {
				r -= len(prefix)
			}
			// Spread evenly so no cookie sits right at the limit.
			size := min(r, (len(rest)+n-i-1)/(n-i))
			v := rest[:size]
			if i == 0 {
				v = prefix + v
			}
			rest = rest[size:]
			out = append(out, chunkName(name, i)+"="+v+attrs)
		}
		return out, nil
	}
	return nil, ErrTooLarge
}

func chunkName(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "." + strconv.Itoa(i)
}

// expireChunks deletes the cookies the client sent from index from on.
func (st *state) expireChunks(h http.Header, from int) {
	for i := from; i < st.d.sent; i++ {
		h.Add("Set-Cookie", chunkName(st.cfg.cookie.Name, i)+"="+st.cfg.delAttrs)
	}
}

// fail hands err to ErrorHandler while the headers are not yet out: its
// headers and status replace the handler's, its body is kept for after the
// handler returns, and the handler's body is discarded. st.mu is held.
func (st *state) fail(err error) int {
	st.m.stats.errors.Add(1)
	st.hw.DiscardBody()
	st.d.errStatus = http.StatusInternalServerError
	st.d.errBody = []byte{}
	st.m.handleError(errorWriter{st}, &st.req, err)
	return st.d.errStatus
}

// errorWriter is what ErrorHandler writes to from inside the hook.
type errorWriter struct{ st *state }

func (w errorWriter) Header() http.Header { return w.st.hw.Header() }
func (w errorWriter) WriteHeader(code int) {
	if code >= 200 {
		w.st.d.errStatus = code
	}
}
func (w errorWriter) Write(p []byte) (int, error) {
	w.st.d.errBody = append(w.st.d.errBody, p...)
	return len(p), nil
}

// finish completes the response after the handler returned: it sends the
// headers if the handler wrote nothing, then reports what went wrong.
func (st *state) finish() {
	st.hw.Done()
	st.mu.Lock()
	var body []byte
	var late error
	if st.d != nil {
		body, late = st.d.errBody, st.d.late
	}
	st.mu.Unlock()
	if len(body) > 0 {
		st.hw.ResponseWriter.Write(body)
	}
	if late != nil {
		st.m.stats.errors.Add(1)
		st.m.handleError(&discardWriter{}, &st.req, late)
	}
}

// modify loads the session and notes a change. st.mu is held.
func (st *state) modify() {
	st.load()
	st.d.modified = true
	st.changed()
}

// changed records a change that the client must be sent (or could not be:
// ErrHeadersWritten). st.mu is held.
func (st *state) changed() {
	st.rs.Used(reqstate.Personal)
	if st.headersOut && st.d.late == nil {
		st.d.late = ErrHeadersWritten
	}
}
