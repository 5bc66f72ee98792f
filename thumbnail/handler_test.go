package thumbnail

import (
	"bytes"
	"context"
	"image"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/internal/httperr"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newHandler(t testing.TB, opts Options) *Handler {
	t.Helper()
	if opts.Source == nil {
		opts.Source = Dir(fixtureDir(t))
	}
	if opts.Key == nil {
		opts.Key = testKey
	}
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = testErrorHandler
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testErrorHandler answers like the default ErrorHandler (the status text
// only) and shows the error's text, for the test to check, in X-Test-Error.
func testErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("X-Test-Error", err.Error())
	status := httperr.Status(err)
	http.Error(w, http.StatusText(status), status)
}

// noMemoryCache turns the handler's memory cache off, so that only
// coalescing or the disk cache can save a render.
func noMemoryCache(h *Handler) *Handler {
	h.mem = nil
	return h
}

func get(h http.Handler, method, target string, hdr ...string) *http.Response {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeSize(t testing.TB, b []byte) (image.Image, string) {
	t.Helper()
	m, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("response is not an image: %v (%.60q)", err, b)
	}
	return m, format
}

func TestStatuses(t *testing.T) {
	h := newHandler(t, Options{
		Presets:        map[string]Spec{"avatar": {Width: 64, Height: 64, Mode: Fill}},
		MaxSourceBytes: 1 << 20,
		MaxDimension:   2000,
	})
	small := newHandler(t, Options{MaxSourceBytes: 1000})
	signed := func(name string, sp Spec) string { return h.URL(name, sp) }
	fit := Spec{Width: 100, Height: 100}
	tests := []struct {
		name    string
		h       *Handler
		method  string
		target  string
		status  int
		ctype   string // expected Content-Type prefix
		w, ht   int    // expected image size when 200
		message string // expected in the error's text (never in the body)
	}{
		{"jpeg fit", h, "GET", signed("photo.jpg", fit), 200, "image/jpeg", 100, 75, ""},
		{"jpeg fill", h, "GET", signed("photo.jpg", Spec{Width: 100, Height: 100, Mode: Fill}), 200, "image/jpeg", 100, 100, ""},
		{"width only", h, "GET", signed("photo.jpg", Spec{Width: 320}), 200, "image/jpeg", 320, 240, ""},
		{"height only", h, "GET", signed("photo.jpg", Spec{Height: 60}), 200, "image/jpeg", 80, 60, ""},
		{"no upscale", h, "GET", signed("photo.jpg", Spec{Width: 1280}), 200, "image/jpeg", 640, 480, ""},
		{"upscale when asked", h, "GET", signed("photo.jpg", Spec{Width: 1280, Upscale: true}), 200, "image/jpeg", 1280, 960, ""},
		{"fill smaller source keeps shape", h, "GET", signed("photo.jpg", Spec{Width: 1000, Height: 1000, Mode: Fill}), 200, "image/jpeg", 480, 480, ""},
		{"png kept", h, "GET", signed("alpha.png", fit), 200, "image/png", 100, 50, ""},
		{"png to jpeg", h, "GET", signed("alpha.png", Spec{Width: 100, Format: JPEG}), 200, "image/jpeg", 100, 50, ""},
		{"gif to png", h, "GET", signed("anim.gif", fit), 200, "image/png", 100, 67, ""},
		{"webp lossy to jpeg", h, "GET", signed("lossy.webp", Spec{Width: 50}), 200, "image/jpeg", 50, 0, ""},
		{"webp alpha to png", h, "GET", signed("alpha.webp", Spec{Width: 50}), 200, "image/png", 50, 0, ""},
		{"nested path", h, "GET", signed("sub/dir/nested.jpg", fit), 200, "image/jpeg", 100, 75, ""},
		{"escaped name", h, "GET", signed("with space & ü.jpg", fit), 200, "image/jpeg", 100, 75, ""},
		{"preset unsigned", h, "GET", "/avatar/photo.jpg", 200, "image/jpeg", 64, 64, ""},
		{"HEAD", h, "HEAD", signed("photo.jpg", fit), 200, "image/jpeg", 0, 0, ""},

		{"bad spec", h, "GET", "/200y100/photo.jpg", 400, "text/plain", 0, 0, "unknown option"},
		{"bad quality", h, "GET", "/200x100,q101/photo.jpg", 400, "text/plain", 0, 0, "q1 to q100"},
		{"fill one side", h, "GET", "/200x,fill/photo.jpg", 400, "text/plain", 0, 0, "fill needs both"},
		{"webp output without an encoder", h, "GET", signed("photo.jpg", Spec{Width: 10, Format: WebP}), 400, "text/plain", 0, 0, "webp output needs Options.WebP"},
		{"too wide spec", h, "GET", signed("photo.jpg", Spec{Width: 3000}), 400, "text/plain", 0, 0, "limit of 2000"},
		{"too wide output", h, "GET", signed("wide.png", Spec{Height: 300, Upscale: true}), 400, "text/plain", 0, 0, "30000x300"},
		{"no image path", h, "GET", "/100x100", 400, "text/plain", 0, 0, "/{spec}/{image path}"},
		{"dot dot", h, "GET", "/100x100/../secret.jpg", 400, "text/plain", 0, 0, "bad image path"},
		{"encoded dot dot", h, "GET", "/100x100/sub/%2e%2e/%2e%2e/etc/passwd", 400, "text/plain", 0, 0, "bad image path"},
		{"absolute", h, "GET", "/100x100//etc/passwd", 400, "text/plain", 0, 0, "bad image path"},
		{"backslash", h, "GET", "/100x100/sub%5c..%5cx.jpg", 400, "text/plain", 0, 0, "bad image path"},

		{"no signature", h, "GET", "/100x100/photo.jpg", 403, "text/plain", 0, 0, "bad signature"},
		{"garbage signature", h, "GET", "/100x100/photo.jpg?s=%%%", 403, "text/plain", 0, 0, "bad signature"},
		{"spec tampered", h, "GET", strings.Replace(signed("photo.jpg", fit), "100x100", "100x101", 1), 403, "text/plain", 0, 0, "bad signature"},
		{"path tampered", h, "GET", strings.Replace(signed("photo.jpg", fit), "photo.jpg", "alpha.png", 1), 403, "text/plain", 0, 0, "bad signature"},
		{"signature tampered", h, "GET", tamperSig(signed("photo.jpg", fit)), 403, "text/plain", 0, 0, "bad signature"},
		{"signature truncated", h, "GET", signed("photo.jpg", fit)[:len(signed("photo.jpg", fit))-4], 403, "text/plain", 0, 0, "bad signature"},
		{"preset with other path still needs no sig", h, "GET", "/avatar/alpha.png", 200, "image/png", 64, 64, ""},
		{"equivalent spec verifies", h, "GET", reorder(signed("photo.jpg", Spec{Width: 100, Height: 100, Quality: 90, Format: PNG})), 200, "image/png", 100, 75, ""},

		{"missing", h, "GET", signed("nope.jpg", fit), 404, "text/plain", 0, 0, "no such file"},
		{"directory", h, "GET", signed("sub", fit), 404, "text/plain", 0, 0, ""},
		{"POST", h, "POST", signed("photo.jpg", fit), 405, "text/plain", 0, 0, "GET and HEAD"},

		{"too many bytes", small, "GET", small.URL("photo.jpg", fit), 413, "text/plain", 0, 0, "limit of 1000"},
		{"bomb", h, "GET", signed("bomb.png", fit), 413, "text/plain", 0, 0, "50000x50000"},
		{"gif frames", newHandler(t, Options{MaxSourcePixels: 100 * 100 * 50}), "GET", h.URL("manyframes.gif", fit), 413, "text/plain", 0, 0, "60 frames"},

		{"html named jpg", h, "GET", signed("html.jpg", fit), 415, "text/plain", 0, 0, "only JPEG, PNG, GIF and WebP"},
		{"svg", h, "GET", signed("image.svg", fit), 415, "text/plain", 0, 0, "only JPEG"},
		{"text", h, "GET", signed("notanimage.txt.jpeg", fit), 415, "text/plain", 0, 0, ""},
		{"empty file", h, "GET", signed("empty.jpg", fit), 415, "text/plain", 0, 0, ""},

		{"truncated jpeg", h, "GET", signed("truncated.jpg", fit), 422, "text/plain", 0, 0, "corrupt image"},
		{"corrupt png", h, "GET", signed("corrupt.png", fit), 422, "text/plain", 0, 0, "corrupt image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(tt.h, tt.method, tt.target)
			b := body(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d (body %.200q)", resp.StatusCode, tt.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type: got %q, want %q", ct, tt.ctype)
			}
			if tt.status != 200 {
				if got := resp.Header.Get("X-Test-Error"); !strings.Contains(got, tt.message) {
					t.Errorf("error: got %q, want it to contain %q", got, tt.message)
				}
				if want := http.StatusText(tt.status) + "\n"; string(b) != want {
					t.Errorf("body: got %q, want only the status text %q", b, want)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("error Cache-Control: got %q, want no-store", cc)
				}
				if resp.Header.Get("ETag") != "" {
					t.Errorf("error carries an ETag")
				}
				return
			}
			if tt.method == "HEAD" {
				if len(b) != 0 || resp.Header.Get("Content-Length") == "" || resp.Header.Get("ETag") == "" {
					t.Errorf("HEAD: got body %d bytes, Content-Length %q, ETag %q", len(b), resp.Header.Get("Content-Length"), resp.Header.Get("ETag"))
				}
				return
			}
			m, _ := decodeSize(t, b)
			if m.Bounds().Dx() != tt.w || (tt.ht != 0 && m.Bounds().Dy() != tt.ht) {
				t.Errorf("size: got %v, want %dx%d", m.Bounds().Size(), tt.w, tt.ht)
			}
			if resp.Header.Get("Vary") != "" {
				t.Errorf("Vary: got %q, want none (output never depends on Accept)", resp.Header.Get("Vary"))
			}
		})
	}
}

func tamperSig(u string) string {
	i := strings.Index(u, "?s=") + 3
	c := byte('A')
	if u[i] == 'A' {
		c = 'B'
	}
	return u[:i] + string(c) + u[i+1:]
}

// reorder rewrites the spec segment of a signed URL in a different but
// equivalent form (options reversed, "jpg"/"fit" spelled out where present).
func reorder(u string) string {
	parts := strings.SplitN(u, "/", 3)
	opts := strings.Split(parts[1], ",")
	for i, j := 0, len(opts)-1; i < j; i, j = i+1, j-1 {
		opts[i], opts[j] = opts[j], opts[i]
	}
	opts = append(opts, "fit")
	parts[1] = strings.Join(opts, ",")
	return strings.Join(parts, "/")
}

func TestNoKeyServesOnlyPresets(t *testing.T) {
	h, err := New(Options{Source: Dir(fixtureDir(t)), Presets: map[string]Spec{"small": {Width: 50}}})
	if err != nil {
		t.Fatal(err)
	}
	signer := newHandler(t, Options{})
	if resp := get(h, "GET", signer.URL("photo.jpg", Spec{Width: 50})); resp.StatusCode != 403 {
		t.Errorf("signed URL without a key: got %d, want 403", resp.StatusCode)
	}
	if resp := get(h, "GET", "/small/photo.jpg"); resp.StatusCode != 200 {
		t.Errorf("preset without a key: got %d, want 200", resp.StatusCode)
	}
}

func TestNewRejectsBadSetup(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]Options{
		"no source":          {},
		"short key":          {Source: Dir(dir), Key: []byte("short")},
		"missing dir":        {Source: Dir(filepath.Join(dir, "nope"))},
		"preset bad name":    {Source: Dir(dir), Presets: map[string]Spec{"Big Thing": {Width: 10}}},
		"preset is a spec":   {Source: Dir(dir), Presets: map[string]Spec{"10x10": {Width: 10}}},
		"preset no size":     {Source: Dir(dir), Presets: map[string]Spec{"x": {}}},
		"preset fill 1 side": {Source: Dir(dir), Presets: map[string]Spec{"a": {Width: 10, Mode: Fill}}},
		"preset webp":        {Source: Dir(dir), Presets: map[string]Spec{"a": {Width: 10, Format: WebP}}},
		"preset too big":     {Source: Dir(dir), Presets: map[string]Spec{"a": {Width: 10000}}},
		"relative prefix":    {Source: Dir(dir), Prefix: "thumbs"},
		"previous, no key":   {Source: Dir(dir), PreviousKeys: [][]byte{testKey}},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(opts); err == nil {
				t.Errorf("New: got nil error")
			}
		})
	}
}

func TestNewRejectsNegativeOptions(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]Options{
		"MaxSourceBytes":  {MaxSourceBytes: -1},
		"MaxSourcePixels": {MaxSourcePixels: -1},
		"MaxDimension":    {MaxDimension: -1},
		"Concurrency":     {Concurrency: -1},
		"QueueSize":       {QueueSize: -1},
		"QueueTimeout":    {QueueTimeout: -time.Second},
		"RenderTimeout":   {RenderTimeout: -time.Second},
		"RetryAfter":      {RetryAfter: -time.Second},
		"CacheBytes":      {CacheBytes: -1},
		"CacheDirBytes":   {CacheDirBytes: -1},
		"FailureMemory":   {FailureMemory: -1},
	}
	for field, opts := range tests {
		t.Run(field, func(t *testing.T) {
			opts.Source = Dir(dir)
			_, err := New(opts)
			want := "thumbnail: New: Options." + field + " must not be negative"
			if err == nil || err.Error() != want {
				t.Errorf("got %v, want %q", err, want)
			}
		})
	}
}

func TestCachingHeaders(t *testing.T) {
	dir := fixtureDir(t)
	h := newHandler(t, Options{Source: Dir(dir), Presets: map[string]Spec{"p": {Width: 20}}})
	u := h.URL("photo.jpg", Spec{Width: 50})
	resp := get(h, "GET", u)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Fatalf("got %d, ETag %q, want 200 and a strong ETag", resp.StatusCode, etag)
	}
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control: got %q", got)
	}
	if resp.Header.Get("Last-Modified") == "" {
		t.Errorf("no Last-Modified")
	}
	if got := get(h, "GET", "/p/photo.jpg").Header.Get("Cache-Control"); strings.Contains(got, "immutable") {
		t.Errorf("preset Cache-Control: got %q, want no immutable", got)
	}

	for _, inm := range []string{etag, `"x", ` + etag, "W/" + etag, "*"} {
		r := get(h, "GET", u, "If-None-Match", inm)
		if r.StatusCode != 304 || len(body(t, r)) != 0 || r.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: got %d, want 304 with the ETag and no body", inm, r.StatusCode)
		}
	}
	if r := get(h, "GET", u, "If-None-Match", `"other"`); r.StatusCode != 200 {
		t.Errorf("If-None-Match other: got %d, want 200", r.StatusCode)
	}
	lm := resp.Header.Get("Last-Modified")
	if r := get(h, "GET", u, "If-Modified-Since", lm); r.StatusCode != 304 {
		t.Errorf("If-Modified-Since Last-Modified: got %d, want 304", r.StatusCode)
	}
	if r := get(h, "GET", u, "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"); r.StatusCode != 200 {
		t.Errorf("If-Modified-Since long ago: got %d, want 200", r.StatusCode)
	}
	if r := get(h, "GET", u, "If-Modified-Since", lm, "If-None-Match", `"other"`); r.StatusCode != 200 {
		t.Errorf("If-None-Match mismatch overrides If-Modified-Since: got %d, want 200", r.StatusCode)
	}
	if r := get(h, "HEAD", u, "If-None-Match", etag); r.StatusCode != 304 {
		t.Errorf("HEAD If-None-Match: got %d, want 304", r.StatusCode)
	}
	if r := get(h, "GET", u, "If-Match", `"other"`); r.StatusCode != 412 {
		t.Errorf("If-Match other: got %d, want 412", r.StatusCode)
	}
	if r := get(h, "GET", u, "If-Match", etag); r.StatusCode != 200 {
		t.Errorf("If-Match current: got %d, want 200", r.StatusCode)
	}

	// A changed source gives a new ETag, and the old one no longer matches.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "photo.jpg"), later, later); err != nil {
		t.Fatal(err)
	}
	r := get(h, "GET", u, "If-None-Match", etag)
	if r.StatusCode != 200 || r.Header.Get("ETag") == etag {
		t.Errorf("after the source changed: got %d, ETag %q (old %q), want 200 and a new ETag", r.StatusCode, r.Header.Get("ETag"), etag)
	}
}

func TestPrefix(t *testing.T) {
	h := newHandler(t, Options{Prefix: "/thumbs/"})
	u := h.URL("photo.jpg", Spec{Width: 40})
	if !strings.HasPrefix(u, "/thumbs/40x/photo.jpg?s=") {
		t.Fatalf("URL: got %q", u)
	}
	// chi's Mount leaves the prefix in the path; StripPrefix removes it.
	if r := get(h, "GET", u); r.StatusCode != 200 {
		t.Errorf("with prefix in path: got %d", r.StatusCode)
	}
	mux := http.NewServeMux()
	mux.Handle("/thumbs/", http.StripPrefix("/thumbs", h))
	if r := get(mux, "GET", u); r.StatusCode != 200 {
		t.Errorf("behind StripPrefix: got %d", r.StatusCode)
	}
}

func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.jpg"), encodeJPEG(t, photo(64, 64), 80), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := fixtureDir(t)
	links := map[string]string{
		"out.jpg":    filepath.Join(outside, "secret.jpg"), // absolute, outside
		"outdir":     outside,                              // directory outside
		"rel.jpg":    "../" + filepath.Base(outside) + "/secret.jpg",
		"inside.jpg": "photo.jpg", // stays inside: allowed
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	h := newHandler(t, Options{Source: Dir(dir)})
	sp := Spec{Width: 30}
	tests := []struct {
		name   string
		status int
	}{
		{"out.jpg", 404},
		{"outdir/secret.jpg", 404},
		{"rel.jpg", 404},
		{"inside.jpg", 200},
	}
	for _, tt := range tests {
		if r := get(h, "GET", h.URL(tt.name, sp)); r.StatusCode != tt.status {
			t.Errorf("%s: got %d, want %d", tt.name, r.StatusCode, tt.status)
		}
	}
}

func TestEXIFOrientationAndMetadataStripped(t *testing.T) {
	h := newHandler(t, Options{})
	// camera.jpg is stored 400×200 (left red, right blue) with orientation 6:
	// displayed rotated 90° clockwise, i.e. 200×400 with red on top.
	resp := get(h, "GET", h.URL("camera.jpg", Spec{Width: 100, Height: 100}))
	b := body(t, resp)
	m, _ := decodeSize(t, b)
	if got := m.Bounds().Size(); got != image.Pt(50, 100) {
		t.Fatalf("size: got %v, want 50x100", got)
	}
	top, bottom := m.At(25, 10), m.At(25, 90)
	if r, _, bl, _ := top.RGBA(); r < bl {
		t.Errorf("top pixel %v: want red", top)
	}
	if r, _, bl, _ := bottom.RGBA(); bl < r {
		t.Errorf("bottom pixel %v: want blue", bottom)
	}
	if bytes.Contains(b, []byte("Exif")) || bytes.Contains(b, []byte("GPS")) {
		t.Errorf("output carries the source's EXIF metadata")
	}
}

func TestAlpha(t *testing.T) {
	h := newHandler(t, Options{})
	png, _ := decodeSize(t, body(t, get(h, "GET", h.URL("alpha.png", Spec{Width: 40}))))
	if _, _, _, a := png.At(2, 5).RGBA(); a != 0 {
		t.Errorf("PNG output lost transparency: alpha %d", a)
	}
	if _, _, _, a := png.At(38, 5).RGBA(); a != 0xFFFF {
		t.Errorf("PNG output opaque side: alpha %d", a)
	}
	jpg, _ := decodeSize(t, body(t, get(h, "GET", h.URL("alpha.png", Spec{Width: 40, Format: JPEG}))))
	if r, g, b, _ := jpg.At(2, 5).RGBA(); r>>8 < 240 || g>>8 < 240 || b>>8 < 240 {
		t.Errorf("JPEG of transparent area: got %d,%d,%d, want white (not the hidden magenta)", r>>8, g>>8, b>>8)
	}
}

func TestAcceptWebPStillServesJPEG(t *testing.T) {
	h := newHandler(t, Options{})
	r := get(h, "GET", h.URL("photo.jpg", Spec{Width: 40}), "Accept", "image/webp,image/*")
	if ct := r.Header.Get("Content-Type"); ct != "image/jpeg" || r.Header.Get("Vary") != "" {
		t.Errorf("got %q, Vary %q; want image/jpeg and no Vary", ct, r.Header.Get("Vary"))
	}
}

// countingSource wraps a Source and counts Opens.
type countingSource struct {
	Source
	mu    sync.Mutex
	opens int
}

func (c *countingSource) Open(ctx context.Context, name string) (io.ReadCloser, Info, error) {
	c.mu.Lock()
	c.opens++
	c.mu.Unlock()
	return c.Source.Open(ctx, name)
}

func TestMemoryCache(t *testing.T) {
	src := &countingSource{Source: Dir(fixtureDir(t))}
	h := newHandler(t, Options{Source: src})
	u := h.URL("photo.jpg", Spec{Width: 40})
	first := body(t, get(h, "GET", u))
	defer func() {
		if s := h.Stats(); s.MemoryHits != 3 || s.Renders != 1 {
			t.Errorf("stats: got %d memory hits, %d renders; want 3, 1", s.MemoryHits, s.Renders)
		}
	}()
	for i := 0; i < 3; i++ {
		if b := body(t, get(h, "GET", u)); !bytes.Equal(b, first) {
			t.Fatalf("cached body differs")
		}
	}
	if src.opens != 1 {
		t.Errorf("source opened %d times, want 1", src.opens)
	}
}

func TestDiskCache(t *testing.T) {
	fixtures := fixtureDir(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	src := &countingSource{Source: Dir(fixtures)}
	h := noMemoryCache(newHandler(t, Options{Source: src, CacheDir: cacheDir}))
	u := h.URL("photo.jpg", Spec{Width: 40})
	r1 := get(h, "GET", u)
	b1 := body(t, r1)
	// A new handler (a restarted process) finds it on disk without a render.
	src2 := &countingSource{Source: Dir(fixtures)}
	h2 := noMemoryCache(newHandler(t, Options{Source: src2, CacheDir: cacheDir}))
	r2 := get(h2, "GET", u)
	if b2 := body(t, r2); !bytes.Equal(b1, b2) || r2.Header.Get("ETag") != r1.Header.Get("ETag") ||
		r2.Header.Get("Content-Type") != "image/jpeg" || r2.Header.Get("Last-Modified") != r1.Header.Get("Last-Modified") {
		t.Errorf("disk hit differs: %d bytes vs %d, headers %v vs %v", len(b2), len(b1), r2.Header, r1.Header)
	}
	if src2.opens != 0 || h2.Stats().DiskHits != 1 {
		t.Errorf("disk hit opened the source %d times, %d disk hits counted", src2.opens, h2.Stats().DiskHits)
	}
	ents, _ := os.ReadDir(cacheDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestDiskCacheCap(t *testing.T) {
	dir := t.TempDir()
	d, err := newDiskCache(dir, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := d.set(string(rune('a'+i)), &entry{body: make([]byte, 1000), contentType: "image/png"}); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, _ := e.Info()
		total += fi.Size()
	}
	if total > 10_000 {
		t.Errorf("disk cache uses %d bytes, cap 10000", total)
	}
	if _, ok := d.get(string(rune('a'+19)), ""); !ok {
		t.Errorf("newest entry was evicted")
	}
}

func TestMemoryCacheBound(t *testing.T) {
	st, err := newMemStore(100_000)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(memStore)
	for i := 0; i < 1000; i++ {
		s.set(strconv.Itoa(i), &entry{body: make([]byte, 500)})
	}
	if got := s.c.Stats().Bytes; got > 100_000 || got < 50_000 {
		t.Errorf("cache holds %d bytes, cap 100000", got)
	}
	if _, ok := s.get("999"); !ok {
		t.Errorf("newest entry missing")
	}
}

func TestOrigin(t *testing.T) {
	fixtures := fixtureDir(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow.jpg":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		case "/broken.jpg":
			http.Error(w, "boom", 500)
			return
		}
		http.FileServer(http.Dir(fixtures)).ServeHTTP(w, r)
	}))
	t.Cleanup(origin.Close)
	client := &http.Client{Timeout: time.Second}
	h := newHandler(t, Options{Source: Origin(origin.URL+"/", client)})
	sp := Spec{Width: 40}
	tests := []struct {
		name   string
		status int
	}{
		{"photo.jpg", 200},
		{"with space & ü.jpg", 200},
		{"missing.jpg", 404},
		{"slow.jpg", 504},
		{"broken.jpg", 502},
		{"html.jpg", 415},
		{"bomb.png", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(h, "GET", h.URL(tt.name, sp))
			if r.StatusCode != tt.status {
				t.Errorf("got %d, want %d: %s", r.StatusCode, tt.status, body(t, r))
			}
		})
	}
	// The origin's ETag versions the thumbnail.
	r := get(h, "GET", h.URL("photo.jpg", sp))
	if r2 := get(h, "GET", h.URL("photo.jpg", sp), "If-None-Match", r.Header.Get("ETag")); r2.StatusCode != 304 {
		t.Errorf("origin If-None-Match: got %d, want 304", r2.StatusCode)
	}
}

func TestURLEscaping(t *testing.T) {
	h := newHandler(t, Options{})
	u := h.URL("with space & ü.jpg", Spec{Width: 10, Height: 20, Mode: Fill, Quality: 90, Format: PNG, Upscale: true})
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/10x20,fill,q90,png,up/with space & ü.jpg"; pu.Path != want {
		t.Errorf("path: got %q, want %q", pu.Path, want)
	}
}
