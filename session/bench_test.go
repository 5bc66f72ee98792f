package session_test

import (
	"bytes"
	"context"
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

// BenchmarkContextShape compares the two ways of putting per-request state
// in the request context: a plain context.WithValue (what LoadAndSave
// does), and the state struct itself implementing context.Context by
// embedding the parent and overriding Value (what it did before, to save
// the WithValue allocation). Each iteration builds the state and the
// request copy as the middleware does, then looks the state up three times
// through a context derived by a router, as handlers do.
func BenchmarkContextShape(b *testing.B) {
	base := httptest.NewRequest("GET", "/", nil)
	lookups := func(ctx context.Context) {
		ctx = context.WithValue(ctx, routerKey{}, 1) // a router's own value
		for range 3 {
			if ctx.Value(shapeKey{}) == nil {
				b.Fatal("lost")
			}
		}
	}
	b.Run("withvalue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st := &plainState{}
			st.req = *base.WithContext(context.WithValue(base.Context(), shapeKey{}, st))
			lookups(st.req.Context())
		}
	})
	b.Run("custom-context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st := &ctxState{Context: base.Context()}
			st.req = *base.WithContext(st)
			lookups(st.req.Context())
		}
	})
}

type shapeKey struct{}
type routerKey struct{}

type plainState struct {
	req http.Request
}

type ctxState struct {
	context.Context
	req http.Request
}

func (s *ctxState) Value(key any) any {
	if _, ok := key.(shapeKey); ok {
		return s
	}
	return s.Context.Value(key)
}
