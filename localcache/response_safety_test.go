package localcache_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing/internal/reqstate"
	"github.com/sharednothing/sharednothing/localcache"
)

// TestTruncatedBodyNeverStored: a client that resets the connection
// mid-body makes the handler stop early; the partial body must not be
// stored as the URL's response (issue 13: one anonymous request poisoned a
// URL with 8 KB of 800 KB).
func TestTruncatedBodyNeverStored(t *testing.T) {
	page := bytes.Repeat([]byte("0123456789abcdef"), 50_000) // 800 KB
	handlers := map[string]http.HandlerFunc{
		"ServeContent": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			http.ServeContent(w, r, "page.html", time.Time{}, bytes.NewReader(page))
		},
		"streaming without Content-Length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			for i := 0; i < len(page); i += 8192 {
				w.Write(page[i:min(i+8192, len(page))]) // errors ignored, as many handlers do
				http.NewResponseController(w).Flush()
			}
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			rc := newRC(t, localcache.ResponseOptions{MaxBodyBytes: 2 << 20})
			done := make(chan struct{}, 2)
			srv := httptest.NewServer(rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() { done <- struct{}{} }()
				h(w, r)
			})))
			defer srv.Close()

			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			res, err := (&http.Client{Transport: tr}).Get(srv.URL + "/big")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(res.Body, make([]byte, 8192)); err != nil {
				t.Fatal(err)
			}
			res.Body.Close() // reset mid-body
			<-done

			res, err = http.Get(srv.URL + "/big")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(page) {
				t.Errorf("second client got %d bytes (X-Cache %s), want all %d", len(got), res.Header.Get("X-Cache"), len(page))
			}
			if x := res.Header.Get("X-Cache"); x != "MISS" {
				t.Errorf("second request X-Cache %s, want MISS: the truncated body was stored", x)
			}
		})
	}
}

// TestDeclaredLengthMismatchNotStored: a body shorter than the
// Content-Length the handler declared is never stored.
func TestDeclaredLengthMismatchNotStored(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "short") // the handler gave up early
	}))
	do(h, "GET", "http://example.com/p")
	if x := do(h, "GET", "http://example.com/p").Header.Get("X-Cache"); x != "MISS" {
		t.Errorf("X-Cache %s, want MISS", x)
	}
}

// TestPanicNotStored: a handler that panics after writing part of its body
// stores nothing, and identical requests waiting for it are released.
func TestPanicNotStored(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	calls := 0
	h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "half")
		if calls == 1 {
			panic(http.ErrAbortHandler)
		}
	}))
	func() {
		defer func() { recover() }()
		do(h, "GET", "http://example.com/p")
	}()
	if x := do(h, "GET", "http://example.com/p").Header.Get("X-Cache"); x != "MISS" {
		t.Errorf("X-Cache %s, want MISS", x)
	}
}

// fakeSession stands for the session and replicapin middlewares: it
// registers their cookies in the request's reqstate and records use the
// way they do: a request with the "sid" cookie reads a personal session,
// one without reads an empty one; a valid "pin" cookie bypasses caches.
func fakeSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, st := reqstate.Ensure(r)
		st.AddCookie(reqstate.Cookie{Name: "sid", Kind: reqstate.Session})
		st.AddCookie(reqstate.Cookie{Name: "pin", Kind: reqstate.Pin})
		if _, err := r.Cookie("pin"); err == nil {
			st.Bypass()
		}
		next.ServeHTTP(w, r)
	})
}

func readsSession(w http.ResponseWriter, r *http.Request) string {
	st := reqstate.From(r.Context())
	if c, err := r.Cookie("sid"); err == nil {
		st.Used(reqstate.Personal)
		return "hello " + c.Value
	}
	st.Used(reqstate.Anonymous)
	return "hello stranger"
}

// TestReqstateComposition checks the cache's side of issue 11.1 in both
// mount orders: personal responses are never stored, anonymous ones are
// never served to a client with a session, pinned clients read through.
func TestReqstateComposition(t *testing.T) {
	page := func(w http.ResponseWriter, r *http.Request) {
		msg := readsSession(w, r)
		w.Header().Set("Cache-Control", "public, max-age=600")
		io.WriteString(w, msg)
	}
	for _, order := range []string{"cache outside", "cache inside"} {
		t.Run(order, func(t *testing.T) {
			rc := newRC(t, localcache.ResponseOptions{})
			var h http.Handler
			if order == "cache outside" {
				h = rc.Handler(fakeSession(http.HandlerFunc(page)))
			} else {
				h = fakeSession(rc.Handler(http.HandlerFunc(page)))
			}
			steps := []struct {
				cookie, want, wantX string
			}{
				{"sid=alice", "hello alice", "MISS"},
				{"sid=bob", "hello bob", ""},
				{"", "hello stranger", "MISS"},
				{"", "hello stranger", "HIT"},
				{"sid=alice", "hello alice", ""},
				{"other=1", "hello stranger", "HIT"},
				{"pin=1", "hello stranger", ""},
				{"pin=1; sid=bob", "hello bob", ""},
			}
			for i, s := range steps {
				res := do(h, "GET", "http://example.com/home", "Cookie", s.cookie)
				if got := body(t, res); got != s.want {
					t.Errorf("step %d (%s): got %q, want %q", i, s.cookie, got, s.want)
				}
				if x := res.Header.Get("X-Cache"); s.wantX != "" && x != s.wantX {
					t.Errorf("step %d (%s): X-Cache %s, want %s", i, s.cookie, x, s.wantX)
				}
				if x := res.Header.Get("X-Cache"); (strings.Contains(s.cookie, "sid") || strings.Contains(s.cookie, "pin")) && x == "HIT" {
					t.Errorf("step %d (%s): served from the cache", i, s.cookie)
				}
			}
		})
	}
}

// TestTags checks tagging by header and by Tag, that the header never
// reaches clients, and that PurgeTag counts what it removed.
func TestTags(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		switch r.URL.Path {
		case "/a":
			w.Header().Set("Cache-Tag", "photos, home")
		case "/b":
			localcache.Tag(r, "photos")
		case "/c":
			w.Header().Set("Cache-Tag", "home")
		}
		io.WriteString(w, r.URL.Path)
	}))
	for _, p := range []string{"/a", "/b", "/c"} {
		res := do(h, "GET", "http://example.com"+p)
		if v := res.Header.Get("Cache-Tag"); v != "" {
			t.Errorf("%s: client got Cache-Tag %q", p, v)
		}
	}
	if res := do(h, "GET", "http://example.com/a"); res.Header.Get("Cache-Tag") != "" || res.Header.Get("X-Cache") != "HIT" {
		t.Errorf("hit: Cache-Tag %q, X-Cache %s", res.Header.Get("Cache-Tag"), res.Header.Get("X-Cache"))
	}
	if n := rc.PurgeTag("photos"); n != 2 {
		t.Errorf("PurgeTag(photos) = %d, want 2", n)
	}
	if n := rc.PurgeTag("photos"); n != 0 {
		t.Errorf("PurgeTag(photos) again = %d, want 0", n)
	}
	want := map[string]string{"/a": "MISS", "/b": "MISS", "/c": "HIT"}
	for p, x := range want {
		if got := do(h, "GET", "http://example.com"+p).Header.Get("X-Cache"); got != x {
			t.Errorf("after PurgeTag: %s X-Cache %s, want %s", p, got, x)
		}
	}
	if n := rc.PurgeTag("home"); n != 2 {
		t.Errorf("PurgeTag(home) = %d, want 2", n)
	}
	if st := rc.Stats(); st.Purged != 4 || st.Entries != 1 {
		t.Errorf("Stats: Purged %d, Entries %d; want 4, 1", st.Purged, st.Entries)
	}
}

// TestPurgeDuringHandlerBlocksStore: a response whose handler was running
// when a purge happened may carry the data the purge meant to drop, so it
// is not stored (the refill guard the invalidation bus relies on).
func TestPurgeDuringHandlerBlocksStore(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first {
			first = false
			close(entered)
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "old")
	}))
	done := make(chan struct{})
	go func() { do(h, "GET", "http://example.com/p"); close(done) }()
	<-entered
	rc.PurgeTag("anything")
	close(release)
	<-done
	if x := do(h, "GET", "http://example.com/p").Header.Get("X-Cache"); x != "MISS" {
		t.Errorf("X-Cache %s, want MISS", x)
	}
	if x := do(h, "GET", "http://example.com/p").Header.Get("X-Cache"); x != "HIT" {
		t.Errorf("X-Cache %s, want HIT", x)
	}
}

// TestForwardedHost: X-Forwarded-Host is part of the key only when
// trusted; by default a client cannot choose another host's entries.
func TestForwardedHost(t *testing.T) {
	for _, trust := range []bool{false, true} {
		rc := newRC(t, localcache.ResponseOptions{TrustForwarded: trust})
		h := rc.Handler(&origin{header: map[string]string{"Cache-Control": "max-age=60"}})
		do(h, "GET", "http://internal:8080/p", "X-Forwarded-Host", "www.example.com", "X-Forwarded-Proto", "https")
		n, _ := rc.Purge("https://www.example.com/p")
		want := 0
		if trust {
			want = 1
		}
		if n != want {
			t.Errorf("TrustForwarded %v: Purge by public URL removed %d, want %d", trust, n, want)
		}
	}
}

// TestStatsCountHTTP checks that ResponseStats counts HTTP outcomes.
func TestStatsCountHTTP(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	h := rc.Handler(&origin{header: map[string]string{"Cache-Control": "max-age=60", "Vary": "Accept-Language"}})
	do(h, "GET", "http://example.com/p", "Accept-Language", "de")
	do(h, "GET", "http://example.com/p", "Accept-Language", "de")
	do(h, "GET", "http://example.com/p", "Accept-Language", "fr") // entry exists, variant does not: a miss
	do(h, "POST", "http://example.com/p")
	st := rc.Stats()
	if st.Hits != 1 || st.Misses != 2 || st.Passes != 1 || st.Stored != 2 || st.Purged != 2 {
		t.Errorf("got %+v, want 1 hit, 2 misses, 1 pass, 2 stored, 2 purged", st)
	}
	j, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(j), `"hits":1,`) || !strings.Contains(string(j), `"revalidated":0,`) {
		t.Errorf("json.Marshal(Stats()) = %s, %v", j, err)
	}
}

// TestRevalidationsCoalesce: identical concurrent requests for a stale
// entry send one conditional request through the handler.
func TestRevalidationsCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := newRC(t, localcache.ResponseOptions{})
		release := make(chan struct{})
		var calls, conditional atomic.Int32
		h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("Etag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				conditional.Add(1)
				<-release
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, "payload")
		}))
		do(h, "GET", "http://example.com/p")
		time.Sleep(11 * time.Second)
		const n = 8
		bodies := make(chan string, n)
		for range n {
			go func() { bodies <- body(t, do(h, "GET", "http://example.com/p")) }()
		}
		synctest.Wait() // all n requests are in: one in the handler, the rest waiting
		close(release)
		for range n {
			if b := <-bodies; b != "payload" {
				t.Errorf("got %q, want the stored body", b)
			}
		}
		if c := conditional.Load(); c != 1 {
			t.Errorf("%d conditional requests reached the handler, want 1", c)
		}
		if st := rc.Stats(); st.Revalidated != 1 || st.Hits != n-1 {
			t.Errorf("Stats %+v: want 1 revalidated, %d hits", st, n-1)
		}
	})
}

// TestBackgroundRefreshPanicReported: a handler that panics while
// refreshing in the background (stale-while-revalidate) does not crash the
// process; the panic goes to ErrorHandler with a nil ResponseWriter.
func TestBackgroundRefreshPanicReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reported atomic.Int32
		rc := newRC(t, localcache.ResponseOptions{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if w == nil && strings.Contains(err.Error(), "boom") {
				reported.Add(1)
			}
		}})
		defer rc.Close()
		var calls atomic.Int32
		h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) > 1 {
				panic("boom")
			}
			w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
			io.WriteString(w, "payload")
		}))
		do(h, "GET", "http://example.com/p")
		time.Sleep(2 * time.Second)
		if x := do(h, "GET", "http://example.com/p").Header.Get("X-Cache"); x != "STALE" {
			t.Errorf("X-Cache %s, want STALE", x)
		}
		synctest.Wait()
		if reported.Load() != 1 {
			t.Errorf("panic reported %d times, want 1", reported.Load())
		}
	})
}
