package thumbnail

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing/internal/conditional"
	"github.com/sharednothing/sharednothing/internal/flight"
	"github.com/sharednothing/sharednothing/internal/httperr"
	"github.com/sharednothing/sharednothing/internal/sign"
	"github.com/sharednothing/sharednothing/localcache"
)

// Encoder writes m to w in an image format at quality 1–100. [Options.WebP]
// takes one, so that the WebP encoder a program uses (and its dependencies)
// is the program's choice, not this package's.
type Encoder func(w io.Writer, m image.Image, quality int) error

// Options configures a [Handler]. Only Source is required; every other zero
// value means the default given in its comment. [New] rejects negative
// numbers and durations.
type Options struct {
	// Source supplies the original images, e.g. Dir("uploads") or
	// Origin("https://images.example.com", client). Required.
	Source Source

	// Key signs and verifies thumbnail URLs (HMAC-SHA256); derive it with
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

	// WebP, if set, encodes WebP output: specs that ask for "webp" are
	// served, and a spec that leaves the format to the source gets WebP
	// when the request's Accept header lists image/webp (such responses
	// carry Vary: Accept). Without it, "webp" in a spec gets 400 and
	// responses never depend on Accept. This package has no WebP encoder
	// of its own; see the package documentation for one.
	WebP Encoder

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
	// runtime.GOMAXPROCS(0). Renders that decode more than 8 megapixels
	// hold at most Concurrency-1 slots when Concurrency > 1.
	Concurrency int
	// QueueSize is how many renders may wait for a slot, cheapest first
	// (heavy ones fill at most half of it, one source at most 8 places);
	// a render finding no room gets 503 at once. Default 64.
	QueueSize int
	// QueueTimeout is the longest a render waits for a slot before its
	// requests get 503. Default 10 s.
	QueueTimeout time.Duration
	// RenderTimeout is the longest a render may take once it has a slot,
	// reading the source included; past it the render is cancelled and
	// answered 422, like a corrupt image, and remembered as failed.
	// Default 10 s.
	RenderTimeout time.Duration
	// RetryAfter is the Retry-After sent with 503. Default 1 s.
	RetryAfter time.Duration

	// CacheBytes bounds the per-machine memory cache of rendered
	// thumbnails. Default 128 MiB.
	CacheBytes int64
	// CacheDir, when set, also keeps rendered thumbnails on disk there,
	// written atomically. Default "" (no disk cache).
	CacheDir string
	// CacheDirBytes caps the size of CacheDir. Default 1 GiB.
	CacheDirBytes int64
	// FailureMemory is how many failed source versions are remembered, so
	// that requests for a source that could not be rendered (413, 415,
	// 422) get the same answer without reading it again. Default 4096.
	FailureMemory int

	// ErrorHandler answers failed requests. err wraps one of this
	// package's errors (or, from a Source, fs.ErrNotExist and the like),
	// which tells the status: 400 ErrBadSpec, ErrBadPath,
	// ErrOutputTooLarge, ErrWebPOutput; 403 ErrBadSignature, ErrNoKey;
	// 404 fs.ErrNotExist; 405 ErrMethod; 413 ErrSourceTooLarge; 415
	// ErrUnsupportedFormat; 422 ErrCorruptImage, ErrRenderTimeout; 503
	// ErrOverloaded; 504 ErrOriginTimeout; 502 any other source failure.
	// Its text is for logs: it may name internal hosts and paths. Nil
	// means the toolkit's default, which logs through log/slog and replies
	// with the status and its status text only. Cache-Control: no-store
	// (and Retry-After for 503) are set before it is called. Requests whose
	// client has gone are not passed to it.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// Handler serves thumbnails at /{spec}/{path}?s={signature}. Create it with
// [New]. It is safe for concurrent use.
type Handler struct {
	opts    Options
	signer  *sign.Signer // nil without a Key
	presets map[string]Spec
	mem     store // nil when disabled
	disk    *diskCache
	failed  *localcache.Cache[string, error] // source name + version -> why it failed
	q       *queue
	flights flightGroup
	renders atomic.Int64 // renders started, for Stats
	stats   counters
}

// Errors reported by the handler for bad requests, besides the render
// errors ([ErrSourceTooLarge], [ErrUnsupportedFormat], [ErrCorruptImage],
// [ErrOutputTooLarge], [ErrRenderTimeout]) and [ErrBadSpec],
// [ErrOverloaded], [ErrOriginTimeout].
var (
	// ErrBadPath: the image path is empty, absolute or has "." or ".."
	// elements, backslashes or NUL bytes (400).
	ErrBadPath = errors.New("thumbnail: bad image path")
	// ErrBadSignature: the s parameter is missing or does not match (403).
	ErrBadSignature = errors.New("thumbnail: bad signature")
	// ErrNoKey: a non-preset spec was requested but no Key is configured (403).
	ErrNoKey = errors.New("thumbnail: signed URLs need Options.Key; only presets are served")
	// ErrWebPOutput: WebP output was asked for but Options.WebP is nil (400).
	ErrWebPOutput = errors.New("thumbnail: webp output needs Options.WebP")
	// ErrMethod: the request is neither GET nor HEAD (405).
	ErrMethod = errors.New("thumbnail: only GET and HEAD are allowed")
	// ErrRenderTimeout: the render took longer than Options.RenderTimeout
	// and was cancelled (422).
	ErrRenderTimeout = errors.New("thumbnail: render took too long")
)

// New returns a Handler for opts. It returns an error for a missing Source,
// a Key shorter than 32 bytes, a negative option, a bad preset, or a
// CacheDir it cannot create.
func New(opts Options) (*Handler, error) {
	if opts.Source == nil {
		return nil, errors.New("thumbnail: New: Options.Source is required")
	}
	for _, o := range []struct {
		name string
		v    int64
	}{
		{"MaxSourceBytes", opts.MaxSourceBytes},
		{"MaxSourcePixels", opts.MaxSourcePixels},
		{"MaxDimension", int64(opts.MaxDimension)},
		{"Concurrency", int64(opts.Concurrency)},
		{"QueueSize", int64(opts.QueueSize)},
		{"QueueTimeout", int64(opts.QueueTimeout)},
		{"RenderTimeout", int64(opts.RenderTimeout)},
		{"RetryAfter", int64(opts.RetryAfter)},
		{"CacheBytes", opts.CacheBytes},
		{"CacheDirBytes", opts.CacheDirBytes},
		{"FailureMemory", int64(opts.FailureMemory)},
	} {
		if o.v < 0 {
			return nil, fmt.Errorf("thumbnail: New: Options.%s must not be negative", o.name)
		}
	}
	h := &Handler{presets: make(map[string]Spec, len(opts.Presets))}
	switch {
	case opts.Key != nil:
		s, err := sign.New("thumbnail", "thumbnail url", opts.Key, opts.PreviousKeys...)
		if err != nil {
			return nil, err
		}
		h.signer = s
	case len(opts.PreviousKeys) > 0:
		return nil, errors.New("thumbnail: New: Options.PreviousKeys needs Options.Key")
	}
	if d, ok := opts.Source.(*dir); ok {
		if _, err := d.open(); err != nil {
			return nil, fmt.Errorf("thumbnail: New: Dir: %w", err)
		}
	}
	opts.Prefix = strings.TrimRight(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasPrefix(opts.Prefix, "/") {
		return nil, errors.New("thumbnail: New: Options.Prefix must start with /")
	}
	setDefault(&opts.MaxSourceBytes, 32<<20)
	setDefault(&opts.MaxSourcePixels, 50_000_000)
	setDefault(&opts.MaxDimension, 4096)
	setDefault(&opts.Concurrency, runtime.GOMAXPROCS(0))
	setDefault(&opts.QueueSize, 64)
	setDefault(&opts.QueueTimeout, 10*time.Second)
	setDefault(&opts.RenderTimeout, 10*time.Second)
	setDefault(&opts.RetryAfter, time.Second)
	setDefault(&opts.CacheBytes, 128<<20)
	setDefault(&opts.CacheDirBytes, 1<<30)
	setDefault(&opts.FailureMemory, 4096)
	h.opts = opts
	for name, sp := range opts.Presets {
		if !validPresetName(name) {
			return nil, fmt.Errorf("thumbnail: New: preset name %q: use lower-case letters, digits, - and _", name)
		}
		if err := sp.check(); err != nil {
			return nil, fmt.Errorf("thumbnail: New: preset %q: %w", name, err)
		}
		if err := h.checkSpec(sp); err != nil {
			return nil, fmt.Errorf("thumbnail: New: preset %q: %w", name, err)
		}
		h.presets[name] = sp
	}
	mem, err := newMemStore(opts.CacheBytes)
	if err != nil {
		return nil, fmt.Errorf("thumbnail: New: CacheBytes: %w", err)
	}
	h.mem = mem
	if h.failed, err = localcache.New(localcache.Options[string, error]{MaxEntries: opts.FailureMemory}); err != nil {
		return nil, fmt.Errorf("thumbnail: New: FailureMemory: %w", err)
	}
	if opts.CacheDir != "" {
		d, err := newDiskCache(opts.CacheDir, opts.CacheDirBytes)
		if err != nil {
			return nil, fmt.Errorf("thumbnail: New: CacheDir: %w", err)
		}
		h.disk = d
	}
	h.q = newQueue(opts.Concurrency, opts.QueueSize, opts.QueueTimeout)
	return h, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// checkSpec applies the handler's limits to a syntactically valid spec.
func (h *Handler) checkSpec(sp Spec) error {
	if sp.Width > h.opts.MaxDimension || sp.Height > h.opts.MaxDimension {
		return fmt.Errorf("%w: %s is larger than the limit of %d pixels a side", ErrOutputTooLarge, sp, h.opts.MaxDimension)
	}
	if sp.Format == WebP && h.opts.WebP == nil {
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
	if h.signer == nil {
		panic("thumbnail: Handler.URL needs Options.Key")
	}
	canon := spec.String()
	mac := h.signer.Sum(nil, []byte(canon), []byte(name))
	return h.opts.Prefix + "/" + canon + "/" + escapePath(name) + "?s=" + base64.RawURLEncoding.EncodeToString(mac)
}

// PresetURL returns the URL path of the named preset's thumbnail of the
// image at name. Preset URLs carry no signature.
func (h *Handler) PresetURL(preset, name string) string {
	return h.opts.Prefix + "/" + preset + "/" + escapePath(name)
}

func escapePath(name string) string { return (&url.URL{Path: name}).EscapedPath() }

// verify checks the base64url signature sig of canon and name.
func (h *Handler) verify(canon, name, sig string) bool {
	var mac [sign.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(sig)) != len(mac) {
		return false
	}
	if _, err := base64.RawURLEncoding.Decode(mac[:], []byte(sig)); err != nil {
		return false
	}
	ok, _ := h.signer.Verify(mac[:], []byte(canon), []byte(name))
	return ok
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
		h.fail(w, r, ErrMethod)
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
			h.fail(w, r, err)
			return
		}
	}
	if err := checkName(name); err != nil {
		h.fail(w, r, err)
		return
	}
	if !preset {
		if h.signer == nil {
			h.fail(w, r, ErrNoKey)
			return
		}
		if !h.verify(sp.String(), name, queryParam(r.URL.RawQuery, "s")) {
			h.fail(w, r, fmt.Errorf("%w for %s/%s", ErrBadSignature, sp, name))
			return
		}
		if err := h.checkSpec(sp); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	// A spec that leaves the format to the source is negotiated when WebP
	// output is on: the response then depends on Accept.
	negotiated := sp.Format == Auto && h.opts.WebP != nil
	if negotiated && acceptsWebP(r.Header["Accept"]) {
		sp.Format = WebP
	}

	info, err := h.opts.Source.Stat(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if info.Size > h.opts.MaxSourceBytes {
		h.fail(w, r, fmt.Errorf("%w: %d bytes is more than the limit of %d", ErrSourceTooLarge, info.Size, h.opts.MaxSourceBytes))
		return
	}
	canon := sp.String()
	key := info.Version + "\x00" + canon + "\x00" + name
	etag := etagFor(key)
	// Header keys are canonical already: assigning skips re-canonicalising.
	hdr := w.Header()
	if preset {
		hdr["Cache-Control"] = cacheControlPreset
	} else {
		hdr["Cache-Control"] = cacheControlSigned
	}
	if negotiated {
		hdr.Add("Vary", "Accept") // after any Vary an outer middleware set
	}
	hdr["Etag"] = []string{etag}
	if !info.ModTime.IsZero() {
		hdr["Last-Modified"] = []string{info.ModTime.UTC().Format(http.TimeFormat)}
	}
	switch conditional.Evaluate(r, etag, info.ModTime.Truncate(time.Second)) {
	case conditional.NotModified:
		h.stats.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	case conditional.PreconditionFailed:
		delete(hdr, "Etag")
		delete(hdr, "Last-Modified")
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	e, err := h.lookupOrRender(r.Context(), key, etag, name, info.Version, sp)
	if err != nil {
		delete(hdr, "Etag")
		delete(hdr, "Last-Modified")
		h.fail(w, r, err)
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

// acceptsWebP reports whether an Accept header lists image/webp with a
// non-zero quality. Wildcards do not count: browsers that send image/*
// without naming WebP may not decode it.
func acceptsWebP(accept []string) bool {
	for _, line := range accept {
		for mr := range strings.SplitSeq(line, ",") {
			typ, params, _ := strings.Cut(mr, ";")
			if !strings.EqualFold(strings.TrimSpace(typ), "image/webp") {
				continue
			}
			if q, ok := qValue(params); !ok || q > 0 {
				return true
			}
		}
	}
	return false
}

// qValue returns the q parameter in params ("q=0.5;x=y"), if there is one
// that parses.
func qValue(params string) (float64, bool) {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			q, err := strconv.ParseFloat(v, 64)
			return q, err == nil
		}
	}
	return 0, false
}

func etagFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// statusOf maps an error to the status its request gets.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadSpec), errors.Is(err, ErrBadPath), errors.Is(err, ErrOutputTooLarge), errors.Is(err, ErrWebPOutput):
		return http.StatusBadRequest
	case errors.Is(err, ErrBadSignature), errors.Is(err, ErrNoKey):
		return http.StatusForbidden
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound
	case errors.Is(err, ErrSourceTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedFormat):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrCorruptImage), errors.Is(err, ErrRenderTimeout):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrOriginTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, errEncode), errors.As(err, new(*flight.PanicError)):
		return http.StatusInternalServerError
	}
	return http.StatusBadGateway
}

// fail answers a failed request through the ErrorHandler, with the status
// statusOf gives. Nothing of the source, and no error text, reaches the
// client unless a custom ErrorHandler sends it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil { // the client has gone; nobody is listening
		return
	}
	status := statusOf(err)
	h.stats.failed(status)
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", strconv.Itoa(max(1, int(h.opts.RetryAfter/time.Second))))
	}
	httperr.Handle(h.opts.ErrorHandler, w, r, httperr.WithStatus(status, err))
}
