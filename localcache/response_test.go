package localcache_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
)

// origin is a handler that counts its calls and answers with a fixed status,
// headers and a body naming the call.
type origin struct {
	calls  atomic.Int32
	status int
	header map[string]string
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.calls.Add(1)
	for k, v := range o.header {
		w.Header().Set(k, v)
	}
	if o.status != 0 {
		w.WriteHeader(o.status)
	}
	fmt.Fprintf(w, "body %d for %s", n, r.Header.Get("Accept-Language"))
}

// do sends one request through h; hdr is name, value pairs.
func do(h http.Handler, method, target string, hdr ...string) *http.Response {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newRC(t *testing.T, o localcache.ResponseOptions) *localcache.ResponseCache {
	t.Helper()
	rc, err := localcache.NewResponseCache(o)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestResponseCacheControl(t *testing.T) {
	date := time.Now().UTC().Format(http.TimeFormat)
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		defaultTTL time.Duration
		reqHeader  []string // sent on both requests
		wantHit    bool
	}{
		{"max-age", 200, map[string]string{"Cache-Control": "max-age=60"}, 0, nil, true},
		{"s-maxage", 200, map[string]string{"Cache-Control": "s-maxage=60"}, 0, nil, true},
		{"s-maxage wins over max-age=0", 200, map[string]string{"Cache-Control": "max-age=0, s-maxage=60"}, 0, nil, true},
		{"public max-age", 200, map[string]string{"Cache-Control": "public, max-age=60"}, 0, nil, true},
		{"no-store", 200, map[string]string{"Cache-Control": "no-store, max-age=60"}, 0, nil, false},
		{"private", 200, map[string]string{"Cache-Control": "private, max-age=60"}, 0, nil, false},
		{"private with field: stored without it", 200, map[string]string{"Cache-Control": `private="X-User", max-age=60`, "X-User": "alice"}, 0, nil, true},
		{"no-cache", 200, map[string]string{"Cache-Control": "no-cache, max-age=60"}, 0, nil, false},
		{"max-age=0", 200, map[string]string{"Cache-Control": "max-age=0"}, time.Hour, nil, false},
		{"malformed max-age", 200, map[string]string{"Cache-Control": "max-age=soon"}, time.Hour, nil, false},
		{"Expires in the future", 200, map[string]string{"Expires": in(time.Minute), "Date": date}, 0, nil, true},
		{"Expires in the past", 200, map[string]string{"Expires": in(-time.Minute), "Date": date}, 0, nil, false},
		{"invalid Expires", 200, map[string]string{"Expires": "0"}, time.Hour, nil, false},
		{"max-age beats Expires", 200, map[string]string{"Cache-Control": "max-age=60", "Expires": in(-time.Minute)}, 0, nil, true},
		{"no freshness, no DefaultTTL", 200, nil, 0, nil, false},
		{"no freshness, DefaultTTL", 200, nil, time.Minute, nil, true},
		{"Age past max-age", 200, map[string]string{"Cache-Control": "max-age=60", "Age": "60"}, 0, nil, false},
		{"Set-Cookie is never stored", 200, map[string]string{"Cache-Control": "public, max-age=60", "Set-Cookie": "sid=alice"}, 0, nil, false},
		{"404 is cacheable", 404, map[string]string{"Cache-Control": "max-age=60"}, 0, nil, true},
		{"410 with DefaultTTL", 410, nil, time.Minute, nil, true},
		{"500 with explicit freshness", 500, map[string]string{"Cache-Control": "max-age=60"}, 0, nil, true},
		{"500 never by DefaultTTL", 500, nil, time.Hour, nil, false},
		{"503 never by DefaultTTL even if public", 503, map[string]string{"Cache-Control": "public"}, time.Hour, nil, false},
		{"302 with explicit freshness", 302, map[string]string{"Cache-Control": "max-age=60", "Location": "/x"}, 0, nil, true},
		{"302 never by DefaultTTL", 302, map[string]string{"Location": "/x"}, time.Hour, nil, false},
		{"206 never", 206, map[string]string{"Cache-Control": "max-age=60", "Content-Range": "bytes 0-1/10"}, 0, nil, false},
		{"Vary: *", 200, map[string]string{"Cache-Control": "max-age=60", "Vary": "*"}, 0, nil, false},
		{"Authorization, max-age", 200, map[string]string{"Cache-Control": "max-age=60"}, 0, []string{"Authorization", "Bearer a"}, false},
		{"Authorization, public", 200, map[string]string{"Cache-Control": "public, max-age=60"}, 0, []string{"Authorization", "Bearer a"}, true},
		{"Authorization, s-maxage", 200, map[string]string{"Cache-Control": "s-maxage=60"}, 0, []string{"Authorization", "Bearer a"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newRC(t, localcache.ResponseOptions{DefaultTTL: tt.defaultTTL})
			o := &origin{status: tt.status, header: tt.header}
			h := rc.Handler(o)
			first := do(h, "GET", "http://example.com/page", tt.reqHeader...)
			if got := first.Header.Get("X-Cache"); got != "MISS" {
				t.Errorf("first X-Cache %q, want MISS", got)
			}
			second := do(h, "GET", "http://example.com/page", tt.reqHeader...)
			wantX, wantCalls := "MISS", int32(2)
			if tt.wantHit {
				wantX, wantCalls = "HIT", 1
			}
			if got := second.Header.Get("X-Cache"); got != wantX {
				t.Errorf("second X-Cache %q, want %s", got, wantX)
			}
			if got := o.calls.Load(); got != wantCalls {
				t.Errorf("handler ran %d times, want %d", got, wantCalls)
			}
			if second.StatusCode != first.StatusCode {
				t.Errorf("status %d, want %d", second.StatusCode, first.StatusCode)
			}
			if tt.wantHit {
				if got := body(t, second); got != "body 1 for " {
					t.Errorf("hit body %q", got)
				}
				if got := second.Header.Get("X-User"); got != "" {
					t.Errorf("private field X-User %q served from the cache", got)
				}
			}
		})
	}
}

func TestAuthorizedRequestNotServedFromCache(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60"}}
	h := rc.Handler(o)
	do(h, "GET", "http://example.com/me")
	if got := do(h, "GET", "http://example.com/me").Header.Get("X-Cache"); got != "HIT" {
		t.Fatalf("anonymous request got %s, want HIT", got)
	}
	res := do(h, "GET", "http://example.com/me", "Authorization", "Bearer bob")
	if got := res.Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("authorized request got X-Cache %s, want MISS (not the shared copy)", got)
	}
	if got := body(t, res); got != "body 2 for " {
		t.Errorf("authorized request got %q, want the handler's own answer", got)
	}
}

func TestFreshnessAndAge(t *testing.T) { synctest.Test(t, testFreshnessAndAge) }

func testFreshnessAndAge(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60", "Age": "5"}}
	h := rc.Handler(o)
	do(h, "GET", "http://example.com/a")
	steps := []struct {
		advance time.Duration
		wantX   string
		wantAge string
	}{
		{0, "HIT", "5"},
		{10 * time.Second, "HIT", "15"},
		{44 * time.Second, "HIT", "59"},
		{time.Second, "MISS", ""}, // 60 s old: stale
		{0, "HIT", "5"},           // refetched
	}
	for i, s := range steps {
		time.Sleep(s.advance)
		res := do(h, "GET", "http://example.com/a")
		if got := res.Header.Get("X-Cache"); got != s.wantX {
			t.Errorf("step %d: X-Cache %s, want %s", i, got, s.wantX)
		}
		if got := res.Header.Get("Age"); s.wantX == "HIT" && got != s.wantAge {
			t.Errorf("step %d: Age %q, want %q", i, got, s.wantAge)
		}
	}
}

func TestVary(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60", "Vary": "Accept-Language"}}
	h := rc.Handler(o)
	for _, tc := range []struct{ lang, wantBody, wantX string }{
		{"en", "body 1 for en", "MISS"},
		{"fr", "body 2 for fr", "MISS"},
		{"en", "body 1 for en", "HIT"},
		{"fr", "body 2 for fr", "HIT"},
		{"", "body 3 for ", "MISS"},
	} {
		res := do(h, "GET", "http://example.com/hello", "Accept-Language", tc.lang)
		if got := body(t, res); got != tc.wantBody {
			t.Errorf("lang %q: body %q, want %q", tc.lang, got, tc.wantBody)
		}
		if got := res.Header.Get("X-Cache"); got != tc.wantX {
			t.Errorf("lang %q: X-Cache %s, want %s", tc.lang, got, tc.wantX)
		}
	}
}

// TestKeyConfusion checks that the key merges only URLs that are
// provably the same resource: host case, and with SortQuery parameter
// order. Issue 13 found ?a, ?a=, %20 and + and reordered parameters all
// sharing one entry.
func TestKeyConfusion(t *testing.T) {
	for _, sortQuery := range []bool{false, true} {
		t.Run(fmt.Sprintf("SortQuery=%v", sortQuery), func(t *testing.T) {
			rc := newRC(t, localcache.ResponseOptions{SortQuery: sortQuery})
			h := rc.Handler(&origin{header: map[string]string{"Cache-Control": "max-age=60"}})
			reordered := "MISS"
			if sortQuery {
				reordered = "HIT"
			}
			for _, tt := range []struct {
				target string
				want   string
			}{
				{"http://example.com/p?b=2&a=1", "MISS"},
				{"http://example.com/p?b=2&a=1", "HIT"},
				{"https://EXAMPLE.com/p?b=2&a=1", "HIT"}, // scheme not in the key by default
				{"http://example.com/p?a=1&b=2", reordered},
				{"http://example.com/p?a=1&b=3", "MISS"},
				{"http://example.com/p", "MISS"},
				{"http://example.com/p?", "MISS"},
				{"http://other.example/p", "MISS"},
				{"http://example.com/q?a", "MISS"},
				{"http://example.com/q?a=", "MISS"},
				{"http://example.com/q?x=%20", "MISS"},
				{"http://example.com/q?x=+", "MISS"},
				{"http://example.com/q?x=%2B", "MISS"},
				{"http://example.com/r%2Fs", "MISS"},
				{"http://example.com/r/s", "MISS"},
				{"http://example.com/q?a=%zz", "MISS"},
				{"http://example.com/q?a=%zz", "HIT"},
			} {
				if got := do(h, "GET", tt.target).Header.Get("X-Cache"); got != tt.want {
					t.Errorf("%s: X-Cache %q, want %s", tt.target, got, tt.want)
				}
			}
		})
	}
}

func TestHeadServedFromGet(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60"}}
	h := rc.Handler(o)
	if got := do(h, "HEAD", "http://example.com/x").Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("HEAD before GET: %s", got)
	}
	do(h, "GET", "http://example.com/x")
	res := do(h, "HEAD", "http://example.com/x")
	if res.Header.Get("X-Cache") != "HIT" || body(t, res) != "" {
		t.Errorf("HEAD: X-Cache %s; want a HIT without body", res.Header.Get("X-Cache"))
	}
	if got := res.Header.Get("Content-Length"); got != "11" {
		t.Errorf("HEAD Content-Length %q, want 11", got)
	}
}

func TestConditional(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	lm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"v1"`, "Last-Modified": lm.Format(http.TimeFormat)}}
	h := rc.Handler(o)
	do(h, "GET", "http://example.com/c")
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"If-None-Match match", []string{"If-None-Match", `"v1"`}, 304},
		{"If-None-Match weak", []string{"If-None-Match", `W/"v1"`}, 304},
		{"If-None-Match list", []string{"If-None-Match", `"v0", "v1"`}, 304},
		{"If-None-Match other", []string{"If-None-Match", `"v2"`}, 200},
		{"If-Modified-Since later", []string{"If-Modified-Since", lm.Add(time.Hour).Format(http.TimeFormat)}, 304},
		{"If-Modified-Since earlier", []string{"If-Modified-Since", lm.Add(-time.Hour).Format(http.TimeFormat)}, 200},
		{"If-Modified-Since garbage", []string{"If-Modified-Since", "yesterday"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(h, "GET", "http://example.com/c", tt.hdr...)
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			if res.Header.Get("X-Cache") != "HIT" || res.Header.Get("ETag") != `"v1"` || res.Header.Get("Age") == "" {
				t.Errorf("headers %v", res.Header)
			}
			if tt.status == 304 && body(t, res) != "" {
				t.Error("304 with a body")
			}
		})
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

func TestCoalescing(t *testing.T) {
	tests := []struct {
		name      string
		header    map[string]string
		wantCalls int32
	}{
		{"cacheable: one handler call", map[string]string{"Cache-Control": "max-age=60"}, 1},
		{"not cacheable: every request runs", map[string]string{"Cache-Control": "no-store"}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newRC(t, localcache.ResponseOptions{})
			release := make(chan struct{})
			var calls atomic.Int32
			var arrived sync.WaitGroup
			h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				<-release
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				io.WriteString(w, "shared")
			}))
			const n = 8
			arrived.Add(n)
			var wg sync.WaitGroup
			bodies := make([]string, n)
			for i := range n {
				wg.Go(func() {
					arrived.Done()
					res := do(h, "GET", "http://example.com/slow")
					bodies[i] = body(t, res)
				})
			}
			arrived.Wait()
			// Let the requests reach the cache before the handler answers.
			for calls.Load() == 0 {
				runtime.Gosched()
			}
			for range 100 {
				runtime.Gosched()
			}
			close(release)
			wg.Wait()
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("handler ran %d times, want %d", got, tt.wantCalls)
			}
			for i, b := range bodies {
				if b != "shared" {
					t.Errorf("request %d got %q", i, b)
				}
			}
		})
	}
}

func TestByteBoundUnderCacheBusting(t *testing.T) {
	const maxBytes = 1 << 20
	rc := newRC(t, localcache.ResponseOptions{MaxBytes: maxBytes, MaxBodyBytes: 16 << 10})
	page := bytes.Repeat([]byte("x"), 4096)
	h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(page)
	}))
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 20_000 { // 80 MB of distinct pages
		res := do(h, "GET", fmt.Sprintf("http://example.com/?bust=%d", i))
		if res.Header.Get("X-Cache") != "MISS" {
			t.Fatalf("request %d: %s", i, res.Header.Get("X-Cache"))
		}
		if b := rc.Stats().Bytes; b > maxBytes {
			t.Fatalf("after %d requests Bytes %d > %d", i, b, maxBytes)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4*maxBytes {
		t.Errorf("heap grew %d bytes under a %d byte bound", grew, maxBytes)
	}
	if st := rc.Stats(); st.Entries < 100 {
		t.Errorf("only %d entries held; bound badly underused", st.Entries)
	}
}

func TestLargeBodyStreamsUncached(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{MaxBodyBytes: 1024})
	chunk := strings.Repeat("a", 1000)
	sent := make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		for range 3 {
			io.WriteString(w, chunk)
			http.NewResponseController(w).Flush()
			if calls.Load() == 1 {
				<-sent // the client read this chunk before the next is written
			}
		}
	})))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	for range 3 {
		if _, err := io.ReadFull(res.Body, buf); err != nil {
			t.Fatal(err)
		}
		sent <- struct{}{}
	}
	res.Body.Close()
	res, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(body(t, res)); got != 3000 || res.Header.Get("X-Cache") != "MISS" {
		t.Errorf("second request: %d bytes, X-Cache %s; want 3000 uncached", got, res.Header.Get("X-Cache"))
	}
	if b := rc.Stats().Bytes; b >= 1000 {
		t.Errorf("%d bytes stored, want no body kept", b)
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60"}}
	h := rc.Handler(o)
	do(h, "GET", "http://example.com/doc")
	do(h, "POST", "http://example.com/doc")
	if got := do(h, "GET", "http://example.com/doc").Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("after POST: %s, want MISS", got)
	}
}

func TestPurge(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "max-age=60"}}
	h := rc.Handler(o)
	do(h, "GET", "http://example.com/p?b=1&a=2")
	do(h, "GET", "http://example.com/q")
	if n, err := rc.Purge("https://EXAMPLE.com/p?b=1&a=2"); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v; want 1 (scheme and host case ignored)", n, err)
	}
	if got := do(h, "GET", "http://example.com/p?b=1&a=2").Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("after Purge: %s", got)
	}
	if got := do(h, "GET", "http://example.com/q").Header.Get("X-Cache"); got != "HIT" {
		t.Errorf("other URL after Purge: %s", got)
	}
	if n := rc.PurgeAll(); n != 2 {
		t.Errorf("PurgeAll = %d, want 2", n)
	}
	if got := do(h, "GET", "http://example.com/q").Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("after PurgeAll: %s", got)
	}
	if _, err := rc.Purge("/relative"); !errors.Is(err, localcache.ErrBadURL) {
		t.Errorf("Purge(relative) = %v, want ErrBadURL", err)
	}
}

func TestNewResponseCacheRejects(t *testing.T) {
	for _, o := range []localcache.ResponseOptions{
		{MaxBytes: -1}, {MaxBodyBytes: -1}, {DefaultTTL: -1}, {MaxStale: -1},
	} {
		if _, err := localcache.NewResponseCache(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestMustRevalidateDoesNotShareAuthorized(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	o := &origin{header: map[string]string{"Cache-Control": "must-revalidate, max-age=60"}}
	h := rc.Handler(o)
	do(h, "GET", "http://example.com/acct", "Authorization", "Bearer alice")
	res := do(h, "GET", "http://example.com/acct", "Authorization", "Bearer bob")
	if got := res.Header.Get("X-Cache"); got != "MISS" || o.calls.Load() != 2 {
		t.Errorf("bob got X-Cache %s after alice (%d handler calls); want his own response", got, o.calls.Load())
	}
}

// TestUncacheableNotSerialised checks that once a URL answered with an
// uncacheable response, concurrent requests for it run side by side
// instead of waiting for each other.
func TestUncacheableNotSerialised(t *testing.T) {
	rc := newRC(t, localcache.ResponseOptions{})
	entered := make(chan struct{}, 3)
	release := make(chan struct{})
	var calls atomic.Int32
	h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if calls.Add(1) > 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "dynamic")
	}))
	do(h, "GET", "http://example.com/live")
	<-entered
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { do(h, "GET", "http://example.com/live") })
	}
	for i := range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second): // a failure deadline, not a wait
			t.Fatalf("only %d of 2 concurrent requests reached the handler; the other is queued behind it", i)
		}
	}
	close(release)
	wg.Wait()
}
