package localcache_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
)

// rcReply is what the scripted origin answers.
type rcReply struct {
	status int
	header []string // name, value pairs; a value "@+N" or "@-N" is the HTTP date N seconds from now
	body   string
}

// rcStep is one request of a scenario.
type rcStep struct {
	wait    time.Duration // fake time passing before the request
	method  string        // "" means GET
	path    string        // "" means /r
	req     []string      // request header pairs
	reply   *rcReply      // the origin's answer from now on (nil: unchanged)
	want    string        // X-Cache
	status  int           // 0: not checked
	body    string        // "": not checked; "-" means empty
	header  []string      // response header pairs to check; value "" means absent
	sent    []string      // request header pairs the origin must have got; value "" means absent
	origin  bool          // the origin must have been called (implied by want MISS or REVALIDATED)
	nocheck bool          // origin calls not checked (background refresh)
}

func rcExpand(v string) string {
	if n, ok := strings.CutPrefix(v, "@"); ok {
		secs, err := strconv.Atoi(n)
		if err == nil {
			return time.Now().Add(time.Duration(secs) * time.Second).UTC().Format(http.TimeFormat)
		}
	}
	return v
}

// rcRun plays a rcScenario against a cache in a synctest bubble.
func rcRun(t *testing.T, opts localcache.ResponseOptions, steps []rcStep) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		rc := newRC(t, opts)
		defer rc.Close()
		var (
			calls atomic.Int32
			cur   = &rcReply{status: 200}
			got   http.Header
		)
		h := rc.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := calls.Add(1)
			got = r.Header.Clone()
			for i := 0; i+1 < len(cur.header); i += 2 {
				w.Header().Add(cur.header[i], rcExpand(cur.header[i+1]))
			}
			w.WriteHeader(cur.status)
			if cur.body != "" {
				fmt.Fprint(w, cur.body)
			} else if cur.status != 204 && cur.status != 304 {
				fmt.Fprintf(w, "body %d", n)
			}
		}))
		for i, s := range steps {
			time.Sleep(s.wait)
			if s.reply != nil {
				cur = s.reply
			}
			before := calls.Load()
			got = nil
			path := s.path
			if path == "" {
				path = "/r"
			}
			req := httptest.NewRequest(rcOr(s.method, "GET"), "http://example.com"+path, nil)
			for j := 0; j+1 < len(s.req); j += 2 {
				req.Header.Add(s.req[j], rcExpand(s.req[j+1]))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			synctest.Wait() // background refreshes finish
			res := rec.Result()
			if x := res.Header.Get("X-Cache"); s.want != "" && x != s.want {
				t.Errorf("step %d: X-Cache %q, want %q", i, x, s.want)
			}
			called := calls.Load() > before
			wantCalled := s.origin || s.want == "MISS" || s.want == "REVALIDATED"
			if !s.nocheck && called != wantCalled {
				t.Errorf("step %d: origin called %v, want %v", i, called, wantCalled)
			}
			if s.status != 0 && res.StatusCode != s.status {
				t.Errorf("step %d: status %d, want %d", i, res.StatusCode, s.status)
			}
			if s.body != "" {
				b := body(t, res)
				if s.body == "-" {
					s.body = ""
				}
				if b != s.body {
					t.Errorf("step %d: body %q, want %q", i, b, s.body)
				}
			}
			for j := 0; j+1 < len(s.header); j += 2 {
				if v := strings.Join(res.Header.Values(s.header[j]), ", "); v != rcExpand(s.header[j+1]) {
					t.Errorf("step %d: response %s %q, want %q", i, s.header[j], v, rcExpand(s.header[j+1]))
				}
			}
			for j := 0; j+1 < len(s.sent); j += 2 {
				if got == nil {
					t.Errorf("step %d: origin not called, want it to get %s", i, s.sent[j])
					continue
				}
				if v := got.Get(s.sent[j]); v != s.sent[j+1] {
					t.Errorf("step %d: origin got %s %q, want %q", i, s.sent[j], v, s.sent[j+1])
				}
			}
		}
	})
}

func rcOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type rcScenario struct {
	name  string
	opts  localcache.ResponseOptions
	steps []rcStep
}

func rcRunAll(t *testing.T, cases []rcScenario) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { rcRun(t, c.opts, c.steps) })
	}
}

func rcFresh(h ...string) *rcReply {
	return &rcReply{status: 200, header: append([]string{"Cache-Control", "max-age=100"}, h...)}
}

// TestRFC9111Storing covers §3 (storing responses) and §3.1 (which header
// fields are stored).
func TestRFC9111Storing(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"response no-store", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=100, No-Store"}}, want: "MISS"},
			{want: "MISS"},
		}},
		{"request no-store is not stored (§5.2.1.5)", rcDefaults(), []rcStep{
			{reply: rcFresh(), req: []string{"Cache-Control", "no-store"}, want: "MISS"},
			{want: "MISS"},
			{want: "HIT"},
		}},
		{"older response kept when newer says no-store", rcDefaults(), []rcStep{
			{reply: rcFresh("A", "1"), want: "MISS"},
			{wait: 200 * time.Second, reply: &rcReply{status: 200, header: []string{"Cache-Control", "no-store", "A", "2"}}, want: "MISS"},
			{req: []string{"Cache-Control", "max-stale"}, want: "STALE", header: []string{"A", "1"}},
		}},
		{"private", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "private, max-age=100"}}, want: "MISS"},
			{want: "MISS"},
		}},
		{"private= and no-cache= strip the fields", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", `private="A", no-cache="B, C", max-age=100`, "A", "1", "B", "2", "C", "3", "D", "4"}}, want: "MISS"},
			{want: "HIT", header: []string{"A", "", "B", "", "C", "", "D", "4"}},
		}},
		{"Connection and the fields it lists are not stored", rcDefaults(), []rcStep{
			{reply: rcFresh("Connection", "a, b", "A", "1", "B", "2", "C", "3"), want: "MISS"},
			{want: "HIT", header: []string{"A", "", "B", "", "C", "3", "Connection", ""}},
		}},
		{"Set-Cookie never stored", rcDefaults(), []rcStep{
			{reply: rcFresh("Set-Cookie", "a=b"), want: "MISS"},
			{want: "MISS"},
		}},
		{"Authorization needs public or s-maxage", rcDefaults(), []rcStep{
			{reply: rcFresh(), req: []string{"Authorization", "x"}, want: "MISS"},
			{req: []string{"Authorization", "x"}, want: "MISS"},
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "public, max-age=100"}}, req: []string{"Authorization", "x"}, want: "MISS"},
			{req: []string{"Authorization", "y"}, want: "HIT"},
		}},
		{"Vary selects, Vary * is not stored", rcDefaults(), []rcStep{
			{reply: rcFresh("Vary", "Accept-Language"), req: []string{"Accept-Language", "de"}, want: "MISS"},
			{req: []string{"Accept-Language", "fr"}, want: "MISS"},
			{req: []string{"Accept-Language", "de"}, want: "HIT", body: "body 1"},
			{req: []string{"Accept-Language", "fr"}, want: "HIT", body: "body 2"},
			{path: "/star", reply: rcFresh("Vary", "*"), want: "MISS"},
			{path: "/star", want: "MISS"},
		}},
		{"explicitly rcFresh statuses are stored", rcDefaults(), []rcStep{
			{path: "/299", reply: &rcReply{status: 299, header: []string{"Cache-Control", "max-age=100"}}, want: "MISS"},
			{path: "/299", want: "HIT", status: 299},
			{path: "/400", reply: &rcReply{status: 400, header: []string{"Cache-Control", "max-age=100"}}, want: "MISS"},
			{path: "/400", want: "HIT", status: 400},
			{path: "/503", reply: &rcReply{status: 503, header: []string{"Cache-Control", "max-age=100"}}, want: "MISS"},
			{path: "/503", want: "HIT", status: 503},
			{path: "/503", wait: 101 * time.Second, want: "MISS"},
		}},
		{"must-understand stores understood statuses despite no-store", rcDefaults(), []rcStep{
			{path: "/200", reply: &rcReply{status: 200, header: []string{"Cache-Control", "must-understand, no-store, max-age=100"}}, want: "MISS"},
			{path: "/200", want: "HIT"},
			{path: "/299", reply: &rcReply{status: 299, header: []string{"Cache-Control", "must-understand, no-store, max-age=100"}}, want: "MISS"},
			{path: "/299", want: "MISS"},
		}},
	})
}

func rcDefaults() localcache.ResponseOptions { return localcache.ResponseOptions{} }

// TestRFC9111Freshness covers §4.2: lifetime, Age, Expires, heuristics.
func TestRFC9111Freshness(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"max-age", rcDefaults(), []rcStep{
			{reply: rcFresh(), want: "MISS"},
			{wait: 99 * time.Second, want: "HIT", header: []string{"Age", "99"}},
			{wait: time.Second, want: "MISS"},
		}},
		{"s-maxage beats max-age", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1000", "Cache-Control", "s-maxage=10"}}, want: "MISS"},
			{wait: 11 * time.Second, want: "MISS"},
		}},
		{"max-age beyond 2^31 is capped, still fresh", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=99999999999"}}, want: "MISS"},
			{wait: 1000 * time.Hour, want: "HIT"},
		}},
		{"invalid max-age forms are not freshness", rcDefaults(), []rcStep{
			{path: "/a", reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age =100"}}, want: "MISS"},
			{path: "/a", want: "MISS"},
			{path: "/b", reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age= 100"}}, want: "MISS"},
			{path: "/b", want: "MISS"},
			{path: "/c", reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age='100'"}}, want: "MISS"},
			{path: "/c", want: "MISS"},
			{path: "/d", reply: &rcReply{status: 200, header: []string{"Cache-Control", `ext="max-age=100", max-age=1`}}, want: "MISS"},
			{path: "/d", wait: 2 * time.Second, want: "MISS"},
			{path: "/e", reply: &rcReply{status: 200, header: []string{"Cache-Control", `max-age="100"`}}, want: "MISS"},
			{path: "/e", want: "HIT"},
		}},
		{"Age counts against max-age; first member only; invalid ignored", rcDefaults(), []rcStep{
			{path: "/a", reply: rcFresh("Age", "150"), want: "MISS"},
			{path: "/a", want: "MISS"},
			{path: "/b", reply: rcFresh("Age", "50, 200"), want: "MISS"},
			{path: "/b", want: "HIT", header: []string{"Age", "50"}},
			{path: "/c", reply: rcFresh("Age", "abc"), want: "MISS"},
			{path: "/c", want: "HIT", header: []string{"Age", "0"}},
		}},
		{"Date in the past ages the response", rcDefaults(), []rcStep{
			{reply: rcFresh("Date", "@-60"), want: "MISS"},
			{wait: 30 * time.Second, want: "HIT", header: []string{"Age", "90", "Date", "@-90"}},
			{wait: 10 * time.Second, want: "MISS"},
		}},
		{"Expires against Date", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Expires", "@+100", "Date", "@0"}}, want: "MISS"},
			{wait: 99 * time.Second, want: "HIT"},
			{wait: 2 * time.Second, want: "MISS"},
		}},
		{"invalid Expires means expired (RFC 9110 §5.6.7)", rcDefaults(), []rcStep{
			{path: "/a", reply: &rcReply{status: 200, header: []string{"Expires", "Thu, 18  Aug  2050 02:01:18 GMT"}}, want: "MISS"},
			{path: "/a", want: "MISS"},
			{path: "/b", reply: &rcReply{status: 200, header: []string{"Expires", "Thu, 18 Aug 2050 2:01:18 GMT"}}, want: "MISS"},
			{path: "/b", want: "MISS"},
			{path: "/c", reply: &rcReply{status: 200, header: []string{"Expires", "Thu, 18 Aug 2050 02:01:18 GMT"}}, want: "MISS"},
			{path: "/c", want: "HIT"},
		}},
		{"max-age beats an invalid Expires", rcDefaults(), []rcStep{
			{reply: rcFresh("Expires", "0"), want: "MISS"},
			{want: "HIT"},
		}},
		{"no freshness: not stored by default", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Last-Modified", "@-100000"}}, want: "MISS"},
			{want: "MISS"},
		}},
		{"heuristic: DefaultTTL capped by a tenth of Last-Modified's age", localcache.ResponseOptions{DefaultTTL: time.Hour}, []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Last-Modified", "@-1000", "Date", "@0"}}, want: "MISS"},
			{wait: 99 * time.Second, want: "HIT"},
			{wait: 2 * time.Second, want: "REVALIDATED", reply: &rcReply{status: 304}},
			{path: "/x", reply: &rcReply{status: 404}, want: "MISS"},
			{path: "/x", wait: 59 * time.Minute, want: "HIT", status: 404},
			{path: "/e", reply: &rcReply{status: 500}, want: "MISS"},
			{path: "/e", want: "MISS"},
		}},
	})
}

// TestRFC9111Validation covers §4.3: conditional requests to the origin,
// 304 handling and header update (§4.3.4), and answering clients'
// conditional requests from the cache (§4.3.2).
func TestRFC9111Validation(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"stale with ETag: If-None-Match, 304 updates headers", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1", "Etag", `"v1"`, "Test-Header", "A"}, body: "payload"}, want: "MISS"},
			{wait: 2 * time.Second, reply: &rcReply{status: 304, header: []string{"Cache-Control", "max-age=100", "Etag", `"v1"`, "Test-Header", "B"}},
				want: "REVALIDATED", status: 200, body: "payload", header: []string{"Test-Header", "B"}, sent: []string{"If-None-Match", `"v1"`}},
			{want: "HIT", body: "payload", header: []string{"Test-Header", "B", "Cache-Control", "max-age=100"}},
		}},
		{"stale with Last-Modified: If-Modified-Since", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1", "Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}, body: "payload"}, want: "MISS"},
			{wait: 2 * time.Second, reply: &rcReply{status: 304, header: []string{"Cache-Control", "max-age=100"}},
				want: "REVALIDATED", body: "payload", sent: []string{"If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT", "If-None-Match", ""}},
		}},
		{"200 on revalidation replaces the entry", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1", "Etag", `"v1"`}, body: "old"}, want: "MISS"},
			{wait: 2 * time.Second, reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=100", "Etag", `"v2"`}, body: "new"}, want: "MISS", body: "new"},
			{want: "HIT", body: "new"},
		}},
		{"no-cache response is stored and validated on every use", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "no-cache, max-age=1000", "Etag", `"v1"`}, body: "payload"}, want: "MISS"},
			{reply: &rcReply{status: 304, header: []string{"Etag", `"v1"`}}, want: "REVALIDATED", body: "payload"},
			{want: "REVALIDATED", body: "payload"},
		}},
		{"must-revalidate: validated when stale, never served stale", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=2, must-revalidate", "Etag", `"v1"`}}, want: "MISS"},
			{want: "HIT"},
			{wait: 3 * time.Second, req: []string{"Cache-Control", "max-stale=100"}, reply: &rcReply{status: 304}, want: "REVALIDATED"},
		}},
		{"304 carrying Set-Cookie: sent to this client, not stored", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1", "Etag", `"v1"`}, body: "payload"}, want: "MISS"},
			{wait: 2 * time.Second, reply: &rcReply{status: 304, header: []string{"Cache-Control", "max-age=100", "Set-Cookie", "a=b"}}, want: "REVALIDATED", body: "payload", header: []string{"Set-Cookie", "a=b"}},
			{reply: &rcReply{status: 304, header: []string{"Cache-Control", "max-age=100"}}, want: "REVALIDATED", header: []string{"Set-Cookie", ""}},
		}},
		{"client's If-None-Match answered from the cache", rcDefaults(), []rcStep{
			{reply: rcFresh("Etag", `"v1"`), want: "MISS"},
			{req: []string{"If-None-Match", `W/"v0", W/"v1"`}, want: "HIT", status: 304, body: "-"},
			{req: []string{"If-None-Match", `"v2"`}, want: "HIT", status: 200},
			{req: []string{"If-Match", `"v2"`}, want: "HIT", status: 412},
		}},
		{"client's conditional miss: stored whole, client gets 304", rcDefaults(), []rcStep{
			{reply: rcFresh("Etag", `"v1"`), req: []string{"If-None-Match", `"v1"`}, want: "MISS", status: 304, sent: []string{"If-None-Match", ""}},
			{want: "HIT", status: 200, body: "body 1"},
		}},
		{"client's If-Modified-Since answered from the cache", rcDefaults(), []rcStep{
			{reply: rcFresh("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), want: "MISS"},
			{req: []string{"If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT"}, want: "HIT", status: 304},
			{req: []string{"If-Modified-Since", "Sun, 31 Dec 2023 00:00:00 GMT"}, want: "HIT", status: 200},
		}},
	})
}

// TestRFC9111RequestDirectives covers §5.2.1.
func TestRFC9111RequestDirectives(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"max-age", rcDefaults(), []rcStep{
			{reply: rcFresh(), want: "MISS"},
			{wait: 10 * time.Second, req: []string{"Cache-Control", "max-age=20"}, want: "HIT"},
			{req: []string{"Cache-Control", "max-age=5"}, want: "MISS"},
			{wait: time.Second, req: []string{"Cache-Control", "max-age=0"}, want: "MISS"},
		}},
		{"min-fresh", rcDefaults(), []rcStep{
			{reply: rcFresh(), want: "MISS"},
			{wait: 50 * time.Second, req: []string{"Cache-Control", "min-fresh=40"}, want: "HIT"},
			{req: []string{"Cache-Control", "min-fresh=60"}, want: "MISS"},
		}},
		{"max-stale", rcDefaults(), []rcStep{
			{reply: rcFresh(), want: "MISS"},
			{wait: 150 * time.Second, req: []string{"Cache-Control", "max-stale=100"}, want: "STALE"},
			{req: []string{"Cache-Control", "max-stale=10"}, want: "MISS"},
		}},
		{"no-cache revalidates", rcDefaults(), []rcStep{
			{reply: rcFresh("Etag", `"v1"`), want: "MISS"},
			{req: []string{"Cache-Control", "no-cache"}, reply: &rcReply{status: 304}, want: "REVALIDATED", sent: []string{"If-None-Match", `"v1"`}},
		}},
		{"only-if-cached", rcDefaults(), []rcStep{
			{req: []string{"Cache-Control", "only-if-cached"}, status: 504},
			{reply: rcFresh(), want: "MISS"},
			{req: []string{"Cache-Control", "only-if-cached"}, want: "HIT", status: 200},
		}},
	})
}

// TestRFC5861 covers stale-while-revalidate and stale-if-error, bounded by
// MaxStale.
func TestRFC5861(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"stale-while-revalidate: stale now, refreshed in the background", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1, stale-while-revalidate=60"}, body: "old"}, want: "MISS"},
			{wait: 10 * time.Second, reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=100"}, body: "new"}, want: "STALE", body: "old", nocheck: true},
			{want: "HIT", body: "new"},
		}},
		{"stale-while-revalidate window ends", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1, stale-while-revalidate=60"}}, want: "MISS"},
			{wait: 100 * time.Second, want: "MISS"},
		}},
		{"stale-while-revalidate bounded by MaxStale", localcache.ResponseOptions{MaxStale: 5 * time.Second}, []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1, stale-while-revalidate=60"}}, want: "MISS"},
			{wait: 10 * time.Second, want: "MISS"},
		}},
		{"stale-if-error serves stale on 5xx", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=1, stale-if-error=60"}, body: "good"}, want: "MISS"},
			{wait: 10 * time.Second, reply: &rcReply{status: 503, body: "down"}, want: "STALE", status: 200, body: "good", origin: true},
			{wait: 100 * time.Second, want: "MISS", status: 503, body: "down"},
		}},
	})
}

// TestRFC9213 covers CDN-Cache-Control and a configured targeted field.
func TestRFC9213(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"CDN-Cache-Control replaces Cache-Control", rcDefaults(), []rcStep{
			{path: "/a", reply: &rcReply{status: 200, header: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=100"}}, want: "MISS"},
			{path: "/a", want: "HIT", header: []string{"CDN-Cache-Control", "max-age=100"}},
			{path: "/b", reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=100", "CDN-Cache-Control", "no-store"}}, want: "MISS"},
			{path: "/b", want: "MISS"},
			{path: "/c", reply: &rcReply{status: 200, header: []string{"Expires", "@+100", "CDN-Cache-Control", "max-age=1"}}, want: "MISS"},
			{path: "/c", wait: 2 * time.Second, want: "MISS"},
		}},
		{"invalid targeted field falls back to Cache-Control", rcDefaults(), []rcStep{
			{reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=100", "CDN-Cache-Control", "max-age=1, Bad"}}, want: "MISS"},
			{wait: 2 * time.Second, want: "HIT"},
		}},
		{"a named targeted field; CDN-Cache-Control then ignored", localcache.ResponseOptions{TargetedField: "App-Cache-Control"}, []rcStep{
			{reply: &rcReply{status: 200, header: []string{"CDN-Cache-Control", "max-age=100", "App-Cache-Control", "max-age=10"}}, want: "MISS"},
			{wait: 11 * time.Second, want: "MISS"},
		}},
	})
}

// TestRFC9110Range covers serving single byte ranges from a stored
// complete response (RFC 9110 §14).
func TestRFC9110Range(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"ranges from a stored response", rcDefaults(), []rcStep{
			{req: []string{"Range", "bytes=0-1"}, reply: &rcReply{status: 200, header: []string{"Cache-Control", "max-age=100", "Etag", `"v1"`}, body: "0123456789"}, want: "MISS", status: 200, body: "0123456789"},
			{want: "MISS"},
			{req: []string{"Range", "bytes=0-1"}, want: "HIT", status: 206, body: "01", header: []string{"Content-Range", "bytes 0-1/10", "Content-Length", "2"}},
			{req: []string{"Range", "bytes=7-"}, want: "HIT", status: 206, body: "789"},
			{req: []string{"Range", "bytes=-2"}, want: "HIT", status: 206, body: "89"},
			{req: []string{"Range", "bytes=8-100"}, want: "HIT", status: 206, body: "89"},
			{req: []string{"Range", "bytes=20-"}, want: "HIT", status: 416, header: []string{"Content-Range", "bytes */10"}},
			{req: []string{"Range", "bytes=0-1,3-4"}, want: "HIT", status: 200, body: "0123456789"},
			{req: []string{"Range", "bytes=0-1", "If-Range", `"v1"`}, want: "HIT", status: 206},
			{req: []string{"Range", "bytes=0-1", "If-Range", `"v0"`}, want: "HIT", status: 200},
		}},
	})
}

// TestRFC9111Invalidation covers §4.4.
func TestRFC9111Invalidation(t *testing.T) {
	rcRunAll(t, []rcScenario{
		{"unsafe methods invalidate on success", rcDefaults(), []rcStep{
			{reply: rcFresh(), want: "MISS"},
			{method: "POST", reply: &rcReply{status: 500}, origin: true},
			{want: "HIT"},
			{method: "POST", reply: &rcReply{status: 200}, origin: true},
			{reply: rcFresh(), want: "MISS"},
			{path: "/other", want: "MISS"},
			{method: "PUT", reply: &rcReply{status: 201, header: []string{"Location", "/other"}}, origin: true},
			{path: "/other", reply: rcFresh(), want: "MISS"},
			{method: "OPTIONS", origin: true},
			{path: "/other", want: "HIT"},
		}},
	})
}
