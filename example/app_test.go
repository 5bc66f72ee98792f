package main

import (
	"bytes"
	"context"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSQLiteFallback runs the app in-process on the embedded SQLite
// database, as make demo does on a machine without PostgreSQL: one user's
// whole visit, plus the bad-upload answers. The scaled-out behaviour is
// tested against real processes in example/e2e.
func TestSQLiteFallback(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 600, 400))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(0, 0, color.White)
	var pngData bytes.Buffer
	png.Encode(&pngData, img)
	// Room for two copies of the photo, not three.
	quota := int64(2*pngData.Len() + 100)
	srv := sqliteServer(t, quota)

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, ctype string, body io.Reader) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, body)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if got := resp.Header.Get("X-Instance"); got != "test-1" {
			t.Errorf("%s %s: X-Instance %q, want test-1", method, path, got)
		}
		return resp, string(b)
	}
	form := func(path string, v url.Values) (*http.Response, string) {
		return do("POST", path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	}
	upload := func(filename string, data []byte) (*http.Response, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("photo", filename)
		fw.Write(data)
		mw.Close()
		return do("POST", "/photos", mw.FormDataContentType(), &b)
	}

	if resp, _ := do("GET", "/notes", "", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("GET /notes logged out: got %s to %q, want 303 to /login", resp.Status, resp.Header.Get("Location"))
	}
	if resp, body := form("/login", url.Values{"name": {""}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Type a name") {
		t.Fatalf("empty name: got %s, want 400 with a message", resp.Status)
	}
	if resp, _ := form("/login", url.Values{"name": {"Zoë"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: got %s, want 303", resp.Status)
	}
	if resp, _ := form("/notes", url.Values{"text": {"buy <milk>"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /notes: got %s, want 303", resp.Status)
	}
	resp, body := do("GET", "/notes", "", nil)
	for _, want := range []string{"Hello, Zoë", "Saved.", "buy &lt;milk&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /notes (%s): missing %q", resp.Status, want)
		}
	}

	if resp, body := upload("tiles.png", pngData.Bytes()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: got %s, want 303: %.300s", resp.Status, body)
	}
	_, body = do("GET", "/photos", "", nil)
	m := regexp.MustCompile(`<img src="(/thumbs/[^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no thumbnail in /photos: %.500s", body)
	}
	resp, thumb := do("GET", strings.ReplaceAll(m[1], "&amp;", "&"), "", nil)
	if cfg, _, err := image.DecodeConfig(strings.NewReader(thumb)); resp.StatusCode != http.StatusOK || err != nil || cfg.Width != 320 {
		t.Fatalf("thumbnail: got %s, %dx%d, %v; want 200 and 320 wide", resp.Status, cfg.Width, cfg.Height, err)
	}

	for _, tc := range []struct {
		name   string
		data   []byte
		status int
		msg    string
	}{
		{"notes.txt", []byte("just text"), http.StatusUnsupportedMediaType, "is not a JPEG, PNG, GIF or WebP image"},
		{"bomb.png", pngHeader(100000, 100000), http.StatusRequestEntityTooLarge, "at most 50 megapixels"},
		{"huge.jpg", make([]byte, maxUploadBytes+1), http.StatusRequestEntityTooLarge, "at most 10 MiB"},
	} {
		if resp, body := upload(tc.name, tc.data); resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("upload %s: got %s; want %d saying %q", tc.name, resp.Status, tc.status, tc.msg)
		}
	}

	// A second copy of the photo fits the quota; a third does not, and
	// says why. A form sent twice with one key is saved once.
	if resp, body := upload("second.png", pngData.Bytes()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second upload within the quota: got %s, want 303: %.300s", resp.Status, body)
	}
	if resp, body := upload("third.png", pngData.Bytes()); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "Your photos would take more than") {
		t.Errorf("upload beyond the quota: got %s; want 413 saying the quota is reached: %.300s", resp.Status, body)
	}
	for i, want := range []string{"", "true"} {
		resp, _ := form("/notes", url.Values{"text": {"sent twice"}, "key": {"0123456789abcdef0123"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Idempotent-Replayed") != want {
			t.Errorf("note sent with one key, attempt %d: got %s, Idempotent-Replayed %q; want 303 and %q", i+1, resp.Status, resp.Header.Get("Idempotent-Replayed"), want)
		}
	}
	if _, body := do("GET", "/notes", "", nil); strings.Count(body, "sent twice") != 1 {
		t.Errorf("a note sent twice with one key is listed %d times, want once", strings.Count(body, "sent twice"))
	}

	// The public page does not know who is asking: the logged-in user gets
	// the public page, and anonymous visitors get it from the cache.
	if resp, body := do("GET", "/", "", nil); resp.StatusCode != http.StatusOK || strings.Contains(body, "Zoë") {
		t.Errorf("GET / logged in: got %s, mentions the user %v; want 200, public", resp.Status, strings.Contains(body, "Zoë"))
	}
	for i := range 2 {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), "Zoë") || len(resp.Cookies()) > 0 {
			t.Errorf("anonymous GET / #%d: got %s, mentions the user %v, cookies %v; want 200, public, no cookies", i, resp.Status, strings.Contains(string(b), "Zoë"), resp.Cookies())
		}
		if got := resp.Header.Get("X-Cache"); i == 1 && got != "HIT" {
			t.Errorf("anonymous GET / #%d: X-Cache %q, want HIT", i, got)
		}
	}
	// The counts on per-user pages come from the cache once loaded, and a
	// delete drops them and the cached home page at once.
	if _, body := do("GET", "/photos", "", nil); !strings.Contains(body, `<span id="photo-count">2</span>`) {
		t.Errorf("GET /photos: want a count of 2 photos: %.1500s", body)
	}
	_, body = do("GET", "/photos", "", nil)
	if !strings.Contains(body, `<code id="summary-from">cache</code>`) {
		t.Errorf("GET /photos again: want the counts from the cache: %.1500s", body)
	}
	del := regexp.MustCompile(`action="(/photos/\d+/delete)".*?name="key" value="([^"]+)"`).FindStringSubmatch(body)
	if del == nil {
		t.Fatalf("no delete form on /photos: %.1500s", body)
	}
	anonHome := func() (*http.Response, string) {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := anonHome(); resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Errorf("anonymous GET / before the delete: X-Cache %q, Cache-Control %q; want a HIT of a page fresh for 300 s", resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Control"))
	}
	for i, want := range []string{"", "true"} { // sent twice: deleted once
		resp, _ := form(del[1], url.Values{"key": {del[2]}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Idempotent-Replayed") != want {
			t.Fatalf("delete attempt %d: got %s, Idempotent-Replayed %q; want 303 and %q", i+1, resp.Status, resp.Header.Get("Idempotent-Replayed"), want)
		}
	}
	if _, body := do("GET", "/photos", "", nil); !strings.Contains(body, `<span id="photo-count">1</span>`) || !strings.Contains(body, "Photo deleted.") {
		t.Errorf("GET /photos after the delete: want 1 photo and the flash: %.1500s", body)
	}
	if resp, body := anonHome(); resp.Header.Get("X-Cache") == "HIT" || strings.Count(body, "<figure>") != 1 {
		t.Errorf("anonymous GET / after the delete: X-Cache %q with %d photos; want a fresh page with 1", resp.Header.Get("X-Cache"), strings.Count(body, "<figure>"))
	}
	if resp, body := form(del[1], url.Values{"key": {strings.Repeat("f", 20)}}); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no such photo") {
		t.Errorf("deleting a deleted photo: got %s; want 404 saying so", resp.Status)
	}

	if resp, _ := form("/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %s, want 303", resp.Status)
	}
	if resp, _ := do("GET", "/notes", "", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /notes after logout: got %s, want 303 to /login", resp.Status)
	}
}

// pngHeader returns the start of a PNG that declares w×h pixels: enough
// for image.DecodeConfig, a decompression bomb if it were decoded.
func pngHeader(w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	var b bytes.Buffer
	png.Encode(&b, img)
	p := b.Bytes()
	// IHDR width and height are at bytes 16..23, its CRC at 29..32;
	// DecodeConfig checks the chunk CRC, so it is recomputed.
	put := func(i, v int) { p[i], p[i+1], p[i+2], p[i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	put(16, w)
	put(20, h)
	put(29, int(crc32.ChecksumIEEE(p[12:29])))
	return p
}

// sqliteServer runs the app in-process on an embedded SQLite database, as
// make demo does without PostgreSQL, with the given upload quota. The
// server and its files go at the test's end.
func sqliteServer(t *testing.T, quota int64) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	uploads := filepath.Join(dir, "photos")
	if err := os.MkdirAll(uploads, 0o755); err != nil {
		t.Fatal(err)
	}
	c := config{instance: "test-1", secret: strings.Repeat("s", 32), databaseURL: sqliteDSN(filepath.Join(dir, "t.db")), uploadQuota: quota}
	a, cleanup, err := newApp(context.Background(), c, "sqlite", uploads)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return srv
}
