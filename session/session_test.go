package session

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

func TestNewPanics(t *testing.T) {
	k32 := keyA
	tests := []struct {
		name string
		f    func()
	}{
		{"nil key", func() { New(nil) }},
		{"short key", func() { New(k32[:31]) }},
		{"short previous key", func() { New(k32, k32[:8]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustPanic(t, tt.f) })
	}
}

// Different keys, and the same key under New twice, behave as expected:
// keys are derived, not used raw, and derivation is deterministic.
func TestKeyDerivation(t *testing.T) {
	a1, a2, b := New(keyA), New(keyA), New(keyB)
	put := serveOnce(a1.LoadAndSave(kv(a1)), "/put?user=ada", "")
	hdr := cookieHeader(put.Result())
	if got := serveOnce(a2.LoadAndSave(kv(a2)), "/get?user", hdr).Body.String(); got != "ada" {
		t.Errorf("same key, new Manager: got %q, want ada", got)
	}
	if got := serveOnce(b.LoadAndSave(kv(b)), "/get?user", hdr).Body.String(); got != "" {
		t.Errorf("other key: got %q, want empty", got)
	}
}

func TestLoadAndSavePanicsOnBadSetup(t *testing.T) {
	tests := []struct {
		name string
		set  func(m *Manager)
	}{
		{"__Host- insecure", func(m *Manager) { m.Cookie.Name = "__Host-s"; m.Cookie.Insecure = true }},
		{"__Host- with Domain", func(m *Manager) { m.Cookie.Name = "__Host-s"; m.Cookie.Domain = "example.com" }},
		{"lowercase __host- with Domain", func(m *Manager) { m.Cookie.Name = "__host-s"; m.Cookie.Domain = "example.com" }},
		{"__Host- with Path", func(m *Manager) { m.Cookie.Name = "__Host-s"; m.Cookie.Path = "/app" }},
		{"__Secure- insecure", func(m *Manager) { m.Cookie.Name = "__Secure-s"; m.Cookie.Insecure = true }},
		{"SameSite=None insecure", func(m *Manager) { m.Cookie.SameSite = http.SameSiteNoneMode; m.Cookie.Insecure = true }},
		{"Partitioned insecure", func(m *Manager) { m.Cookie.Partitioned = true; m.Cookie.Insecure = true }},
		{"bad name", func(m *Manager) { m.Cookie.Name = "a b" }},
		{"MaxChunks too big", func(m *Manager) { m.MaxChunks = MaxChunksLimit + 1 }},
		{"negative Lifetime", func(m *Manager) { m.Lifetime = -time.Second }},
		{"negative IdleTimeout", func(m *Manager) { m.IdleTimeout = -time.Second }},
		{"zero Manager", func(m *Manager) { *m = Manager{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(keyA)
			tt.set(m)
			mustPanic(t, func() { m.LoadAndSave(http.NotFoundHandler()) })
		})
	}
	// Valid setups do not panic; an empty name means "session".
	for _, c := range []sharednothing.Cookie{
		{Name: "__Host-session"},
		{Name: ""},
		{SameSite: http.SameSiteNoneMode, Partitioned: true},
	} {
		m := New(keyA)
		m.Cookie = c
		m.LoadAndSave(http.NotFoundHandler())
	}
}

// Issue 14: settings changed after LoadAndSave (chi calls it at the first
// route) are honoured on the next request, and invalid ones fail every
// request loudly instead of being ignored.
func TestSettingsReadPerRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		c := serve(t, m, kv(m)) // LoadAndSave has run
		m.Lifetime = time.Hour
		m.Cookie.Name = "sid"
		m.Cookie.Persist = false
		m.IdleTimeout = 10 * time.Minute
		res, _ := c.get("/put?user=ada")
		sc := res.Header.Get("Set-Cookie")
		if !strings.HasPrefix(sc, "sid=") || strings.Contains(sc, "Max-Age") {
			t.Fatalf("Set-Cookie %q: want name sid without Max-Age", sc)
		}
		if _, body := c.get("/deadline"); body != fmt.Sprint(time.Now().Add(time.Hour).UnixNano()) {
			t.Errorf("deadline %s, want now+1h", body)
		}
		time.Sleep(11 * time.Minute)
		if _, body := c.get("/get?user"); body != "" {
			t.Errorf("IdleTimeout set after mount not enforced: got %q", body)
		}

		m.Cookie.Name = "__Host-sid"
		m.Cookie.Domain = "example.com"
		res, _ = c.get("/get?user")
		if res.StatusCode != 500 || len(c.errors()) != 1 || !strings.Contains(c.errors()[0].Error(), "__Host-") {
			t.Errorf("invalid change: status %d errors %v, want 500 and the cookie error", res.StatusCode, c.errors())
		}
	})
}

func TestPutGetAcrossRequests(t *testing.T) {
	m := New(keyA)
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
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/put" {
			m.Put(r.Context(), "k", "v")
		}
		io.WriteString(w, "ok")
	}))
	c.get("/put")
	res, body := c.get("/other")
	if body != "ok" || res.Header.Get("Set-Cookie") != "" || res.Header.Get("Vary") != "" || res.Header.Get("Cache-Control") != "" {
		t.Errorf("untouched request: body %q, headers %v; want ok and no session headers", body, res.Header)
	}
}

func TestNewSessionReadOnlySendsNoCookie(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, kv(m))
	res, _ := c.get("/get?x")
	if res.Header.Get("Set-Cookie") != "" {
		t.Errorf("reading a new session sent Set-Cookie %q", res.Header.Get("Set-Cookie"))
	}
}

type profile struct {
	Name string
	Tags []string
}

// Get returns the same type in the request that put the value and in later
// ones: the native types as put, anything else as json.RawMessage.
func TestGetTypes(t *testing.T) {
	when := time.Date(2025, 7, 1, 12, 30, 0, 123456789, time.FixedZone("X", 2*3600))
	vals := map[string]any{
		"string": "héllo", "empty": "", "bytes": []byte{0, 1, 2, 255}, "true": true, "false": false,
		"int": -42, "int8": int8(-8), "int16": int16(-16), "int32": int32(-32), "int64": int64(1) << 60,
		"uint": uint(7), "uint8": uint8(8), "uint16": uint16(16), "uint32": uint32(32), "uint64": uint64(1) << 63,
		"float32": float32(1.5), "float64": 3.25, "time": when, "nil": nil, "raw": json.RawMessage(`{"a":1}`),
		"struct": profile{"ada", []string{"x"}}, "map": map[string]int{"a": 1}, "slice": []string{"a"},
	}
	want := func(k string) any {
		switch k {
		case "struct":
			return json.RawMessage(`{"Name":"ada","Tags":["x"]}`)
		case "map":
			return json.RawMessage(`{"a":1}`)
		case "slice":
			return json.RawMessage(`["a"]`)
		}
		return vals[k]
	}
	check := func(t *testing.T, phase string, get func(string) any) {
		t.Helper()
		for k := range vals {
			got, w := get(k), want(k)
			if wt, ok := w.(time.Time); ok {
				if gt, ok := got.(time.Time); !ok || !gt.Equal(wt) {
					t.Errorf("%s %s: got %#v, want instant %v", phase, k, got, wt)
				}
				continue
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s %s: got %#v (%T), want %#v (%T)", phase, k, got, got, w, w)
			}
		}
	}
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/put" {
			for k, v := range vals {
				m.Put(ctx, k, v)
			}
			check(t, "same request", func(k string) any { return m.Get(ctx, k) })
			return
		}
		check(t, "next request", func(k string) any { return m.Get(ctx, k) })
	}))
	c.get("/put")
	c.get("/get")
}

func TestGetAs(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/put" {
			m.Put(ctx, "user", profile{"ada", []string{"x"}})
			m.Put(ctx, "n", 7)
		}
		p, err := GetAs[profile](m, ctx, "user")
		if err != nil || !reflect.DeepEqual(p, profile{"ada", []string{"x"}}) {
			t.Errorf("%s: GetAs[profile] = %+v, %v", r.URL.Path, p, err)
		}
		if n, err := GetAs[int](m, ctx, "n"); n != 7 || err != nil {
			t.Errorf("GetAs[int] = %v, %v", n, err)
		}
		if _, err := GetAs[int64](m, ctx, "n"); err == nil || !strings.Contains(err.Error(), "is a int, not a int64") {
			t.Errorf("GetAs[int64] of an int: err %v, want a type error", err)
		}
		if _, err := GetAs[string](m, ctx, "user"); err == nil {
			t.Error("GetAs[string] of a struct: no error")
		}
		if _, err := GetAs[profile](m, ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing key: err %v, want ErrNotFound", err)
		}
		if v, err := GetAs[any](m, ctx, "n"); v != 7 || err != nil {
			t.Errorf("GetAs[any] = %v, %v", v, err)
		}
	}))
	c.get("/put")
	c.get("/get")
}

func TestTypedGetters(t *testing.T) {
	m := New(keyA)
	now := time.Unix(1700000000, 5).UTC()
	var out []any
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/put" {
			m.Put(ctx, "s", "str")
			m.Put(ctx, "b", true)
			m.Put(ctx, "i", 7)
			m.Put(ctx, "i32", int32(6))
			m.Put(ctx, "i64", int64(8))
			m.Put(ctx, "f", 1.25)
			m.Put(ctx, "by", []byte("xy"))
			m.Put(ctx, "t", now)
			return
		}
		out = []any{
			m.GetString(ctx, "s"), m.GetBool(ctx, "b"), m.GetInt(ctx, "i"), m.GetInt32(ctx, "i32"), m.GetInt64(ctx, "i64"),
			m.GetFloat(ctx, "f"), m.GetBytes(ctx, "by"), m.GetTime(ctx, "t"),
			m.GetInt(ctx, "s"), // wrong type: zero
			m.PopString(ctx, "s"), m.PopBool(ctx, "b"), m.PopInt(ctx, "i"), m.PopInt32(ctx, "i32"), m.PopInt64(ctx, "i64"),
			m.PopFloat(ctx, "f"), m.PopBytes(ctx, "by"), m.PopTime(ctx, "t"),
			m.Exists(ctx, "s"), len(m.Keys(ctx)),
		}
	}))
	c.get("/put")
	c.get("/read")
	want := []any{"str", true, 7, int32(6), int64(8), 1.25, []byte("xy"), now, 0,
		"str", true, 7, int32(6), int64(8), 1.25, []byte("xy"), now, false, 0}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %v, want %v", out, want)
	}
	// The Pops were saved: the next request sees an empty session.
	c.get("/read")
	if out[0] != "" || out[len(out)-1] != 0 {
		t.Errorf("after Pop: got %v", out)
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, persist := range []bool{true, false} {
		t.Run(fmt.Sprint("persist=", persist), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := New(keyA)
				m.Cookie.Persist = persist
				m.Cookie.Domain = "example.com"
				h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					m.Put(r.Context(), "k", 1)
				}))
				rec := serveOnce(h, "/", "")
				sc := rec.Result().Header.Get("Set-Cookie")
				for _, want := range []string{"session=", "Path=/", "Domain=example.com", "HttpOnly", "Secure", "SameSite=Lax"} {
					if !strings.Contains(sc, want) {
						t.Errorf("Set-Cookie %q lacks %q", sc, want)
					}
				}
				hasExp := strings.Contains(sc, "Expires=Sun, 02 Jan 2000 00:00:00 GMT") && strings.Contains(sc, "Max-Age=86400")
				if hasExp != persist {
					t.Errorf("Set-Cookie %q: Expires/Max-Age present = %v, want %v", sc, hasExp, persist)
				}
				if cc := rec.Result().Header.Get("Cache-Control"); cc != `no-cache="Set-Cookie"` {
					t.Errorf("Cache-Control = %q", cc)
				}
			})
		})
	}
	// Insecure leaves Secure off (local development only).
	m := New(keyA)
	m.Cookie.Insecure = true
	rec := serveOnce(m.LoadAndSave(kv(m)), "/put?k=v", "")
	if sc := rec.Result().Header.Get("Set-Cookie"); strings.Contains(sc, "Secure") || !strings.Contains(sc, "HttpOnly") {
		t.Errorf("Insecure: Set-Cookie %q", sc)
	}
}

func TestDestroy(t *testing.T) {
	m := New(keyA)
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
	m := New(keyA)
	var tokens []string
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/login":
			m.Put(ctx, "user", "ada")
		case "/switch":
			m.Destroy(ctx)
			m.Put(ctx, "user", "bob")
		}
		io.WriteString(w, m.GetString(ctx, "user"))
	}))
	record := func(path string) string {
		_, body := c.get(path)
		tokens = append(tokens, c.jarCookies()["session"])
		return body
	}
	record("/login")
	if body := record("/switch"); body != "bob" {
		t.Errorf("got %q, want bob", body)
	}
	if tokens[0] == tokens[1] || tokens[1] == "" {
		t.Errorf("cookie not replaced after Destroy+Put")
	}
}

// Issue 14: RenewToken gives a new token, issue time and deadline (scs
// moves the deadline).
func TestRenewToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		c := serve(t, m, kv(m))
		c.get("/put?user=ada")
		_, tok1 := c.get("/token")
		_, dl1 := c.get("/deadline")
		cookie1 := c.jarCookies()["session"]
		time.Sleep(time.Hour)
		res, _ := c.get("/renew")
		if len(res.Header["Set-Cookie"]) != 1 {
			t.Fatalf("renew sent Set-Cookie %q", res.Header["Set-Cookie"])
		}
		_, tok2 := c.get("/token")
		_, tok3 := c.get("/token")
		if tok1 == "" || tok1 == tok2 || tok2 != tok3 || len(tok1) != 22 {
			t.Errorf("tokens %q %q %q: want a new 22-char token after renew, then stable", tok1, tok2, tok3)
		}
		_, dl2 := c.get("/deadline")
		if want := fmt.Sprint(time.Now().Add(24 * time.Hour).UnixNano()); dl2 != want || dl1 == dl2 {
			t.Errorf("deadline after renew %s (before %s), want now+24h %s", dl2, dl1, want)
		}
		if _, body := c.get("/get?user"); body != "ada" {
			t.Errorf("data after renew: %q", body)
		}
		if c.jarCookies()["session"] == cookie1 {
			t.Error("cookie not re-sealed")
		}
	})
}

func TestKeyRotation(t *testing.T) {
	old := New(keyA)
	c := serve(t, old, kv(old))
	c.get("/put?user=ada")
	oldCookie := c.jarCookies()["session"]

	// The same client now talks to instances that know the new key too.
	rotated := New(keyB, keyA)
	c.srv.Config.Handler = rotated.LoadAndSave(kv(rotated))
	res, body := c.get("/get?user")
	if body != "ada" {
		t.Fatalf("rotated manager read %q, want ada", body)
	}
	if len(res.Header["Set-Cookie"]) != 1 || c.jarCookies()["session"] == oldCookie {
		t.Fatalf("old-key cookie was not re-sealed: %q", res.Header["Set-Cookie"])
	}
	if s := rotated.Stats(); s.Resealed != 1 || s.Saved != 1 {
		t.Errorf("stats %+v, want 1 resealed and saved", s)
	}
	res, _ = c.get("/get?user")
	if len(res.Header["Set-Cookie"]) != 0 {
		t.Errorf("new-key cookie re-sealed again: %q", res.Header["Set-Cookie"])
	}
	// Once the old key is retired, the re-sealed cookie still works...
	newOnly := New(keyB)
	c.srv.Config.Handler = newOnly.LoadAndSave(kv(newOnly))
	if _, body := c.get("/get?user"); body != "ada" {
		t.Errorf("new-key-only manager read %q, want ada", body)
	}
	// ...and an old-key cookie does not.
	if got := serveOnce(newOnly.LoadAndSave(kv(newOnly)), "/get?user", "session="+oldCookie).Body.String(); got != "" {
		t.Errorf("retired-key cookie read %q, want empty", got)
	}
}

func TestAbsoluteExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.Lifetime = time.Hour
		c := serve(t, m, kv(m))
		c.get("/put?user=ada")
		time.Sleep(59 * time.Minute)
		// Writing does not extend the absolute lifetime.
		c.get("/put?more=1")
		if _, body := c.get("/get?user"); body != "ada" {
			t.Fatalf("before deadline got %q", body)
		}
		time.Sleep(time.Minute)
		if _, body := c.get("/get?user"); body != "" {
			t.Errorf("after deadline got %q, want empty", body)
		}
		if s := m.Stats(); s.Rejected.Expired != 0 {
			// The jar dropped the cookie itself (Max-Age); replay it.
			t.Logf("stats %+v", s)
		}
	})
}

// Issue 14: deadlines keep sub-second precision: a 2 s session lives 2 s
// whatever fraction of a second it starts at.
func TestSubSecondDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.Lifetime = 2 * time.Second
		h := m.LoadAndSave(kv(m))
		time.Sleep(680 * time.Millisecond)
		hdr := cookieHeader(serveOnce(h, "/put?user=ada", "").Result())
		time.Sleep(2*time.Second - time.Millisecond)
		if got := serveOnce(h, "/get?user", hdr).Body.String(); got != "ada" {
			t.Errorf("1.999 s into a 2 s session: got %q, want ada", got)
		}
		time.Sleep(time.Millisecond)
		if got := serveOnce(h, "/get?user", hdr).Body.String(); got != "" {
			t.Errorf("2 s into a 2 s session: got %q, want empty", got)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.IdleTimeout = 20 * time.Minute // activity written back at most once a minute
		c := serve(t, m, kv(m))
		c.get("/put?user=ada")

		time.Sleep(30 * time.Second)
		if res, _ := c.get("/get?user"); res.Header.Get("Set-Cookie") != "" {
			t.Error("activity written back sooner than a minute after the last write")
		}
		time.Sleep(18 * time.Minute)
		res, body := c.get("/get?user")
		if body != "ada" || res.Header.Get("Set-Cookie") == "" {
			t.Fatalf("read after 18.5 min: body %q, Set-Cookie %q; want ada and a refresh", body, res.Header.Get("Set-Cookie"))
		}
		time.Sleep(19 * time.Minute) // 37.5 min after creation, 19 after the refresh
		if _, body := c.get("/get?user"); body != "ada" {
			t.Fatalf("read 19 min after refresh: got %q", body)
		}
		// That read refreshed again; now stay away for the whole timeout.
		time.Sleep(20 * time.Minute)
		if _, body := c.get("/get?user"); body != "" {
			t.Errorf("after idle timeout got %q, want empty", body)
		}
	})
}

// Issue 14: with an idle timeout of a minute or less, reads must still keep
// the session alive (the write-back throttle was a fixed minute).
func TestShortIdleTimeoutExtendsOnReads(t *testing.T) {
	tests := []struct {
		idle, every, total time.Duration
	}{
		{30 * time.Second, 20 * time.Second, 5 * time.Minute},
		{3 * time.Second, 700 * time.Millisecond, 7 * time.Second},
		{60 * time.Second, 50 * time.Second, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.idle, "/", tt.every), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := New(keyA)
				m.IdleTimeout = tt.idle
				c := serve(t, m, kv(m))
				c.get("/put?user=ada")
				for elapsed := time.Duration(0); elapsed < tt.total; elapsed += tt.every {
					time.Sleep(tt.every)
					if _, body := c.get("/get?user"); body != "ada" {
						t.Fatalf("logged out after %v of reads every %v", elapsed+tt.every, tt.every)
					}
				}
			})
		})
	}
}

// The server decides expiry from the sealed data, whatever the cookie's
// Max-Age said.
func TestExpiryIgnoresClientMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.Lifetime = time.Hour
		m.IdleTimeout = 10 * time.Minute
		h := m.LoadAndSave(kv(m))
		hdr := cookieHeader(serveOnce(h, "/put?user=ada", "").Result())
		time.Sleep(10 * time.Minute)
		if got := serveOnce(h, "/get?user", hdr).Body.String(); got != "" {
			t.Errorf("idle cookie replayed: got %q", got)
		}
		time.Sleep(2 * time.Hour)
		if got := serveOnce(h, "/get?user", hdr).Body.String(); got != "" {
			t.Errorf("expired cookie replayed: got %q", got)
		}
		if s := m.Stats(); s.Rejected.Idle != 1 || s.Rejected.Expired != 1 {
			t.Errorf("stats %+v, want one idle and one expired rejection", s.Rejected)
		}
	})
}

// Issue 14: a stray "session.N" cookie sent before the session cookie (a
// chunk cookie with a longer Path, which the browser sends first) must not
// hide the session.
func TestStrayChunkCookieBeforeSession(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, kv(m))
	c.get("/put?user=ada")
	c.setCookie(&http.Cookie{Name: "session.1", Value: "stray", Path: "/admin", Secure: true})
	if _, body := c.get("/admin/get?user"); body != "ada" {
		t.Errorf("under /admin with a stray session.1: got %q, want ada", body)
	}
	// And with the raw header in that order.
	hdr := "session.1=stray; session=" + c.jarCookies()["session"]
	if got := serveOnce(m.LoadAndSave(kv(m)), "/get?user", hdr).Body.String(); got != "ada" {
		t.Errorf("header %q: got %q, want ada", hdr[:20], got)
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)[:n]
}

func TestOversizeWithoutChunks(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if v := r.URL.Query().Get("v"); v != "" {
			m.Put(ctx, "big", v)
		}
		w.Header().Set("Content-Length", "7")
		io.WriteString(w, "handler")
	}))
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
		t.Errorf("ErrorHandler got %v, want ErrTooLarge", errs)
	}
	if after := c.jarCookies()["session"]; after != before {
		t.Error("previous cookie was changed")
	}
	if s := m.Stats(); s.TooLarge != 1 || s.Errors != 1 {
		t.Errorf("stats %+v, want one too-large error", s)
	}
}

// The limit is on the whole Set-Cookie header: a value that fits alone but
// not with its attributes is too large.
func TestOversizeCountsAttributes(t *testing.T) {
	m := New(keyA)
	var errs []error
	m.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { errs = append(errs, err) }
	var n int
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "v", strings.Repeat("x", n))
	}))
	// Find the largest n that fits, then check the header size at n.
	lo, hi := 0, 4096
	for lo < hi {
		n = (lo + hi + 1) / 2
		errs = nil
		serveOnce(h, "/", "")
		if len(errs) == 0 {
			lo = n
		} else {
			hi = n - 1
		}
	}
	n = lo
	line := "Set-Cookie: " + serveOnce(h, "/", "").Result().Header.Get("Set-Cookie")
	if len(line) > 4096 || len(line) < 4096-8 {
		t.Errorf("largest session's header is %d bytes, want just under 4096", len(line))
	}
}

func TestChunks(t *testing.T) {
	m := New(keyA)
	m.MaxChunks = 4
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/put":
			m.Put(ctx, "big", r.URL.Query().Get("v"))
		case "/destroy":
			m.Destroy(ctx)
		}
		io.WriteString(w, m.GetString(ctx, "big"))
	}))
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
	m := New(keyA)
	m.MaxChunks = 3
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("v"); v != "" {
			m.Put(r.Context(), "big", v)
		}
		io.WriteString(w, m.GetString(r.Context(), "big"))
	}))
	cookies := serveOnce(h, "/?v="+randomString(3000), "").Result().Cookies()
	if len(cookies) != 2 {
		t.Fatalf("got %d cookies, want 2", len(cookies))
	}
	other := serveOnce(h, "/?v="+randomString(3000), "").Result().Cookies()
	send := func(cs ...*http.Cookie) string {
		var parts []string
		for _, c := range cs {
			parts = append(parts, c.Name+"="+c.Value)
		}
		return serveOnce(h, "/", strings.Join(parts, "; ")).Body.String()
	}
	if send(cookies...) == "" {
		t.Fatal("untampered chunks rejected")
	}
	if got := send(cookies[0]); got != "" {
		t.Errorf("missing chunk accepted: %d bytes", len(got))
	}
	if got := send(cookies[0], other[1]); got != "" {
		t.Errorf("chunks of two sessions mixed: accepted")
	}
	truncated := []*http.Cookie{cookies[0], {Name: "session.1", Value: cookies[1].Value[1:]}}
	if got := send(truncated...); got != "" {
		t.Errorf("truncated chunk accepted")
	}
}

func TestHeadersWritten(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body first")
		m.Put(r.Context(), "late", 1)
	}))
	res, body := c.get("/")
	if res.StatusCode != 200 || body != "body first" {
		t.Errorf("got %d %q; want the handler's response untouched", res.StatusCode, body)
	}
	if errs := c.errors(); len(errs) != 1 || !errors.Is(errs[0], ErrHeadersWritten) {
		t.Errorf("ErrorHandler got %v, want ErrHeadersWritten", errs)
	}
}

func TestUnencodableValue(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "ch", make(chan int))
	}))
	res, _ := c.get("/")
	if res.StatusCode != 500 || len(c.errors()) != 1 || !strings.Contains(c.errors()[0].Error(), `"ch"`) {
		t.Errorf("status %d errors %v, want 500 and one error naming the key", res.StatusCode, c.errors())
	}
}

// With no ErrorHandler, the toolkit's default replies 500 with the status
// text only, never the error's text.
func TestDefaultErrorHandler(t *testing.T) {
	m := New(keyA)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "v", randomString(5000))
		io.WriteString(w, "handler body")
	}))
	rec := serveOnce(h, "/", "")
	if rec.Code != 500 || rec.Body.String() != "Internal Server Error\n" {
		t.Errorf("got %d %q, want 500 Internal Server Error", rec.Code, rec.Body.String())
	}
	// ErrHeadersWritten: the default only logs; the body is the handler's.
	h = m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sent")
		m.Put(r.Context(), "v", 1)
	}))
	if rec := serveOnce(h, "/", ""); rec.Code != 200 || rec.Body.String() != "sent" {
		t.Errorf("late change: got %d %q, want 200 sent", rec.Code, rec.Body.String())
	}
}

func TestValidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
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
		if seen == nil || seen.Get("user") != "ada" || len(seen.Token()) != 22 || !seen.Deadline().Equal(time.Now().Add(24*time.Hour)) {
			t.Errorf("Validate saw %+v", seen)
		}
		time.Sleep(time.Minute)
		revokedBefore = time.Now() // log out everywhere
		time.Sleep(time.Minute)
		if _, body := c.get("/get?user"); body != "" {
			t.Errorf("revoked session still read %q", body)
		}
		c.get("/put?user=ada") // log in again
		if _, body := c.get("/get?user"); body != "ada" {
			t.Errorf("new session after revocation read %q", body)
		}
		// The revoked cookie came twice: the read and the new login.
		if s := m.Stats(); s.Rejected.Revoked != 2 {
			t.Errorf("stats %+v, want two revoked", s.Rejected)
		}
	})
}

// Issue 14: the documented revocation pattern works within the same
// second, in real time: the session renewed in the revoking request is
// kept, and so is a fresh login right after, while the old session is
// refused.
func TestRevocationPatternSameSecond(t *testing.T) {
	m := New(keyA)
	var mu sync.Mutex
	var revokedAt time.Time
	m.Validate = func(ctx context.Context, v *Values) bool {
		mu.Lock()
		defer mu.Unlock()
		return v.Get("user") == nil || v.Issued().After(revokedAt)
	}
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/login":
			m.RenewToken(ctx)
			m.Put(ctx, "user", "ada")
		case "/logout-everywhere":
			if m.GetString(ctx, "user") == "" {
				http.Error(w, "not logged in", http.StatusForbidden)
				return
			}
			mu.Lock()
			revokedAt = time.Now()
			mu.Unlock()
			m.RenewToken(ctx)
		}
		io.WriteString(w, m.GetString(ctx, "user"))
	}))
	for i := range 10 {
		mu.Lock()
		revokedAt = time.Time{}
		mu.Unlock()
		other := cookieHeader(serveOnce(h, "/login", "").Result())
		mine := cookieHeader(serveOnce(h, "/login", "").Result())
		kept := cookieHeader(serveOnce(h, "/logout-everywhere", mine).Result())
		if got := serveOnce(h, "/", kept).Body.String(); got != "ada" {
			t.Errorf("run %d: session renewed in the revoking request: got %q, want ada", i, got)
		}
		if got := serveOnce(h, "/", other).Body.String(); got != "" {
			t.Errorf("run %d: old session: got %q, want it revoked", i, got)
		}
		fresh := cookieHeader(serveOnce(h, "/login", "").Result())
		if got := serveOnce(h, "/", fresh).Body.String(); got != "ada" {
			t.Errorf("run %d: fresh login right after: got %q, want ada", i, got)
		}
	}
}

// A cookie sealed under one name is not accepted under another: the name is
// bound into the MAC.
func TestCookieNameBound(t *testing.T) {
	m := New(keyA)
	value := serveOnce(m.LoadAndSave(kv(m)), "/put?user=ada", "").Result().Cookies()[0].Value
	other := New(keyA)
	other.Cookie.Name = "other"
	if got := serveOnce(other.LoadAndSave(kv(other)), "/get?user", "other="+value).Body.String(); got != "" {
		t.Errorf("cookie accepted under another name: %q", got)
	}
}

// Every single-byte change and every truncation of a real cookie gives an
// empty session and a 200, never a 500 or a partial session. Three value
// lengths cover the three base64 paddings (a lenient decoder would accept a
// changed last character whose changed bits are padding).
func TestTamperEveryByte(t *testing.T) {
	m := New(keyA)
	h := m.LoadAndSave(kv(m))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
	paddings := map[int]bool{}
	for _, role := range []string{"admin", "admin1", "admin12"} {
		value := serveOnce(h, "/put?user=ada&role="+role, "").Result().Cookies()[0].Value
		paddings[len(value)-len(strings.TrimRight(value, "="))] = true
		try := func(v string) (int, string) {
			rec := serveOnce(h, "/get?user", "session="+v)
			return rec.Code, rec.Body.String()
		}
		if code, body := try(value); code != 200 || body != "ada" {
			t.Fatalf("untampered cookie: %d %q", code, body)
		}
		for i := range len(value) {
			for _, repl := range []byte{alphabet[(strings.IndexByte(alphabet, value[i])+1)%len(alphabet)], '.', '!'} {
				v := value[:i] + string(repl) + value[i+1:]
				if code, body := try(v); code != 200 || body != "" {
					t.Errorf("byte %d of %d -> %q: %d %q, want 200 and an empty session", i, len(value), repl, code, body)
				}
			}
			if code, body := try(value[:i]); code != 200 || body != "" {
				t.Errorf("truncated to %d: %d %q", i, code, body)
			}
		}
	}
	if len(paddings) < 2 {
		t.Errorf("cookies had paddings %v; want several to cover the last-character check", paddings)
	}
	for _, garbage := range []string{"", "=", "\"\"", "2.", "16.abc", "99999999999999999999.x", strings.Repeat("A", 100000)} {
		rec := serveOnce(h, "/get?user", "session="+garbage)
		if rec.Code != 200 || rec.Body.String() != "" {
			t.Errorf("garbage %.20q: %d %q", garbage, rec.Code, rec.Body.String())
		}
	}
	if s := m.Stats(); s.Rejected.Invalid < 100 {
		t.Errorf("stats counted %d invalid tokens", s.Rejected.Invalid)
	}
}

func TestConcurrentUse(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	}))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			// A client per goroutine: its own jar and session.
			hc := *c.hc
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
	m := New(keyA)
	mustPanic(t, func() { m.GetString(context.Background(), "k") })
}

// A handler that derives its own context still reaches the session, and two
// Managers with different cookie names can be stacked.
func TestDerivedContextAndTwoManagers(t *testing.T) {
	a, b := New(keyA), New(keyB)
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
	m := New(keyA)
	var printed string
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "secret", "hunter2")
		printed = fmt.Sprintf("%v %+v %#v", r.Context(), r.Context(), r.Context())
	}))
	serveOnce(h, "/", "")
	if strings.Contains(printed, "hunter2") {
		t.Errorf("context prints as %q", printed)
	}
}

// Issue 11: the session tells the request's reqstate which cookie carries
// it and how the handler used it, so a response cache mounted anywhere can
// decide safely.
func TestReqstateMarks(t *testing.T) {
	m := New(keyA)
	m.Cookie.Name = "sid"
	logged := cookieHeader(serveOnce(m.LoadAndSave(kv(m)), "/put?user=ada", "").Result())
	tests := []struct {
		name, path, cookie string
		want               reqstate.Use
	}{
		{"untouched", "/nothing", logged, reqstate.Untouched},
		{"read, no session", "/get?user", "", reqstate.Anonymous},
		{"read, garbage cookie", "/get?user", "sid=garbage", reqstate.Anonymous},
		{"read, logged in", "/get?user", logged, reqstate.Personal},
		{"put", "/put?x=1", "", reqstate.Personal},
		{"remove missing key", "/remove", "", reqstate.Personal},
		{"clear empty", "/clear", "", reqstate.Personal},
		{"renew", "/renew", "", reqstate.Personal},
		{"destroy", "/destroy", "", reqstate.Personal},
		{"remember me", "/remember", "", reqstate.Personal},
		{"token of empty session", "/token", "", reqstate.Anonymous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var snap reqstate.Snapshot
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/remove":
					m.Remove(r.Context(), "nope")
				case "/remember":
					m.RememberMe(r.Context(), true)
				default:
					kv(m)(w, r)
				}
			})
			// An outer middleware standing in for the response cache.
			outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r, rs := reqstate.Ensure(r)
				m.LoadAndSave(inner).ServeHTTP(w, r)
				snap = rs.Snapshot()
			})
			serveOnce(outer, tt.path, tt.cookie)
			if snap.Use != tt.want {
				t.Errorf("Use = %v, want %v", snap.Use, tt.want)
			}
			if len(snap.Cookies) != 1 || snap.Cookies[0] != (reqstate.Cookie{Name: "sid", Kind: reqstate.Session}) {
				t.Errorf("Cookies = %v, want sid as a Session cookie", snap.Cookies)
			}
		})
	}
	// Without an outer middleware, LoadAndSave creates the State itself.
	var rs *reqstate.State
	serveOnce(m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs = reqstate.From(r.Context())
		m.GetString(r.Context(), "user")
	})), "/", logged)
	if s := rs.Snapshot(); s.Use != reqstate.Personal {
		t.Errorf("own State: Use = %v, want Personal", s.Use)
	}
}

func TestStatsJSON(t *testing.T) {
	m := New(keyA)
	h := m.LoadAndSave(kv(m))
	hdr := cookieHeader(serveOnce(h, "/put?user=ada", "").Result())
	serveOnce(h, "/get?user", hdr)
	serveOnce(h, "/get?user", "session=forged")
	b, err := json.Marshal(m.Stats())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"loaded":1,"fresh":2,"saved":1,"resealed":0,"destroyed":0,"rejected":{"invalid":1,"expired":0,"idle":0,"revoked":0},"too_large":0,"errors":0}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
}

// Calls that change nothing (removing a missing key, clearing an empty
// session) after the headers are out are not errors.
func TestNoOpAfterHeadersIsNotAnError(t *testing.T) {
	m := New(keyA)
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sent")
		m.Remove(r.Context(), "nope")
		m.Clear(r.Context())
	}))
	if res, body := c.get("/"); res.StatusCode != 200 || body != "sent" || len(c.errors()) != 0 {
		t.Errorf("got %d %q errors %v; want 200, sent, no errors", res.StatusCode, body, c.errors())
	}
}
