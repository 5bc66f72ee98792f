package localcache

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sharednothing/sharednothing/internal/hook"
)

// ErrBadURL is returned by [ResponseCache.Purge] for a URL it cannot parse.
var ErrBadURL = errors.New("localcache: purge URL must be absolute, like https://host/path")

// DefaultStatusCodes are the statuses a [ResponseCache] stores unless
// ResponseOptions.StatusCodes says otherwise.
var DefaultStatusCodes = []int{200, 203, 204, 300, 301, 404, 410}

// maxVariants bounds the variants kept per URL, so a Vary on a header with
// many values (User-Agent) cannot crowd out other URLs.
const maxVariants = 16

// entryOverhead is what a stored response counts against MaxBytes beyond
// its body and header bytes: the typed cache's bookkeeping and the maps.
const entryOverhead = 512

// ResponseOptions configures a [ResponseCache]. The zero value is usable.
type ResponseOptions struct {
	// MaxBytes bounds the memory held by stored responses (bodies, headers
	// and a per-entry overhead). Zero means 64 MiB.
	MaxBytes int64

	// MaxBodyBytes is the largest body stored. Larger responses stream
	// through to the client uncached, without being buffered whole. Zero
	// means 1 MiB.
	MaxBodyBytes int64

	// DefaultTTL is the freshness lifetime given to a cacheable response
	// that carries no freshness information (no max-age, s-maxage or
	// Expires). Zero (the default) means such responses are not stored.
	DefaultTTL time.Duration

	// StatusCodes lists the statuses that may be stored. Nil means
	// DefaultStatusCodes (200, 203, 204, 300, 301, 404, 410), so an error
	// page cannot be poisoned into everyone's view.
	StatusCodes []int

	// Now returns the current time. Nil means time.Now; tests inject a
	// fake clock.
	Now func() time.Time
}

// ResponseCache is an HTTP middleware that stores responses in memory and
// serves later requests for the same URL from there, as a shared cache
// under RFC 9111. Make one with [NewResponseCache] and mount
// [ResponseCache.Handler]. It is safe for concurrent use.
//
// Mount it inside (after) middlewares that set cookies, such as sessions:
// what they add on the way out is not stored, and they still run on hits.
// A handler whose output depends on who asks must say so with
// Cache-Control: private (or no-store) or a Vary header.
type ResponseCache struct {
	cache    *Cache[string, *resource]
	maxBody  int64
	ttl      time.Duration
	statuses map[int]bool
	now      func() time.Time

	mu      sync.Mutex
	flights map[string]*flight // misses in progress, by primary key
}

// resource is what is stored under a URL: its Vary header names and one
// response per combination of those request headers' values. It is
// replaced whole, never modified.
type resource struct {
	vary     []string
	variants map[string]*response
	pass     bool // the URL's last response was not storable: don't coalesce
}

// passTTL is how long a URL whose response was not storable skips
// coalescing, so requests for an uncacheable page don't queue behind each
// other. A storable response replaces the marker at once.
const passTTL = 30 * time.Second

// response is one stored response.
type response struct {
	status   int
	header   http.Header // as sent, minus X-Cache; slices clipped so appends copy
	body     []byte
	stored   time.Time
	age      time.Duration // Age it had when stored
	expires  time.Time
	authOK   bool   // may answer a request with Authorization
	etag     string // validators, for 304s
	modified time.Time
}

// flight is a miss in progress that identical requests wait for.
type flight struct {
	done chan struct{}
	res  *resource // set before done closes; nil if nothing was stored
}

// NewResponseCache returns a response cache configured by opts, or an error
// if a size or TTL is negative or a status code is not a valid final status.
func NewResponseCache(opts ResponseOptions) (*ResponseCache, error) {
	if opts.MaxBytes < 0 || opts.MaxBodyBytes < 0 || opts.DefaultTTL < 0 {
		return nil, errors.New("localcache: ResponseOptions sizes and DefaultTTL must not be negative")
	}
	rc := &ResponseCache{
		maxBody:  cmp(opts.MaxBodyBytes, 1<<20),
		ttl:      opts.DefaultTTL,
		statuses: make(map[int]bool),
		now:      opts.Now,
		flights:  make(map[string]*flight),
	}
	if rc.now == nil {
		rc.now = time.Now
	}
	codes := opts.StatusCodes
	if codes == nil {
		codes = DefaultStatusCodes
	}
	for _, c := range codes {
		if c < 200 || c > 599 {
			return nil, errors.New("localcache: StatusCodes must be final statuses (200-599), got " + strconv.Itoa(c))
		}
		rc.statuses[c] = true
	}
	maxBytes := cmp(opts.MaxBytes, 64<<20)
	var err error
	rc.cache, err = New(Options[string, *resource]{
		MaxBytes: maxBytes,
		Cost:     resourceCost,
		Now:      opts.Now,
	})
	if err != nil {
		return nil, err
	}
	return rc, nil
}

func cmp(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

func resourceCost(key string, r *resource) int64 {
	n := int64(len(key) + entryOverhead)
	for k, v := range r.variants {
		n += int64(len(k)+len(v.body)) + entryOverhead
		for name, vals := range v.header {
			n += int64(len(name))
			for _, s := range vals {
				n += int64(len(s)) + 16
			}
		}
	}
	return n
}

// Purge removes the stored responses (every variant) for an absolute URL
// such as "https://example.com/path?q=1". It returns [ErrBadURL] if rawURL
// is not one.
func (rc *ResponseCache) Purge(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ErrBadURL
	}
	key, ok := makeKey(u.Scheme, u.Host, u.EscapedPath(), u.RawQuery)
	if !ok {
		return ErrBadURL
	}
	rc.cache.Delete(key)
	return nil
}

// PurgeAll removes every stored response.
func (rc *ResponseCache) PurgeAll() { rc.cache.Purge() }

// Stats returns the counters of the underlying cache. An entry is one URL
// with all its Vary variants, so a hit there can still be an HTTP miss when
// the variant asked for is not stored; X-Cache tells them apart.
func (rc *ResponseCache) Stats() Stats { return rc.cache.Stats() }

// makeKey builds the method-independent primary key of a URL, with the
// query's parameters sorted. ok is false for a query that does not parse.
func makeKey(scheme, host, path, rawQuery string) (string, bool) {
	if rawQuery != "" && !canonicalQuery(rawQuery) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return "", false
		}
		rawQuery = q.Encode() // sorted by key
	}
	return strings.ToLower(scheme) + "://" + strings.ToLower(host) + path + "?" + rawQuery, true
}

// canonicalQuery reports whether q is already what url.Values.Encode would
// make of it: name=value pairs sorted by name, using only unreserved
// characters, so the common case skips parsing.
func canonicalQuery(q string) bool {
	if strings.HasSuffix(q, "&") {
		return false
	}
	prev := ""
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		name, _, ok := strings.Cut(pair, "=")
		if !ok || name == "" || name < prev {
			return false
		}
		prev = name
		for i := 0; i < len(pair); i++ {
			c := pair[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '=' && i == len(name)) {
				return false
			}
		}
	}
	return true
}

func requestKey(r *http.Request) (string, bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return makeKey(scheme, r.Host, r.URL.EscapedPath(), r.URL.RawQuery)
}

// variantKey joins the values of the request headers named by vary.
func variantKey(vary []string, h http.Header) string {
	if len(vary) == 0 {
		return ""
	}
	var b strings.Builder
	for _, name := range vary {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.Join(h.Values(name), ","))
		b.WriteByte('\n')
	}
	return b.String()
}

// lookup returns the fresh stored response for r, or nil.
func (rc *ResponseCache) lookup(res *resource, r *http.Request, now time.Time) *response {
	if res == nil {
		return nil
	}
	resp := res.variants[variantKey(res.vary, r.Header)]
	if resp == nil || !now.Before(resp.expires) {
		return nil
	}
	if len(r.Header["Authorization"]) > 0 && !resp.authOK {
		return nil
	}
	return resp
}

// Handler returns next wrapped by the cache: GET and HEAD requests are
// answered from stored responses when fresh ones exist (X-Cache: HIT), and
// cacheable GET responses of next are stored (X-Cache: MISS). Identical
// concurrent misses run next once and share its response; for 30 s after a
// URL's response turned out not storable, its requests run side by side
// instead. A successful unsafe request (POST, PUT,
// PATCH, DELETE) removes what is stored for its URL.
func (rc *ResponseCache) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rc.invalidateAfter(w, r, next)
			return
		}
		key, ok := requestKey(r)
		if !ok {
			w.Header()["X-Cache"] = missValue
			next.ServeHTTP(w, r)
			return
		}
		res, _ := rc.cache.Get(key)
		now := rc.now()
		if resp := rc.lookup(res, r, now); resp != nil {
			rc.serve(w, r, resp, now)
			return
		}
		if r.Method == http.MethodHead || len(r.Header["Authorization"]) > 0 || (res != nil && res.pass) {
			// HEAD has no body to store; an authorized response is
			// per-user until it says otherwise; the URL's last response
			// was not storable: none of these is coalesced.
			rc.fetch(w, r, next, key)
			return
		}

		rc.mu.Lock()
		f := rc.flights[key]
		leader := f == nil
		if leader {
			f = &flight{done: make(chan struct{})}
			rc.flights[key] = f
		}
		rc.mu.Unlock()

		if !leader {
			select {
			case <-f.done:
			case <-r.Context().Done():
				return
			}
			now := rc.now()
			if resp := rc.lookup(f.res, r, now); resp != nil {
				rc.serve(w, r, resp, now)
			} else {
				rc.fetch(w, r, next, key) // not storable, or another variant
			}
			return
		}
		defer func() {
			rc.mu.Lock()
			delete(rc.flights, key)
			rc.mu.Unlock()
			close(f.done)
		}()
		f.res = rc.fetch(w, r, next, key)
		if f.res == nil && res == nil {
			rc.cache.SetWithTTL(key, &resource{pass: true}, passTTL)
		}
	})
}

var (
	hitValue  = []string{"HIT"}
	missValue = []string{"MISS"}
)

// serve writes a stored response, or a 304 if r's validators match it.
func (rc *ResponseCache) serve(w http.ResponseWriter, r *http.Request, resp *response, now time.Time) {
	h := w.Header()
	age := strconv.FormatInt(int64((resp.age+now.Sub(resp.stored))/time.Second), 10)
	if notModified(r, resp) {
		for _, k := range []string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary", "Last-Modified"} {
			if v, ok := resp.header[k]; ok {
				h[k] = v
			}
		}
		h["Age"] = []string{age}
		h["X-Cache"] = hitValue
		w.WriteHeader(http.StatusNotModified)
		return
	}
	for k, v := range resp.header {
		h[k] = v
	}
	h["Age"] = []string{age}
	h["X-Cache"] = hitValue
	w.WriteHeader(resp.status)
	if r.Method != http.MethodHead {
		w.Write(resp.body)
	}
}

func notModified(r *http.Request, resp *response) bool {
	if resp.status != http.StatusOK {
		return false
	}
	if inm := r.Header["If-None-Match"]; len(inm) > 0 {
		return etagMatch(strings.Join(inm, ","), resp.etag)
	}
	if ims := r.Header["If-Modified-Since"]; len(ims) > 0 && !resp.modified.IsZero() {
		t, err := http.ParseTime(ims[0])
		return err == nil && !resp.modified.After(t)
	}
	return false
}

// capture collects up to max body bytes; past that it gives up and lets
// the rest stream by.
type capture struct {
	buf  []byte
	max  int64
	over bool
}

func (c *capture) Write(p []byte) (int, error) {
	if !c.over {
		if int64(len(c.buf)+len(p)) > c.max {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, p...)
		}
	}
	return len(p), nil
}

// fetch runs next for r, streaming its response to w, and stores it if it is
// cacheable. It returns the resource stored, or nil.
func (rc *ResponseCache) fetch(w http.ResponseWriter, r *http.Request, next http.Handler, key string) *resource {
	var (
		resp *response
		vary []string
		capt *capture
		hw   *hook.Writer
	)
	hw = hook.New(w, func(status int) int {
		h := w.Header()
		if r.Method == http.MethodGet {
			resp, vary = rc.storable(r, status, h)
			if resp != nil {
				capt = &capture{max: rc.maxBody}
				hw.Tee(capt)
			}
		}
		h["X-Cache"] = missValue
		return status
	})
	next.ServeHTTP(hw, r)
	hw.Done()
	if resp == nil || capt.over {
		return nil
	}
	resp.body = capt.buf
	if resp.header.Get("Content-Length") == "" && resp.status != http.StatusNoContent {
		resp.header["Content-Length"] = []string{strconv.Itoa(len(resp.body))}
	}
	vk := variantKey(vary, r.Header)
	res := &resource{vary: vary, variants: map[string]*response{vk: resp}}
	if old, ok := rc.cache.peek(key); ok && slices.Equal(old.vary, vary) && len(old.variants) < maxVariants {
		now := rc.now()
		for k, v := range old.variants {
			if k != vk && now.Before(v.expires) {
				res.variants[k] = v
			}
		}
	}
	var ttl time.Duration
	for _, v := range res.variants {
		ttl = max(ttl, v.expires.Sub(rc.now()))
	}
	rc.cache.SetWithTTL(key, res, ttl)
	return res
}

// storable decides from the request, status and headers about to be sent
// whether the response may be stored, under RFC 9111 §3 for a shared cache
// and the stricter rules of this package. It returns the response to fill
// in (header snapshot, freshness, validators) and the Vary names, or nil.
func (rc *ResponseCache) storable(r *http.Request, status int, h http.Header) (*response, []string) {
	if !rc.statuses[status] || len(h["Set-Cookie"]) > 0 {
		return nil, nil
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n > rc.maxBody {
			return nil, nil
		}
	}
	d := parseCacheControl(h)
	if d.noStore || d.noCache || d.private {
		return nil, nil
	}
	authOK := d.public || d.sMaxAge >= 0
	if r.Header.Get("Authorization") != "" && !authOK {
		return nil, nil
	}
	vary, star := varyNames(h)
	if star {
		return nil, nil
	}
	now := rc.now()
	var age time.Duration
	if a := h.Get("Age"); a != "" {
		secs, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return nil, nil
		}
		age = time.Duration(secs) * time.Second
	}
	var lifetime time.Duration
	switch {
	case d.sMaxAge >= 0:
		lifetime = d.sMaxAge
	case d.maxAge >= 0:
		lifetime = d.maxAge
	case h.Get("Expires") != "":
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			return nil, nil // an invalid Expires means already expired
		}
		date := now
		if t, err := http.ParseTime(h.Get("Date")); err == nil {
			date = t
		}
		lifetime = exp.Sub(date)
	default:
		lifetime = rc.ttl
	}
	if lifetime-age <= 0 {
		return nil, nil
	}
	header := make(http.Header, len(h))
	for k, v := range h {
		if k == "X-Cache" || k == "Age" || k == "Connection" || k == "Keep-Alive" || k == "Transfer-Encoding" {
			continue
		}
		header[k] = slices.Clip(slices.Clone(v))
	}
	resp := &response{
		status:  status,
		header:  header,
		stored:  now,
		age:     age,
		expires: now.Add(lifetime - age),
		authOK:  authOK,
		etag:    h.Get("Etag"),
	}
	if t, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		resp.modified = t
	}
	return resp, vary
}

// invalidateAfter runs an unsafe request and, if it succeeded, drops what is
// stored for its URL (RFC 9111 §4.4).
func (rc *ResponseCache) invalidateAfter(w http.ResponseWriter, r *http.Request, next http.Handler) {
	hw := hook.New(w, nil)
	next.ServeHTTP(hw, r)
	hw.Done()
	switch r.Method {
	case http.MethodOptions, http.MethodTrace:
		return
	}
	if s := hw.Status(); s >= 200 && s < 400 {
		if key, ok := requestKey(r); ok {
			rc.cache.Delete(key)
		}
	}
}
