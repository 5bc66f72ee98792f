package session_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sharednothing/sharednothing/session"
)

// benchWriter is a ResponseWriter that keeps nothing, so benchmarks measure
// the middleware rather than a recorder.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}

func (w *benchWriter) reset() {
	for k := range w.h {
		delete(w.h, k)
	}
}

var benchKey = bytes.Repeat([]byte{'k'}, 32)

// benchCookie returns a Cookie header for a session holding a typical login.
func benchCookie(b *testing.B, m *session.Manager) string {
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "user_id", 12345)
		m.Put(r.Context(), "name", "Ada Lovelace")
		m.Put(r.Context(), "csrf", "0123456789abcdef0123456789abcdef")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	c := rec.Result().Cookies()
	if len(c) != 1 {
		b.Fatalf("got %d cookies, want 1", len(c))
	}
	return c[0].Name + "=" + c[0].Value
}

func runBench(b *testing.B, h http.Handler, cookie string) {
	r := httptest.NewRequest("GET", "/", nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, r)
	}
}

func BenchmarkLoadAndSave(b *testing.B) {
	m := session.New(benchKey)
	cookie := benchCookie(b, m)
	hello := []byte("hello")
	b.Run("bare", func(b *testing.B) {
		runBench(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(hello) }), cookie)
	})
	b.Run("untouched", func(b *testing.B) {
		runBench(b, m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(hello) })), cookie)
	})
	b.Run("read", func(b *testing.B) {
		runBench(b, m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.GetString(r.Context(), "name") == "" {
				b.Fatal("no session")
			}
			w.Write(hello)
		})), cookie)
	})
	b.Run("write", func(b *testing.B) {
		n := 0
		runBench(b, m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n++
			m.Put(r.Context(), "counter", n)
			w.Write(hello)
		})), cookie)
	})
}
