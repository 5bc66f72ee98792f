package replicapin_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/replicapin"
)

type benchKey struct{}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the middleware rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// cpuTime returns the CPU time this process has used, in nanoseconds. On a
// machine shared with other jobs, wall-clock ns/op includes time spent
// waiting for a core; cpu-ns/op does not (it does include the GC).
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkHandler measures the middleware plus one Reader (or Writer) call
// per request, against fake positions so no database round trip is timed.
// "baseline" is the same handler without the middleware, reading from the
// replica directly; the difference is the cost of pinning.
func BenchmarkHandler(b *testing.B) {
	s := newFake(b, 2, replicapin.Options{})
	// newFake turns the debug header on for tests; measure the default.
	db, err := replicapin.New(s.primary, replicas(s.replicas...), replicapin.Options{Key: testKey, Positions: s.pos, PollInterval: forever})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	pollNow(b, db)
	s.db = db
	var sink *sql.DB
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sink = s.db.Reader(r.Context())
		w.WriteHeader(http.StatusOK)
	})
	write := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sink = s.db.Writer(r.Context())
		w.WriteHeader(http.StatusOK)
	})
	baseline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sink = s.replicas[0]
		w.WriteHeader(http.StatusOK)
	})
	pinned := httptest.NewRequest("GET", "/", nil)
	pinned.AddCookie(&http.Cookie{Name: "_pin", Value: replicapin.SealPin(testKey, "_pin", replicapin.Pin{
		Pos: replicapin.Position{Timeline: 1, Offset: 700}, Expires: time.Now().Add(time.Hour)})})
	cases := []struct {
		name string
		h    http.Handler
		req  *http.Request
	}{
		{"baseline", baseline, httptest.NewRequest("GET", "/", nil)},
		// The least any middleware that hands state to handlers through the
		// request context pays: one context value, one request copy.
		{"context-only", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			baseline.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), benchKey{}, s)))
		}), httptest.NewRequest("GET", "/", nil)},
		{"unpinned-read", s.db.Handler(read), httptest.NewRequest("GET", "/", nil)},
		{"pinned-read", s.db.Handler(read), pinned},
		{"write", s.db.Handler(write), httptest.NewRequest("POST", "/", nil)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				clear(w.h)
				c.h.ServeHTTP(w, c.req)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
	_ = sink
}
