package session

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxCookieHeader is the most bytes one Set-Cookie header line may take:
// browsers drop cookies beyond 4096 bytes.
const maxCookieHeader = 4096

// headerPrefix is counted in every Set-Cookie line's size.
const headerPrefix = len("Set-Cookie: ")

// load opens the session cookie on first use. Anything wrong with the
// cookie (missing, foreign, tampered, truncated, expired, revoked) gives an
// empty new session. st.mu is held.
func (st *state) load() {
	if st.d != nil {
		return
	}
	st.d = new(data)
	now := st.cfg.now().Unix()
	sealed := st.readCookies()
	if sealed != "" && st.open(sealed, now) {
		return
	}
	st.d.fresh = true
	st.d.codec = 0
	st.d.p = payload{issued: now, expires: now + st.cfg.lifetime, active: now}
}

// open unseals and checks a cookie value into st.d.p.
func (st *state) open(sealed string, now int64) bool {
	// Length first: no MAC work for values no browser could have sent.
	if len(sealed) > st.cfg.maxChunks*maxCookieHeader || !canonical(sealed) {
		return false
	}
	for i, sc := range st.cfg.codecs {
		var b []byte
		// securecookie checks the MAC (name bound in) in constant time
		// before decrypting; only then do we decode.
		if sc.Decode(st.cfg.cookie.Name, sealed, &b) != nil {
			continue
		}
		var p payload
		if decodePayload(b, &p) != nil || p.id == [idLen]byte{} {
			return false
		}
		if now >= p.expires || (st.cfg.idle > 0 && now >= p.active+st.cfg.idle) {
			return false
		}
		if st.cfg.validate != nil && !st.cfg.validate(st.Context, &Values{&p}) {
			return false
		}
		st.d.p, st.d.codec = p, i
		return true
	}
	return false
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
// and its chunks, and records in st.d.sent how many of our cookies it carried.
// It parses the Cookie header itself to avoid allocating for other cookies.
func (st *state) readCookies() string {
	name := st.cfg.cookie.Name
	var main string
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
				if st.d.sent == 0 {
					main, st.d.sent = v, 1
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
	now := st.cfg.now()
	if st.d.destroyed && !st.d.modified {
		if st.d.sent > 0 {
			st.expireChunks(h, 0)
			h.Add("Cache-Control", `no-cache="Set-Cookie"`)
		}
		return status
	}
	write := st.d.modified || st.d.codec > 0
	if st.d.modified {
		st.d.p.active = now.Unix()
	} else if !st.d.fresh && st.cfg.idle > 0 && now.Unix()-st.d.p.active >= 60 {
		st.d.p.active = now.Unix()
		write = true
	}
	if !write {
		return status
	}
	if st.d.p.id == [idLen]byte{} {
		rand.Read(st.d.p.id[:])
	}
	cookies, err := st.seal(now)
	if err != nil {
		return st.fail(err)
	}
	for _, c := range cookies {
		h.Add("Set-Cookie", c)
	}
	st.expireChunks(h, len(cookies))
	h.Add("Cache-Control", `no-cache="Set-Cookie"`)
	return status
}

// seal encodes st.d.p with the newest key pair and splits it into Set-Cookie
// header values that each fit in maxCookieHeader bytes.
func (st *state) seal(now time.Time) ([]string, error) {
	b, err := appendPayload(make([]byte, 0, 128), &st.d.p)
	if err != nil {
		return nil, err
	}
	sealed, err := st.cfg.codecs[0].Encode(st.cfg.cookie.Name, b)
	if err != nil {
		return nil, err
	}
	attrs := st.cfg.attrs
	if st.cfg.cookie.Persist {
		exp := st.d.p.expires
		if st.cfg.idle > 0 {
			exp = min(exp, st.d.p.active+st.cfg.idle)
		}
		attrs += "; Expires=" + time.Unix(exp, 0).UTC().Format(http.TimeFormat) +
			"; Max-Age=" + strconv.FormatInt(max(exp-now.Unix(), 1), 10)
	}
	name := st.cfg.cookie.Name
	// room is how many value bytes fit in the Set-Cookie line of cookie i.
	room := func(i int) int {
		return maxCookieHeader - headerPrefix - len(chunkName(name, i)) - len("=") - len(attrs)
	}
	if len(sealed) <= room(0) {
		return []string{name + "=" + sealed + attrs}, nil
	}
	// Chunk: find the fewest cookies that hold it.
	for n := 2; n <= st.cfg.maxChunks; n++ {
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
		h.Add("Set-Cookie", chunkName(st.cfg.cookie.Name, i)+"="+st.cfg.attrs+
			"; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0")
	}
}

// fail hands err to ErrorFunc while the headers are not yet out: ErrorFunc's
// headers and status replace the handler's, its body is kept for after the
// handler returns, and the handler's body is discarded. st.mu is held.
func (st *state) fail(err error) int {
	st.hw.DiscardBody()
	st.d.errStatus = http.StatusInternalServerError
	st.d.errBody = []byte{}
	st.cfg.errorFunc(errorWriter{st}, &st.req, err)
	return st.d.errStatus
}

// errorWriter is what ErrorFunc writes to from inside the hook.
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
		st.cfg.errorFunc(&st.hw, &st.req, late)
	}
}

// modify loads the session and notes a change. st.mu is held.
func (st *state) modify() {
	st.load()
	st.d.modified = true
	if st.headersOut && st.d.late == nil {
		st.d.late = ErrHeadersWritten
	}
}
