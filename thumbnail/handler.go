package thumbnail

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Handler]. Only Source is required; every other zero
// value means the default given in its comment.
type Options struct {
	// Source supplies the original images, e.g. Dir("uploads") or
	// Origin("https://images.example.com", client). Required.
	Source Source

	// Key signs and verifies thumbnail URLs with HMAC-SHA256; derive it with
	// sharednothing.DeriveKey(secret, "thumbnail") and use the same key on
	// every instance. It must be at least 32 bytes. Without a Key only
	// Presets are served: there is no unsigned mode.
	Key []byte

	// PreviousKeys are older (or, while a rotation rolls out, next) keys
	// whose signatures are still accepted; new URLs are always signed with
	// Key. They let one handler, with one cache and one render queue, serve
	// every page linked during a key rotation.
	PreviousKeys [][]byte

	// Presets are named specs served without a signature, e.g.
	// {"avatar": {Width: 64, Height: 64, Mode: Fill}} serves
	// /avatar/{path}. Names are lower-case letters, digits, '-' and '_',
	// starting with a letter.
	Presets map[string]Spec

	// Prefix is the path the handler is mounted at, such as "/thumbs".
	// [Handler.URL] puts it in front of the URLs it builds, and ServeHTTP
	// removes it from request paths that still carry it (chi's Mount leaves
	// it in place; http.StripPrefix has already removed it), so no preset
	// should be named like the prefix's first element. Default "".
	Prefix string

	// MaxSourceBytes caps the bytes read from a source (413 beyond it).
	// Default 32 MiB.
	MaxSourceBytes int64
	// MaxSourcePixels caps width×height of a source, times the frame count
	// for GIFs, checked from the header before decoding (413 beyond it).
	// Default 50,000,000.
	MaxSourcePixels int64
	// MaxDimension caps each side of a thumbnail (400 beyond it).
	// Default 4096.
	MaxDimension int

	// Concurrency is how many renders run at once. Default
	// runtime.GOMAXPROCS(0).
	Concurrency int
	// QueueSize is how many renders may wait for a slot, first in first
	// out; when it is full a request gets 503 at once. Default 64; a
	// negative value means no waiting at all.
	QueueSize int
	// QueueTimeout is the longest a render waits for a slot before its
	// requests get 503. Default 10 s.
	QueueTimeout time.Duration
	// RetryAfter is the Retry-After sent with 503. Default 1 s.
	RetryAfter time.Duration

	// CacheBytes bounds the per-machine memory cache of rendered
	// thumbnails. Default 128 MiB; negative disables it.
	CacheBytes int64
	// CacheDir, when set, also keeps rendered thumbnails on disk there,
	// written atomically. Default "" (no disk cache).
	CacheDir string
	// CacheDirBytes caps the size of CacheDir. Default 1 GiB.
	CacheDirBytes int64

	// ErrorLog receives failures that are the server's or the source's
	// fault (status 500, 502, 504) and disk cache errors. Default log.Printf.
	ErrorLog func(r *http.Request, err error)
}

// Handler serves thumbnails at /{spec}/{path}?s={signature}. Create it with
// [New]. It is safe for concurrent use.
type Handler struct {
	opts    Options
	presets map[string]Spec
	mem     store
	disk    *diskCache
	q       *queue
	flights flights
	bufs    sync.Pool // *bytes.Buffer for source bytes
	macs    sync.Pool // hash.Hash keyed with Options.Key

	renders      atomic.Int64 // renders started, for tests
	beforeRender func()       // test hook, called holding a queue slot
}

// Errors reported by the handler for bad requests, besides the render
// errors ([ErrSourceTooLarge], [ErrUnsupportedFormat], [ErrCorruptImage],
// [ErrOutputTooLarge]) and [ErrBadSpec], [ErrOverloaded], [ErrOriginTimeout].
var (
	// ErrBadPath: the image path is empty, absolute or has "." or ".."
	// elements, backslashes or NUL bytes (400).
	ErrBadPath = errors.New("thumbnail: bad image path")
	// ErrBadSignature: the s parameter is missing or does not match (403).
	ErrBadSignature = errors.New("thumbnail: bad signature")
	// ErrNoKey: a non-preset spec was requested but no Key is configured (403).
	ErrNoKey = errors.New("thumbnail: signed URLs need Options.Key; only presets are served")
	// ErrWebPOutput: WebP output was asked for; this package cannot encode it (400).
	ErrWebPOutput = errors.New("thumbnail: webp output is not supported; ask for jpeg or png, or leave the format out")
)

// New returns a Handler for opts. It returns an error for a missing Source,
// a Key shorter than 32 bytes, a bad preset, or a CacheDir it cannot create.
func New(opts Options) (*Handler, error) {
	if opts.Source == nil {
		return nil, errors.New("thumbnail: Options.Source is required")
	}
	if opts.Key != nil && len(opts.Key) < 32 {
		return nil, errors.New("thumbnail: Options.Key must be at least 32 bytes")
	}
	for _, k := range opts.PreviousKeys {
		if len(k) < 32 {
			return nil, errors.New("thumbnail: every Options.PreviousKeys entry must be at least 32 bytes")
		}
	}
	if opts.Key == nil && len(opts.PreviousKeys) > 0 {
		return nil, errors.New("thumbnail: Options.PreviousKeys needs Options.Key")
	}
	if d, ok := opts.Source.(*dir); ok {
		if _, err := d.open(); err != nil {
			return nil, fmt.Errorf("thumbnail: Dir: %w", err)
		}
	}
	opts.Prefix = strings.TrimRight(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasPrefix(opts.Prefix, "/") {
		return nil, errors.New("thumbnail: Options.Prefix must start with /")
	}
	if opts.MaxSourceBytes <= 0 {
		opts.MaxSourceBytes = 32 << 20
	}
	if opts.MaxSourcePixels <= 0 {
		opts.MaxSourcePixels = 50_000_000
	}
	if opts.MaxDimension <= 0 {
		opts.MaxDimension = 4096
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	switch {
	case opts.QueueSize == 0:
		opts.QueueSize = 64
	case opts.QueueSize < 0:
		opts.QueueSize = 0
	}
	if opts.QueueTimeout <= 0 {
		opts.QueueTimeout = 10 * time.Second
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 128 << 20
	}
	if opts.CacheDirBytes <= 0 {
		opts.CacheDirBytes = 1 << 30
	}
	if opts.ErrorLog == nil {
		opts.ErrorLog = func(r *http.Request, err error) { log.Printf("thumbnail: %s: %v", r.URL.Path, err) }
	}
	h := &Handler{opts: opts, presets: make(map[string]Spec, len(opts.Presets))}
	for name, sp := range opts.Presets {
		if !validPresetName(name) {
			return nil, fmt.Errorf("thumbnail: preset name %q: use lower-case letters, digits, - and _", name)
		}
		if err := sp.check(); err != nil {
			return nil, fmt.Errorf("thumbnail: preset %q: %w", name, err)
		}
		if err := h.checkSpec(sp); err != nil {
			return nil, fmt.Errorf("thumbnail: preset %q: %w", name, err)
		}
		h.presets[name] = sp
	}
	if opts.CacheBytes > 0 {
		mem, err := newMemStore(opts.CacheBytes)
		if err != nil {
			return nil, fmt.Errorf("thumbnail: CacheBytes: %w", err)
		}
		h.mem = mem
	}
	if opts.CacheDir != "" {
		d, err := newDiskCache(opts.CacheDir, opts.CacheDirBytes)
		if err != nil {
			return nil, fmt.Errorf("thumbnail: CacheDir: %w", err)
		}
		h.disk = d
	}
	h.q = newQueue(opts.Concurrency, opts.QueueSize, opts.QueueTimeout)
	return h, nil
}

// checkSpec applies the handler's limits to a syntactically valid spec.
func (h *Handler) checkSpec(sp Spec) error {
	if sp.Width > h.opts.MaxDimension || sp.Height > h.opts.MaxDimension {
		return fmt.Errorf("%w: %s is larger than the limit of %d pixels a side", ErrOutputTooLarge, sp, h.opts.MaxDimension)
	}
	if sp.Format == WebP {
		return ErrWebPOutput
	}
	return nil
}

// URL returns the signed URL path of the thumbnail of the image at name
// (a slash-separated path inside the source) described by spec, starting
// with Options.Prefix, for use in templates. It panics if the handler has
// no Key. The spec is not checked here; an invalid one gets 400 when
// requested.
func (h *Handler) URL(name string, spec Spec) string {
	if h.opts.Key == nil {
		panic("thumbnail: Handler.URL needs Options.Key")
	}
	canon := spec.String()
	return h.opts.Prefix + "/" + canon + "/" + escapePath(name) + "?s=" + h.sign(canon, name)
}

// PresetURL returns the URL path of the named preset's thumbnail of the
// image at name. Preset URLs carry no signature.
func (h *Handler) PresetURL(preset, name string) string {
	return h.opts.Prefix + "/" + preset + "/" + escapePath(name)
}

func escapePath(name string) string { return (&url.URL{Path: name}).EscapedPath() }

// mac returns HMAC-SHA256(Key, canon + "/" + name) appended to dst.
func (h *Handler) mac(dst []byte, canon, name string) []byte {
	m, _ := h.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, h.opts.Key)
	}
	m.Reset()
	io.WriteString(m, canon)
	io.WriteString(m, "/")
	io.WriteString(m, name)
	dst = m.Sum(dst)
	h.macs.Put(m)
	return dst
}

func (h *Handler) sign(canon, name string) string {
	return base64.RawURLEncoding.EncodeToString(h.mac(nil, canon, name))
}

// verify checks sig in constant time.
func (h *Handler) verify(canon, name, sig string) bool {
	var got, want [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(sig)) != len(got) {
		return false
	}
	if _, err := base64.RawURLEncoding.Decode(got[:], []byte(sig)); err != nil {
		return false
	}
	if hmac.Equal(got[:], h.mac(want[:0], canon, name)) {
		return true
	}
	for _, k := range h.opts.PreviousKeys {
		m := hmac.New(sha256.New, k)
		io.WriteString(m, canon)
		io.WriteString(m, "/")
		io.WriteString(m, name)
		if hmac.Equal(got[:], m.Sum(want[:0])) {
			return true
		}
	}
	return false
}

// queryParam returns the first value of the query parameter key, unescaped,
// without building the whole url.Values map.
func queryParam(rawQuery, key string) string {
	for q := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(q, "=")
		if k == key {
			if u, err := url.QueryUnescape(v); err == nil {
				return u
			}
			return ""
		}
	}
	return ""
}

// checkName rejects image paths that could mean something other than a
// plain relative name, whatever the source.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the URL must be /{spec}/{image path}", ErrBadPath)
	}
	if strings.ContainsAny(name, "\\\x00") {
		return fmt.Errorf("%w: backslash or NUL in %q", ErrBadPath, name)
	}
	for el := range strings.SplitSeq(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q must be relative, without empty, . or .. elements", ErrBadPath, name)
		}
	}
	return nil
}

// ServeHTTP serves GET and HEAD for /{spec}/{path}.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, http.StatusMethodNotAllowed, errors.New("thumbnail: only GET and HEAD are allowed"))
		return
	}
	p := r.URL.Path
	if h.opts.Prefix != "" && (p == h.opts.Prefix || strings.HasPrefix(p, h.opts.Prefix+"/")) {
		p = p[len(h.opts.Prefix):]
	}
	specStr, name, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	sp, preset := h.presets[specStr]
	if !preset {
		var err error
		if sp, err = ParseSpec(specStr); err != nil {
			h.fail(w, r, http.StatusBadRequest, err)
			return
		}
	}
	if err := checkName(name); err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	canon := sp.String()
	if !preset {
		if h.opts.Key == nil {
			h.fail(w, r, http.StatusForbidden, ErrNoKey)
			return
		}
		if !h.verify(canon, name, queryParam(r.URL.RawQuery, "s")) {
			h.fail(w, r, http.StatusForbidden, fmt.Errorf("%w for %s/%s", ErrBadSignature, canon, name))
			return
		}
		if err := h.checkSpec(sp); err != nil {
			h.fail(w, r, http.StatusBadRequest, err)
			return
		}
	}

	info, err := h.opts.Source.Stat(r.Context(), name)
	if err != nil {
		h.fail(w, r, sourceStatus(err), err)
		return
	}
	if info.Size > h.opts.MaxSourceBytes {
		h.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: %d bytes is more than the limit of %d", ErrSourceTooLarge, info.Size, h.opts.MaxSourceBytes))
		return
	}
	key := info.Version + "\x00" + canon + "\x00" + name
	etag := etagFor(key)
	// Header keys are canonical already: assigning skips re-canonicalising.
	hdr := w.Header()
	if preset {
		hdr["Cache-Control"] = cacheControlPreset
	} else {
		hdr["Cache-Control"] = cacheControlSigned
	}
	hdr["Etag"] = []string{etag}
	if !info.ModTime.IsZero() {
		hdr["Last-Modified"] = []string{info.ModTime.UTC().Format(http.TimeFormat)}
	}
	if notModified(r, etag, info.ModTime) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	e, err := h.lookupOrRender(r, key, etag, name, sp)
	if err != nil {
		delete(hdr, "Etag")
		delete(hdr, "Last-Modified")
		h.fail(w, r, statusOf(err), err)
		return
	}
	hdr["Content-Type"] = []string{e.contentType}
	hdr["Content-Length"] = []string{strconv.Itoa(len(e.body))}
	hdr["X-Content-Type-Options"] = nosniff
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(e.body)
	}
}

var (
	cacheControlSigned = []string{"public, max-age=31536000, immutable"}
	cacheControlPreset = []string{"public, max-age=3600"}
	nosniff            = []string{"nosniff"}
)

// notModified evaluates If-None-Match, or If-Modified-Since when there is
// no If-None-Match (RFC 9110, section 13.2.2).
func notModified(r *http.Request, etag string, modTime time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagMatch(inm, etag)
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && !modTime.IsZero() {
		t, err := http.ParseTime(ims)
		return err == nil && !modTime.Truncate(time.Second).After(t)
	}
	return false
}

// lookupOrRender returns the cached thumbnail or renders it, once per key
// however many requests ask at the same time.
func (h *Handler) lookupOrRender(r *http.Request, key, etag, name string, sp Spec) (*entry, error) {
	if h.mem != nil {
		if e, ok := h.mem.get(key); ok {
			return e, nil
		}
	}
	c, leader := h.flights.join(key)
	if leader {
		func() {
			defer h.flights.done(key, c) // followers are released even if fill panics
			c.e, c.err = h.fill(r, key, etag, name, sp)
		}()
		return c.e, c.err
	}
	select {
	case <-c.done:
		return c.e, c.err
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// fill finds a thumbnail on disk or renders it, holding a queue slot only
// for the render itself.
func (h *Handler) fill(r *http.Request, key, etag, name string, sp Spec) (*entry, error) {
	if h.disk != nil {
		if e, ok := h.disk.get(key, etag); ok {
			h.store(key, e)
			return e, nil
		}
	}
	// The render outlives a leader whose client goes away: the requests
	// coalesced onto it still want the result. The queue timeout and the
	// source's own timeouts bound it.
	ctx := context.WithoutCancel(r.Context())
	if err := h.q.acquire(ctx); err != nil {
		return nil, err
	}
	e, err := h.render(ctx, name, sp)
	h.q.release()
	if err != nil {
		return nil, err
	}
	e.etag = etag
	h.store(key, e)
	if h.disk != nil {
		if err := h.disk.set(key, e); err != nil {
			h.opts.ErrorLog(r, fmt.Errorf("disk cache: %w", err))
		}
	}
	return e, nil
}

func (h *Handler) store(key string, e *entry) {
	if h.mem != nil {
		h.mem.set(key, e)
	}
}

// render reads, decodes, resizes and encodes one thumbnail.
func (h *Handler) render(ctx context.Context, name string, sp Spec) (e *entry, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, err = nil, fmt.Errorf("%w: render failed: %v", ErrCorruptImage, p)
		}
	}()
	h.renders.Add(1)
	if h.beforeRender != nil {
		h.beforeRender()
	}
	rc, info, err := h.opts.Source.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > h.opts.MaxSourceBytes {
		return nil, fmt.Errorf("%w: %d bytes is more than the limit of %d", ErrSourceTooLarge, info.Size, h.opts.MaxSourceBytes)
	}
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer h.bufs.Put(buf)
	if info.Size > 0 {
		buf.Grow(int(info.Size) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(rc, h.opts.MaxSourceBytes+1)); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(buf.Len()) > h.opts.MaxSourceBytes {
		return nil, fmt.Errorf("%w: more than the limit of %d bytes", ErrSourceTooLarge, h.opts.MaxSourceBytes)
	}
	body, ct, err := renderBytes(buf.Bytes(), sp, h.opts.MaxSourcePixels, h.opts.MaxDimension)
	if err != nil {
		return nil, err
	}
	return &entry{body: body, contentType: ct, modTime: info.ModTime}, nil
}

// renderBytes turns source bytes into thumbnail bytes.
func renderBytes(data []byte, sp Spec, maxPixels int64, maxDim int) ([]byte, string, error) {
	d, err := decode(data, sp, maxPixels, maxDim)
	if err != nil {
		return nil, "", err
	}
	m := thumb(d.img, d.plan, d.orientation)
	return encode(m, outputFormat(sp.Format, d.format, m), sp.quality())
}

func etagFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// etagMatch implements If-None-Match's weak comparison against a strong tag.
func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func sourceStatus(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound
	case errors.Is(err, ErrOriginTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return 499
	}
	return http.StatusBadGateway
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrSourceTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedFormat):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrCorruptImage):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrOutputTooLarge), errors.Is(err, ErrBadSpec), errors.Is(err, ErrWebPOutput):
		return http.StatusBadRequest
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable
	}
	return sourceStatus(err)
}

// fail writes a plain-text error. Nothing of the source is ever sent.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status == 499 { // the client went away; nobody is listening
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", strconv.Itoa(max(1, int(h.opts.RetryAfter/time.Second))))
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		h.opts.ErrorLog(r, err)
	}
	msg := strings.TrimPrefix(err.Error(), "thumbnail: ")
	if status == http.StatusNotFound {
		// Not the file system's words: they would tell what exists outside.
		msg = "image not found"
	}
	http.Error(w, msg, status)
}
