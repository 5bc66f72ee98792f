package thumbnail

import (
	"fmt"
	"image"
	"io"
	"net/http"
	"strings"
	"testing"
)

// fakeWebP stands in for a real WebP encoder (see bench/webp for one): it
// writes a line naming the image's size and the quality.
func fakeWebP(w io.Writer, m image.Image, quality int) error {
	_, err := fmt.Fprintf(w, "fake webp %v q%d", m.Bounds().Size(), quality)
	return err
}

func TestWebPNegotiation(t *testing.T) {
	h := newHandler(t, Options{WebP: fakeWebP, Presets: map[string]Spec{"small": {Width: 40}}})
	const webpAccept = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8" // a browser's
	tests := []struct {
		name   string
		target string
		accept string
		ctype  string
		vary   string
	}{
		{"auto, webp accepted", h.URL("photo.jpg", Spec{Width: 40}), webpAccept, "image/webp", "Accept"},
		{"auto, webp not accepted", h.URL("photo.jpg", Spec{Width: 40}), "image/*", "image/jpeg", "Accept"},
		{"auto, no Accept", h.URL("photo.jpg", Spec{Width: 40}), "", "image/jpeg", "Accept"},
		{"auto, webp refused by q=0", h.URL("photo.jpg", Spec{Width: 40}), "image/webp;q=0, image/*", "image/jpeg", "Accept"},
		{"auto png source", h.URL("alpha.png", Spec{Width: 40}), webpAccept, "image/webp", "Accept"},
		{"preset", "/small/photo.jpg", webpAccept, "image/webp", "Accept"},
		{"explicit jpeg", h.URL("photo.jpg", Spec{Width: 40, Format: JPEG}), webpAccept, "image/jpeg", ""},
		{"explicit webp", h.URL("photo.jpg", Spec{Width: 40, Format: WebP}), "image/jpeg", "image/webp", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(h, "GET", tt.target, "Accept", tt.accept)
			b := body(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, resp.Header.Get("X-Test-Error"))
			}
			if got := resp.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type: got %q, want %q", got, tt.ctype)
			}
			if got := resp.Header.Get("Vary"); got != tt.vary {
				t.Errorf("Vary: got %q, want %q", got, tt.vary)
			}
			if tt.ctype == "image/webp" && !strings.HasPrefix(string(b), "fake webp (40,") {
				t.Errorf("body: got %q, want the encoder's output", b)
			}
		})
	}

	// The two variants are cached apart and have different ETags; a 304
	// carries Vary too.
	u := h.URL("photo.jpg", Spec{Width: 40})
	asWebP, asJPEG := get(h, "GET", u, "Accept", webpAccept), get(h, "GET", u)
	if asWebP.Header.Get("ETag") == asJPEG.Header.Get("ETag") {
		t.Errorf("webp and jpeg variants share the ETag %s", asWebP.Header.Get("ETag"))
	}
	r := get(h, "GET", u, "Accept", webpAccept, "If-None-Match", asWebP.Header.Get("ETag"))
	if r.StatusCode != http.StatusNotModified || r.Header.Get("Vary") != "Accept" {
		t.Errorf("revalidation: got %d, Vary %q; want 304 with Vary: Accept", r.StatusCode, r.Header.Get("Vary"))
	}
	if r := get(h, "GET", u, "If-None-Match", asWebP.Header.Get("ETag")); r.StatusCode != 200 {
		t.Errorf("webp ETag revalidated for a client without webp: got %d, want 200", r.StatusCode)
	}
}

// TestVaryAddsToOuterVary: a negotiated response keeps the Vary an outer
// middleware (a session, say) set before the handler ran.
func TestVaryAddsToOuterVary(t *testing.T) {
	h := newHandler(t, Options{WebP: fakeWebP})
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Cookie")
		h.ServeHTTP(w, r)
	})
	resp := get(outer, "GET", h.URL("photo.jpg", Spec{Width: 40}), "Accept", "image/webp")
	if got := resp.Header.Values("Vary"); strings.Join(got, ", ") != "Cookie, Accept" {
		t.Errorf("Vary: got %q, want Cookie and Accept", got)
	}
}

func TestWebPEncoderFailureIs500(t *testing.T) {
	h := newHandler(t, Options{WebP: func(io.Writer, image.Image, int) error { return fmt.Errorf("wasm trap") }})
	resp := get(h, "GET", h.URL("photo.jpg", Spec{Width: 40, Format: WebP}))
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(resp.Header.Get("X-Test-Error"), "wasm trap") {
		t.Errorf("got %d (%s), want 500 with the encoder's error", resp.StatusCode, resp.Header.Get("X-Test-Error"))
	}
}

func TestAcceptsWebP(t *testing.T) {
	tests := map[string]bool{
		"":                            false,
		"image/webp":                  true,
		"IMAGE/WEBP":                  true,
		"image/png, image/webp;q=0.5": true,
		"image/webp;q=0":              false,
		"image/webp; q=0.0":           false,
		"image/webp;q=abc":            true, // a q that does not parse is ignored
		"image/*":                     false,
		"*/*":                         false,
		"image/webpx":                 false,
		"text/html;level=1, image/webp ; foo=bar": true,
	}
	for accept, want := range tests {
		if got := acceptsWebP([]string{accept}); got != want {
			t.Errorf("acceptsWebP(%q): got %v, want %v", accept, got, want)
		}
	}
}

// FuzzAcceptsWebP: any header is answered without panicking, and naming
// image/webp first, with no parameters, is always enough.
func FuzzAcceptsWebP(f *testing.F) {
	for _, s := range []string{"image/webp", "image/webp;q=0", "a;b;c,d=e,,;q=", "*/*;q=0.8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		acceptsWebP([]string{accept})
		if !acceptsWebP([]string{"image/webp," + accept}) {
			t.Fatalf("image/webp first, then %q: not accepted", accept)
		}
	})
}
