package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	hashA  = bytes.Repeat([]byte("a"), 32)
	blockA = bytes.Repeat([]byte("A"), 32)
	hashB  = bytes.Repeat([]byte("b"), 32)
	blockB = bytes.Repeat([]byte("B"), 32)
)

// clock is a settable time source for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// client talks to one TLS test server through a cookie jar.
type client struct {
	t   *testing.T
	srv *httptest.Server
	hc  *http.Client
	// errs collects what ErrorFunc received.
	mu   sync.Mutex
	errs []error
}

// serve starts a TLS server running h behind m.LoadAndSave. If m has no
// ErrorFunc, one that records the error and replies 500 is installed.
func serve(t *testing.T, m *Manager, h http.HandlerFunc) *client {
	t.Helper()
	c := &client{t: t}
	if m.ErrorFunc == nil {
		m.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
			if !errors.Is(err, ErrHeadersWritten) {
				http.Error(w, "session error", http.StatusInternalServerError)
			}
		}
	}
	c.srv = httptest.NewTLSServer(m.LoadAndSave(h))
	t.Cleanup(c.srv.Close)
	c.hc = c.srv.Client()
	c.hc.Jar, _ = cookiejar.New(nil)
	return c
}

// get requests path and returns the response and its body.
func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	res, err := c.hc.Get(c.srv.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

func (c *client) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// jarCookies returns the jar's cookies for the server.
func (c *client) jarCookies() map[string]string {
	u, _ := url.Parse(c.srv.URL)
	out := map[string]string{}
	for _, k := range c.hc.Jar.Cookies(u) {
		out[k.Name] = k.Value
	}
	return out
}

func newManager(cl *clock, keys ...[]byte) *Manager {
	if len(keys) == 0 {
		keys = [][]byte{hashA, blockA}
	}
	m := New(keys...)
	if cl != nil {
		m.now = cl.Now
	}
	return m
}

// kv is a handler for /put?k=v, /get?k, /pop?k, /destroy, /renew, /id, /clear.
func kv(m *Manager) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		q := r.URL.Query()
		switch r.URL.Path {
		case "/put":
			for k, v := range q {
				m.Put(ctx, k, v[0])
			}
		case "/get":
			for k := range q {
				fmt.Fprint(w, m.GetString(ctx, k))
			}
		case "/pop":
			for k := range q {
				fmt.Fprint(w, m.PopString(ctx, k))
			}
		case "/keys":
			fmt.Fprint(w, strings.Join(m.Keys(ctx), ","))
		case "/clear":
			m.Clear(ctx)
		case "/destroy":
			m.Destroy(ctx)
		case "/renew":
			m.RenewToken(ctx)
			fmt.Fprint(w, m.ID(ctx))
		case "/id":
			fmt.Fprint(w, m.ID(ctx))
		}
	}
}

func TestNewPanics(t *testing.T) {
	k32 := bytes.Repeat([]byte("k"), 32)
	tests := []struct {
		name string
		keys [][]byte
	}{
		{"none", nil},
		{"odd", [][]byte{k32}},
		{"short hash", [][]byte{k32[:31], k32}},
		{"short block", [][]byte{k32, k32[:16]}},
		{"long block", [][]byte{k32, append(k32, 'x')}},
		{"bad old pair", [][]byte{k32, k32, k32[:8], k32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "session: ") {
					t.Errorf("got panic %q, want a session: panic", msg)
				}
			}()
			New(tt.keys...)
		})
	}
}

func TestLoadAndSavePanicsOnBadSetup(t *testing.T) {
	tests := []struct {
		name string
		set  func(m *Manager)
	}{
		{"__Host- not Secure", func(m *Manager) { m.Cookie.Name = "__Host-s"; m.Cookie.Secure = false }},
		{"__Host- with Domain", func(m *Manager) { m.Cookie.Name = "__Host-s"; m.Cookie.Domain = "example.com" }},
		{"__Host- with Path", func(m *Manager) { m.Cookie.Name = "__Host-s"; m.Cookie.Path = "/app" }},
		{"__Secure- not Secure", func(m *Manager) { m.Cookie.Name = "__Secure-s"; m.Cookie.Secure = false }},
		{"bad name", func(m *Manager) { m.Cookie.Name = "a b" }},
		{"empty name", func(m *Manager) { m.Cookie.Name = "" }},
		{"MaxChunks too big", func(m *Manager) { m.MaxChunks = MaxChunksLimit + 1 }},
		{"negative Lifetime", func(m *Manager) { m.Lifetime = -time.Second }},
		{"zero Manager", func(m *Manager) { *m = Manager{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(nil)
			tt.set(m)
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "session: ") {
					t.Errorf("got panic %q, want a session: panic", msg)
				}
			}()
			m.LoadAndSave(http.NotFoundHandler())
		})
	}
	// A valid __Host- setup does not panic.
	m := newManager(nil)
	m.Cookie.Name = "__Host-session"
	m.LoadAndSave(http.NotFoundHandler())
}

func TestPutGetAcrossRequests(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, kv(m))
	if _, body := c.get("/get?name"); body != "" {
		t.Fatalf("new session: got %q, want empty", body)
	}
	res, _ := c.get("/put?name=ada&lang=go")
	if res.StatusCode != 200 || len(res.Header["Set-Cookie"]) != 1 {
		t.Fatalf("put: status %d, Set-Cookie %q", res.StatusCode, res.Header["Set-Cookie"])
	}
	res, body := c.get("/get?name")
	if body != "ada" {
		t.Errorf("got %q, want %q", body, "ada")
	}
	if sc := res.Header["Set-Cookie"]; len(sc) != 0 {
		t.Errorf("read-only request sent Set-Cookie %q", sc)
	}
	if v := res.Header.Get("Vary"); v != "Cookie" {
		t.Errorf("Vary = %q, want Cookie", v)
	}
	if _, body := c.get("/keys"); body != "lang,name" {
		t.Errorf("keys = %q, want lang,name", body)
	}
	c.get("/clear")
	if _, body := c.get("/keys"); body != "" {
		t.Errorf("after Clear keys = %q, want none", body)
	}
}

func TestUntouchedRequestIsQuiet(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/put" {
			m.Put(r.Context(), "k", "v")
		}
		io.WriteString(w, "ok")
	})
	c.get("/put")
	res, body := c.get("/other")
	if body != "ok" || res.Header.Get("Set-Cookie") != "" || res.Header.Get("Vary") != "" || res.Header.Get("Cache-Control") != "" {
		t.Errorf("untouched request: body %q, headers %v; want ok and no session headers", body, res.Header)
	}
}

func TestNewSessionReadOnlySendsNoCookie(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, kv(m))
	res, _ := c.get("/get?x")
	if res.Header.Get("Set-Cookie") != "" {
		t.Errorf("reading a new session sent Set-Cookie %q", res.Header.Get("Set-Cookie"))
	}
}

func TestTypesRoundTrip(t *testing.T) {
	type profile struct {
		Name string
		Tags []string
	}
	when := time.Date(2025, 7, 1, 12, 30, 0, 123456789, time.FixedZone("X", 2*3600))
	vals := map[string]any{
		"string":  "héllo",
		"empty":   "",
		"bytes":   []byte{0, 1, 2, 255},
		"true":    true,
		"false":   false,
		"int":     -42,
		"int8":    int8(-8),
		"int16":   int16(-16),
		"int32":   int32(-32),
		"int64":   int64(1) << 60,
		"uint":    uint(7),
		"uint8":   uint8(8),
		"uint16":  uint16(16),
		"uint32":  uint32(32),
		"uint64":  uint64(1) << 63,
		"float32": float32(1.5),
		"float64": 3.25,
		"time":    when,
		"nil":     nil,
		"raw":     json.RawMessage(`{"a":1}`),
	}
	m := newManager(nil)
	var got map[string]any
	var prof profile
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/put" {
			for k, v := range vals {
				m.Put(ctx, k, v)
			}
			m.Put(ctx, "struct", profile{"ada", []string{"x"}})
			return
		}
		got = map[string]any{}
		for k := range vals {
			got[k] = m.Get(ctx, k)
		}
		if ok, err := m.GetJSON(ctx, "struct", &prof); !ok || err != nil {
			t.Errorf("GetJSON: %v, %v", ok, err)
		}
	})
	c.get("/put")
	c.get("/get")
	for k, want := range vals {
		if !reflect.DeepEqual(got[k], want) {
			if w, ok := want.(time.Time); ok && w.Equal(got[k].(time.Time)) {
				continue
			}
			t.Errorf("%s: got %#v (%T), want %#v (%T)", k, got[k], got[k], want, want)
		}
	}
	if gt := got["time"].(time.Time); !gt.Equal(when) {
		t.Errorf("time: got %v, want instant %v", gt, when)
	}
	if !reflect.DeepEqual(prof, profile{"ada", []string{"x"}}) {
		t.Errorf("struct: got %+v", prof)
	}
}

func TestTypedGetters(t *testing.T) {
	m := newManager(nil)
	now := time.Unix(1700000000, 5).UTC()
	var out []any
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/put" {
			m.Put(ctx, "s", "str")
			m.Put(ctx, "b", true)
			m.Put(ctx, "i", 7)
			m.Put(ctx, "i64", int64(8))
			m.Put(ctx, "f", 1.25)
			m.Put(ctx, "by", []byte("xy"))
			m.Put(ctx, "t", now)
			return
		}
		out = []any{
			m.GetString(ctx, "s"), m.GetBool(ctx, "b"), m.GetInt(ctx, "i"), m.GetInt64(ctx, "i64"),
			m.GetFloat(ctx, "f"), m.GetBytes(ctx, "by"), m.GetTime(ctx, "t"),
			m.GetInt(ctx, "s"), // wrong type: zero
			m.PopString(ctx, "s"), m.PopBool(ctx, "b"), m.PopInt(ctx, "i"), m.PopInt64(ctx, "i64"),
			m.PopFloat(ctx, "f"), m.PopBytes(ctx, "by"), m.PopTime(ctx, "t"),
			m.Exists(ctx, "s"), len(m.Keys(ctx)),
		}
	})
	c.get("/put")
	c.get("/read")
	want := []any{"str", true, 7, int64(8), 1.25, []byte("xy"), now, 0,
		"str", true, 7, int64(8), 1.25, []byte("xy"), now, false, 0}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %v, want %v", out, want)
	}
	// The Pops were saved: the next request sees an empty session.
	c.get("/read")
	if out[0] != "" || out[len(out)-1] != 0 {
		t.Errorf("after Pop: got %v", out)
	}
}

func TestFlash(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, kv(m))
	c.get("/put?flash=saved")
	if _, body := c.get("/pop?flash"); body != "saved" {
		t.Errorf("first pop: got %q, want saved", body)
	}
	if _, body := c.get("/pop?flash"); body != "" {
		t.Errorf("second pop: got %q, want empty", body)
	}
}

func TestCookieAttributes(t *testing.T) {
	cl := newClock()
	for _, persist := range []bool{true, false} {
		t.Run(fmt.Sprint("persist=", persist), func(t *testing.T) {
			m := newManager(cl)
			m.Cookie.Persist = persist
			m.Cookie.Domain = "example.com"
			h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				m.Put(r.Context(), "k", 1)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			sc := rec.Result().Header.Get("Set-Cookie")
			for _, want := range []string{"session=", "Path=/", "Domain=example.com", "HttpOnly", "Secure", "SameSite=Lax"} {
				if !strings.Contains(sc, want) {
					t.Errorf("Set-Cookie %q lacks %q", sc, want)
				}
			}
			hasExp := strings.Contains(sc, "Expires=") && strings.Contains(sc, "Max-Age=86400")
			if hasExp != persist {
				t.Errorf("Set-Cookie %q: Expires/Max-Age present = %v, want %v", sc, hasExp, persist)
			}
			if cc := rec.Result().Header.Get("Cache-Control"); cc != `no-cache="Set-Cookie"` {
				t.Errorf("Cache-Control = %q", cc)
			}
		})
	}
}

func TestDestroy(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, kv(m))
	c.get("/put?user=ada")
	res, _ := c.get("/destroy")
	sc := res.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("destroy: Set-Cookie %q, want an expired cookie", sc)
	}
	if len(c.jarCookies()) != 0 {
		t.Errorf("jar still has %v", c.jarCookies())
	}
	if _, body := c.get("/get?user"); body != "" {
		t.Errorf("after destroy got %q", body)
	}
}

func TestDestroyThenPutStartsNewSession(t *testing.T) {
	m := newManager(nil)
	var ids []string
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/login":
			m.Put(ctx, "user", "ada")
		case "/switch":
			m.Destroy(ctx)
			m.Put(ctx, "user", "bob")
		}
		ids = append(ids, m.ID(ctx))
		io.WriteString(w, m.GetString(ctx, "user"))
	})
	c.get("/login")
	c.get("/switch")
	if _, body := c.get("/"); body != "bob" {
		t.Errorf("got %q, want bob", body)
	}
	if ids[0] == ids[1] || ids[1] != ids[2] {
		t.Errorf("ids %q: want a new ID after Destroy, then kept", ids)
	}
}

func TestRenewToken(t *testing.T) {
	cl := newClock()
	m := newManager(cl)
	c := serve(t, m, kv(m))
	c.get("/put?user=ada")
	_, id1 := c.get("/id")
	cookie1 := c.jarCookies()["session"]
	cl.Add(time.Hour)
	res, id2 := c.get("/renew")
	if len(res.Header["Set-Cookie"]) != 1 {
		t.Fatalf("renew sent Set-Cookie %q", res.Header["Set-Cookie"])
	}
	_, id3 := c.get("/id")
	if id1 == "" || id1 == id2 || id2 != id3 || len(id1) != 22 {
		t.Errorf("ids %q %q %q: want a new 22-char ID after renew, then stable", id1, id2, id3)
	}
	if _, body := c.get("/get?user"); body != "ada" {
		t.Errorf("data after renew: %q", body)
	}
	if c.jarCookies()["session"] == cookie1 {
		t.Error("cookie not re-sealed")
	}
}

func TestKeyRotation(t *testing.T) {
	old := newManager(nil, hashA, blockA)
	c := serve(t, old, kv(old))
	c.get("/put?user=ada")
	oldCookie := c.jarCookies()["session"]

	// The same client now talks to instances that know the new key too.
	rotated := newManager(nil, hashB, blockB, hashA, blockA)
	c.srv.Config.Handler = rotated.LoadAndSave(kv(rotated))
	res, body := c.get("/get?user")
	if body != "ada" {
		t.Fatalf("rotated manager read %q, want ada", body)
	}
	if len(res.Header["Set-Cookie"]) != 1 || c.jarCookies()["session"] == oldCookie {
		t.Fatalf("old-key cookie was not re-sealed: %q", res.Header["Set-Cookie"])
	}
	res, _ = c.get("/get?user")
	if len(res.Header["Set-Cookie"]) != 0 {
		t.Errorf("new-key cookie re-sealed again: %q", res.Header["Set-Cookie"])
	}
	// Once the old key is retired, the re-sealed cookie still works...
	newOnly := newManager(nil, hashB, blockB)
	c.srv.Config.Handler = newOnly.LoadAndSave(kv(newOnly))
	if _, body := c.get("/get?user"); body != "ada" {
		t.Errorf("new-key-only manager read %q, want ada", body)
	}
	// ...and an old-key cookie does not.
	r := httptest.NewRequest("GET", "/get?user", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: oldCookie})
	rec := httptest.NewRecorder()
	newOnly.LoadAndSave(kv(newOnly)).ServeHTTP(rec, r)
	if rec.Body.String() != "" {
		t.Errorf("retired-key cookie read %q, want empty", rec.Body.String())
	}
}

func TestAbsoluteExpiry(t *testing.T) {
	cl := newClock()
	m := newManager(cl)
	m.Lifetime = time.Hour
	c := serve(t, m, kv(m))
	c.get("/put?user=ada")
	cl.Add(59 * time.Minute)
	// Writing does not extend the absolute lifetime.
	c.get("/put?more=1")
	if _, body := c.get("/get?user"); body != "ada" {
		t.Fatalf("before deadline got %q", body)
	}
	cl.Add(time.Minute)
	if _, body := c.get("/get?user"); body != "" {
		t.Errorf("after deadline got %q, want empty", body)
	}
}

func TestIdleTimeout(t *testing.T) {
	cl := newClock()
	m := newManager(cl)
	m.IdleTimeout = 10 * time.Minute
	c := serve(t, m, kv(m))
	c.get("/put?user=ada")

	cl.Add(30 * time.Second)
	if res, _ := c.get("/get?user"); res.Header.Get("Set-Cookie") != "" {
		t.Error("idle refresh sooner than a minute after the last one")
	}
	cl.Add(8 * time.Minute)
	res, body := c.get("/get?user")
	if body != "ada" || res.Header.Get("Set-Cookie") == "" {
		t.Fatalf("read after 8.5 min: body %q, Set-Cookie %q; want ada and a refresh", body, res.Header.Get("Set-Cookie"))
	}
	cl.Add(9 * time.Minute) // 17.5 min after creation, 9 after the refresh
	if _, body := c.get("/get?user"); body != "ada" {
		t.Fatalf("read 9 min after refresh: got %q", body)
	}
	// That read refreshed again; now stay away for the whole timeout.
	cl.Add(10 * time.Minute)
	if _, body := c.get("/get?user"); body != "" {
		t.Errorf("after idle timeout got %q, want empty", body)
	}
}

// The server decides expiry from the sealed data, whatever the cookie's
// Max-Age said.
func TestExpiryIgnoresClientMaxAge(t *testing.T) {
	cl := newClock()
	m := newManager(cl)
	m.Lifetime = time.Hour
	h := m.LoadAndSave(kv(m))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/put?user=ada", nil))
	cookie := rec.Result().Cookies()[0]
	cl.Add(2 * time.Hour)
	r := httptest.NewRequest("GET", "/get?user", nil)
	r.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Body.String() != "" {
		t.Errorf("expired cookie replayed: got %q", rec.Body.String())
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)[:n]
}

func TestOversizeWithoutChunks(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if v := r.URL.Query().Get("v"); v != "" {
			m.Put(ctx, "big", v)
		}
		w.Header().Set("Content-Length", "7")
		io.WriteString(w, "handler")
	})
	c.get("/?v=small")
	before := c.jarCookies()["session"]
	res, body := c.get("/?v=" + randomString(4000))
	if res.StatusCode != 500 || strings.Contains(body, "handler") {
		t.Errorf("oversize: status %d body %q, want 500 without the handler's body", res.StatusCode, body)
	}
	if sc := res.Header["Set-Cookie"]; len(sc) != 0 {
		t.Errorf("oversize sent Set-Cookie %q", sc)
	}
	if errs := c.errors(); len(errs) != 1 || !errors.Is(errs[0], ErrTooLarge) {
		t.Errorf("ErrorFunc got %v, want ErrTooLarge", errs)
	}
	if after := c.jarCookies()["session"]; after != before {
		t.Error("previous cookie was changed")
	}
}

// The limit is on the whole Set-Cookie header: a value that fits alone but
// not with its attributes is too large.
func TestOversizeCountsAttributes(t *testing.T) {
	m := newManager(nil)
	var errs []error
	m.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) { errs = append(errs, err) }
	var n int
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "v", strings.Repeat("x", n))
	}))
	// Find the largest n that fits, then check the header size at n and n+1.
	lo, hi := 0, 4096
	for lo < hi {
		n = (lo + hi + 1) / 2
		errs = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if len(errs) == 0 {
			lo = n
		} else {
			hi = n - 1
		}
	}
	n = lo
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	line := "Set-Cookie: " + rec.Result().Header.Get("Set-Cookie")
	if len(line) > 4096 || len(line) < 4096-8 {
		t.Errorf("largest session's header is %d bytes, want just under 4096", len(line))
	}
}

func TestChunks(t *testing.T) {
	m := newManager(nil)
	m.MaxChunks = 4
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/put":
			m.Put(ctx, "big", r.URL.Query().Get("v"))
		case "/destroy":
			m.Destroy(ctx)
		}
		io.WriteString(w, m.GetString(ctx, "big"))
	})
	big := randomString(6000)
	res, _ := c.get("/put?v=" + big)
	if n := len(res.Header["Set-Cookie"]); n < 2 || n > 4 {
		t.Fatalf("got %d Set-Cookie headers, want 2..4", n)
	}
	for _, sc := range res.Header["Set-Cookie"] {
		if l := len("Set-Cookie: ") + len(sc); l > 4096 {
			t.Errorf("Set-Cookie header is %d bytes", l)
		}
	}
	if _, body := c.get("/"); body != big {
		t.Fatalf("chunked read back %d bytes, want %d", len(body), len(big))
	}
	if got := len(c.jarCookies()); got < 2 {
		t.Fatalf("jar has %d cookies", got)
	}

	// Shrinking expires the stale chunks.
	c.get("/put?v=small")
	if jar := c.jarCookies(); len(jar) != 1 {
		t.Errorf("after shrink jar has %d cookies, want 1", len(jar))
	}
	if _, body := c.get("/"); body != "small" {
		t.Errorf("after shrink got %q", body)
	}

	// Destroy expires every chunk.
	c.get("/put?v=" + big)
	res, _ = c.get("/destroy")
	if jar := c.jarCookies(); len(jar) != 0 {
		t.Errorf("after destroy jar has %v (Set-Cookie %q)", jar, res.Header["Set-Cookie"])
	}

	// Beyond MaxChunks it is ErrTooLarge.
	res, _ = c.get("/put?v=" + randomString(20000))
	if res.StatusCode != 500 || len(c.errors()) != 1 || !errors.Is(c.errors()[0], ErrTooLarge) {
		t.Errorf("too many chunks: status %d, errors %v", res.StatusCode, c.errors())
	}
}

func TestChunkTampering(t *testing.T) {
	m := newManager(nil)
	m.MaxChunks = 3
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("v"); v != "" {
			m.Put(r.Context(), "big", v)
		}
		io.WriteString(w, m.GetString(r.Context(), "big"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?v="+randomString(3000), nil))
	cookies := rec.Result().Cookies()
	if len(cookies) != 2 {
		t.Fatalf("got %d cookies, want 2", len(cookies))
	}
	send := func(cs ...*http.Cookie) string {
		r := httptest.NewRequest("GET", "/", nil)
		for _, c := range cs {
			r.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Body.String()
	}
	if send(cookies...) == "" {
		t.Fatal("untampered chunks rejected")
	}
	if got := send(cookies[0]); got != "" {
		t.Errorf("missing chunk accepted: %d bytes", len(got))
	}
	swapped := []*http.Cookie{{Name: "session", Value: cookies[0].Value}, {Name: "session.1", Value: cookies[1].Value[1:]}}
	if got := send(swapped...); got != "" {
		t.Errorf("truncated chunk accepted")
	}
}

func TestHeadersWritten(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body first")
		m.Put(r.Context(), "late", 1)
	})
	res, body := c.get("/")
	if res.StatusCode != 200 || body != "body first" {
		t.Errorf("got %d %q", res.StatusCode, body)
	}
	if errs := c.errors(); len(errs) != 1 || !errors.Is(errs[0], ErrHeadersWritten) {
		t.Errorf("ErrorFunc got %v, want ErrHeadersWritten", errs)
	}
}

func TestUnencodableValue(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "ch", make(chan int))
	})
	res, _ := c.get("/")
	if res.StatusCode != 500 || len(c.errors()) != 1 {
		t.Errorf("status %d errors %v, want 500 and one error", res.StatusCode, c.errors())
	}
}

func TestDefaultErrorFunc(t *testing.T) {
	m := newManager(nil)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "v", randomString(5000))
		io.WriteString(w, "handler body")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || rec.Body.String() != "Internal Server Error\n" {
		t.Errorf("got %d %q, want 500 Internal Server Error", rec.Code, rec.Body.String())
	}
}

func TestValidate(t *testing.T) {
	cl := newClock()
	m := newManager(cl)
	var revokedBefore time.Time
	var seen *Values
	m.Validate = func(ctx context.Context, v *Values) bool {
		seen = v
		return v.Issued().After(revokedBefore)
	}
	c := serve(t, m, kv(m))
	c.get("/put?user=ada")
	if _, body := c.get("/get?user"); body != "ada" {
		t.Fatalf("got %q", body)
	}
	if seen == nil || seen.Get("user") != "ada" || len(seen.ID()) != 22 || !seen.Deadline().Equal(cl.Now().Add(24*time.Hour)) {
		t.Errorf("Validate saw %+v", seen)
	}
	cl.Add(time.Minute)
	revokedBefore = cl.Now() // log out everywhere
	cl.Add(time.Minute)
	if _, body := c.get("/get?user"); body != "" {
		t.Errorf("revoked session still read %q", body)
	}
	c.get("/put?user=ada") // log in again
	if _, body := c.get("/get?user"); body != "ada" {
		t.Errorf("new session after revocation read %q", body)
	}
}

// A cookie sealed under one name is not accepted under another: the name is
// bound into the MAC.
func TestCookieNameBound(t *testing.T) {
	m := newManager(nil)
	rec := httptest.NewRecorder()
	m.LoadAndSave(kv(m)).ServeHTTP(rec, httptest.NewRequest("GET", "/put?user=ada", nil))
	value := rec.Result().Cookies()[0].Value
	other := newManager(nil)
	other.Cookie.Name = "other"
	r := httptest.NewRequest("GET", "/get?user", nil)
	r.AddCookie(&http.Cookie{Name: "other", Value: value})
	rec = httptest.NewRecorder()
	other.LoadAndSave(kv(other)).ServeHTTP(rec, r)
	if rec.Body.String() != "" {
		t.Errorf("cookie accepted under another name: %q", rec.Body.String())
	}
}

// Every single-byte change and every truncation of a real cookie gives an
// empty session and a 200, never a 500 or a partial session.
func TestTamperEveryByte(t *testing.T) {
	m := newManager(nil)
	h := m.LoadAndSave(kv(m))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/put?user=ada&role=admin", nil))
	value := rec.Result().Cookies()[0].Value

	try := func(v string) (int, string) {
		r := httptest.NewRequest("GET", "/get?user&role", nil)
		r.Header.Set("Cookie", "session="+v)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code, rec.Body.String()
	}
	if code, body := try(value); code != 200 || body != "adaadmin" && body != "adminada" {
		t.Fatalf("untampered cookie: %d %q", code, body)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
	for i := range len(value) {
		for _, repl := range []byte{alphabet[(strings.IndexByte(alphabet, value[i])+1)%len(alphabet)], '.', '!'} {
			v := value[:i] + string(repl) + value[i+1:]
			if code, body := try(v); code != 200 || body != "" {
				t.Errorf("byte %d -> %q: %d %q, want 200 and an empty session", i, repl, code, body)
			}
		}
		if code, body := try(value[:i]); code != 200 || body != "" {
			t.Errorf("truncated to %d: %d %q", i, code, body)
		}
	}
	for _, garbage := range []string{"", "=", "\"\"", "2.", "16.abc", "99999999999999999999.x", strings.Repeat("A", 100000)} {
		if code, body := try(garbage); code != 200 || body != "" {
			t.Errorf("garbage %.20q: %d %q", garbage, code, body)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	m := newManager(nil)
	c := serve(t, m, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				key := fmt.Sprint("k", i)
				m.Put(ctx, key, i)
				_ = m.GetInt(ctx, key)
				_ = m.Keys(ctx)
			})
		}
		wg.Wait()
		fmt.Fprint(w, len(m.Keys(ctx)))
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			// A client per goroutine: its own jar and session.
			hc := *c.srv.Client()
			hc.Jar, _ = cookiejar.New(nil)
			for range 5 {
				res, err := hc.Get(c.srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(body) != "4" {
					t.Errorf("got %q, want 4", body)
				}
			}
		})
	}
	wg.Wait()
}

func TestNoMiddlewarePanics(t *testing.T) {
	m := newManager(nil)
	defer func() {
		msg, _ := recover().(string)
		if !strings.HasPrefix(msg, "session: ") {
			t.Errorf("got panic %q", msg)
		}
	}()
	m.GetString(context.Background(), "k")
}

// A handler that derives its own context still reaches the session, and two
// Managers with different cookie names can be stacked.
func TestDerivedContextAndTwoManagers(t *testing.T) {
	a, b := newManager(nil), newManager(nil)
	b.Cookie.Name = "prefs"
	c := serve(t, a, nil)
	c.srv.Config.Handler = a.LoadAndSave(b.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		if r.URL.Path == "/put" {
			a.Put(ctx, "k", "A")
			b.Put(ctx, "k", "B")
		}
		io.WriteString(w, a.GetString(ctx, "k")+b.GetString(ctx, "k"))
	})))
	c.get("/put")
	if _, body := c.get("/"); body != "AB" {
		t.Errorf("got %q, want AB", body)
	}
	if jar := c.jarCookies(); len(jar) != 2 {
		t.Errorf("jar %v, want two cookies", jar)
	}
}

// Printing a request's context must not print session values.
func TestContextStringHidesValues(t *testing.T) {
	m := newManager(nil)
	var printed string
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "secret", "hunter2")
		printed = fmt.Sprintf("%v %+v", r.Context(), r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if strings.Contains(printed, "hunter2") || !strings.Contains(printed, "WithSession") {
		t.Errorf("context prints as %q", printed)
	}
}
