package thumbnail

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestOriginRedirects: an origin that redirects to another host (here an
// "internal" server) is not followed unless that host is allowed, and the
// client never sees the origin's or the internal host's URL.
func TestOriginRedirects(t *testing.T) {
	fixtures := fixtureDir(t)
	var internalHits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internalHits.Add(1)
		http.FileServer(http.Dir(fixtures)).ServeHTTP(w, r)
	}))
	t.Cleanup(internal.Close)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away.jpg":
			http.Redirect(w, r, internal.URL+"/photo.jpg", http.StatusFound)
		case "/moved.jpg":
			http.Redirect(w, r, "/photo.jpg", http.StatusMovedPermanently)
		default:
			http.FileServer(http.Dir(fixtures)).ServeHTTP(w, r)
		}
	}))
	t.Cleanup(origin.Close)
	internalHost := strings.TrimPrefix(internal.URL, "http://")

	tests := []struct {
		name         string
		source       Source
		image        string
		status       int
		internalHits int32
	}{
		{"same host", Origin(origin.URL, nil), "moved.jpg", 200, 0},
		{"other host refused", Origin(origin.URL, nil), "away.jpg", 502, 0},
		{"other host allowed", Origin(origin.URL, nil, internalHost), "away.jpg", 200, 2}, // HEAD and GET
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			internalHits.Store(0)
			h, err := New(Options{Source: tt.source, Key: testKey}) // the default ErrorHandler
			if err != nil {
				t.Fatal(err)
			}
			resp := get(h, "GET", h.URL(tt.image, Spec{Width: 40}))
			b := string(body(t, resp))
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			if got := internalHits.Load(); got != tt.internalHits {
				t.Errorf("internal host got %d requests, want %d", got, tt.internalHits)
			}
			if tt.status != 200 {
				if want := http.StatusText(tt.status) + "\n"; b != want {
					t.Errorf("body: got %q, want %q", b, want)
				}
			}
		})
	}
}

// TestErrorBodiesNeverEchoInternals: with the default ErrorHandler, no
// error body names the origin, an internal path or the error's own words.
func TestErrorBodiesNeverEchoInternals(t *testing.T) {
	fixtures := fixtureDir(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused from now on
	tests := []struct {
		name   string
		source Source
		image  string
		status int
	}{
		{"origin down", Origin(deadURL+"/internal", nil), "cat.jpg", 502},
		{"missing file", Dir(fixtures), "nope/cat.jpg", 404},
		{"corrupt", Dir(fixtures), "corrupt.png", 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Options{Source: tt.source, Key: testKey})
			if err != nil {
				t.Fatal(err)
			}
			resp := get(h, "GET", h.URL(tt.image, Spec{Width: 40}))
			b := string(body(t, resp))
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			for _, leak := range []string{"127.0.0.1", "internal", fixtures, "cat.jpg", "corrupt", "thumbnail:"} {
				if strings.Contains(b, leak) {
					t.Errorf("body %q contains %q", b, leak)
				}
			}
		})
	}
}
