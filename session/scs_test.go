package session

// This file checks the behaviour scs v2 documents for its SessionManager,
// written here from that documentation against a TLS test server and a
// cookie jar. Where a cookie store must differ, the test says so; what
// cannot apply at all (Iterate, deleting a session server-side) is listed in
// the package documentation.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// scsServer mounts handlers on a mux behind m.LoadAndSave. A handler that
// finds no "foo" replies 500 "foo does not exist in session".
func scsServer(t *testing.T, m *Manager, routes map[string]func(w http.ResponseWriter, r *http.Request)) *client {
	t.Helper()
	mux := http.NewServeMux()
	for path, h := range routes {
		mux.HandleFunc(path, h)
	}
	c := serve(t, m, mux)
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

const noFoo = "foo does not exist in session\n"

func putFoo(m *Manager) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { m.Put(r.Context(), "foo", "bar") }
}

func getFoo(m *Manager) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := m.Get(r.Context(), "foo").(string)
		if !ok {
			http.Error(w, strings.TrimSuffix(noFoo, "\n"), 500)
			return
		}
		io.WriteString(w, v)
	}
}

func tokenOf(m *Manager) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, m.Token(r.Context())) }
}

// Enable: a value put in one request is read in the next, a read sends no
// cookie, and the session keeps its token across writes. (scs's cookie
// carries the token itself; here the cookie is re-sealed on each write
// while Token stays the same.)
func TestSCSEnable(t *testing.T) {
	m := New(keyA)
	c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){
		"/put": putFoo(m), "/get": getFoo(m), "/token": tokenOf(m),
	})
	res, _ := c.get("/put")
	if res.Header.Get("Set-Cookie") == "" {
		t.Fatal("put sent no cookie")
	}
	_, token1 := c.get("/token")
	res, body := c.get("/get")
	if body != "bar" || res.Header.Get("Set-Cookie") != "" {
		t.Errorf("get: body %q Set-Cookie %q; want bar and no cookie", body, res.Header.Get("Set-Cookie"))
	}
	c.get("/put")
	if _, token2 := c.get("/token"); token1 == "" || token1 != token2 {
		t.Errorf("tokens %q, %q: want the same non-empty token", token1, token2)
	}
}

func TestSCSLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.Lifetime = 500 * time.Millisecond
		c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){"/put": putFoo(m), "/get": getFoo(m)})
		c.get("/put")
		if _, body := c.get("/get"); body != "bar" {
			t.Errorf("got %q, want bar", body)
		}
		time.Sleep(time.Second)
		if _, body := c.get("/get"); body != noFoo {
			t.Errorf("after the lifetime got %q, want %q", body, noFoo)
		}
	})
}

func TestSCSIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.IdleTimeout = 200 * time.Millisecond
		m.Lifetime = time.Second
		c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){"/put": putFoo(m), "/get": getFoo(m)})
		c.get("/put")
		time.Sleep(100 * time.Millisecond)
		c.get("/get")
		time.Sleep(150 * time.Millisecond) // 250 ms after the put, 150 after the read
		if _, body := c.get("/get"); body != "bar" {
			t.Errorf("read within the idle timeout got %q, want bar", body)
		}
		time.Sleep(200 * time.Millisecond)
		if _, body := c.get("/get"); body != noFoo {
			t.Errorf("after the idle timeout got %q, want %q", body, noFoo)
		}
	})
}

func TestSCSDestroy(t *testing.T) {
	m := New(keyA)
	c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){
		"/put": putFoo(m), "/get": getFoo(m),
		"/destroy": func(w http.ResponseWriter, r *http.Request) {
			if err := m.Destroy(r.Context()); err != nil {
				http.Error(w, err.Error(), 500)
			}
		},
	})
	c.get("/put")
	res, _ := c.get("/destroy")
	ck := res.Header.Get("Set-Cookie")
	for _, want := range []string{"session=;", "Expires=Thu, 01 Jan 1970 00:00:01 GMT", "Max-Age=0"} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %q", ck, want)
		}
	}
	if _, body := c.get("/get"); body != noFoo {
		t.Errorf("after Destroy got %q", body)
	}
}

func TestSCSRenewToken(t *testing.T) {
	m := New(keyA)
	c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){
		"/put": putFoo(m), "/get": getFoo(m), "/token": tokenOf(m),
		"/renew": func(w http.ResponseWriter, r *http.Request) {
			if err := m.RenewToken(r.Context()); err != nil {
				http.Error(w, err.Error(), 500)
			}
		},
	})
	c.get("/put")
	_, before := c.get("/token")
	res, _ := c.get("/renew")
	if res.Header.Get("Set-Cookie") == "" {
		t.Error("renew sent no cookie")
	}
	if _, after := c.get("/token"); after == before || after == "" {
		t.Errorf("token %q before and %q after renewal: want a new one", before, after)
	}
	if _, body := c.get("/get"); body != "bar" {
		t.Errorf("data after renewal: %q", body)
	}
}

func TestSCSRememberMe(t *testing.T) {
	m := New(keyA)
	m.Cookie.Persist = false
	c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){
		"/put": putFoo(m),
		"/remember": func(w http.ResponseWriter, r *http.Request) {
			m.RememberMe(r.Context(), true)
		},
		"/forget": func(w http.ResponseWriter, r *http.Request) {
			m.RememberMe(r.Context(), false)
		},
	})
	res, _ := c.get("/put")
	if ck := res.Header.Get("Set-Cookie"); strings.Contains(ck, "Max-Age") || strings.Contains(ck, "Expires") {
		t.Errorf("Persist false: Set-Cookie %q, want a browser-session cookie", ck)
	}
	res, _ = c.get("/remember")
	if ck := res.Header.Get("Set-Cookie"); !strings.Contains(ck, "Max-Age=86400") || !strings.Contains(ck, "Expires=") {
		t.Errorf("RememberMe(true): Set-Cookie %q, want Expires and Max-Age", ck)
	}
	// The choice is sealed into the session: later writes keep it.
	res, _ = c.get("/put")
	if ck := res.Header.Get("Set-Cookie"); !strings.Contains(ck, "Max-Age=") {
		t.Errorf("write after RememberMe: Set-Cookie %q lost persistence", ck)
	}
	res, _ = c.get("/forget")
	if ck := res.Header.Get("Set-Cookie"); strings.Contains(ck, "Max-Age") {
		t.Errorf("RememberMe(false): Set-Cookie %q", ck)
	}
	// scs keeps RememberMe in the session data as "__rememberMe"; here it
	// is not one of the session's keys.
}

func TestSCSStatus(t *testing.T) {
	m := New(keyA)
	var got []Status
	c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){
		"/": func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			got = append(got, m.Status(ctx))
			switch r.URL.Query().Get("do") {
			case "put":
				m.Put(ctx, "foo", "bar")
			case "destroy":
				m.Destroy(ctx)
			case "destroy-put":
				m.Destroy(ctx)
				m.Put(ctx, "foo", "baz")
			case "remove-missing":
				m.Remove(ctx, "nope")
			case "clear":
				m.Clear(ctx)
			}
			got = append(got, m.Status(ctx))
		},
	})
	for _, do := range []string{"", "put", "", "remove-missing", "destroy", "destroy-put", "clear"} {
		c.get("/?do=" + do)
	}
	want := []Status{
		Unmodified, Unmodified, // new session, read only
		Unmodified, Modified, // put
		Unmodified, Unmodified, // read
		Unmodified, Unmodified, // removing a missing key is a no-op
		Unmodified, Destroyed,
		Unmodified, Modified, // destroy then put: a new session
		Unmodified, Modified, // clear
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

// Load and Commit carry a session outside the cookie, here in a header, as
// an API or a custom middleware does.
func TestSCSLoadCommit(t *testing.T) {
	m := New(keyA)
	api := func(w http.ResponseWriter, r *http.Request) {
		ctx, err := m.Load(r.Context(), r.Header.Get("X-Session"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if v := r.URL.Query().Get("v"); v != "" {
			m.Put(ctx, "foo", v)
		}
		if r.URL.Query().Has("destroy") {
			m.Destroy(ctx)
		}
		switch m.Status(ctx) {
		case Modified:
			token, expiry, err := m.Commit(ctx)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("X-Session", token)
			w.Header().Set("X-Session-Expiry", expiry.UTC().Format(time.RFC3339Nano))
		case Destroyed:
			w.Header().Set("X-Session", "")
		}
		io.WriteString(w, m.GetString(ctx, "foo"))
	}
	c := serve(t, m, nil)
	c.srv.Config.Handler = http.HandlerFunc(api)
	call := func(query, token string) (string, string) {
		req, _ := http.NewRequest("GET", c.srv.URL+"/?"+query, nil)
		req.Header.Set("X-Session", token)
		res, body := c.do(req)
		return res.Header.Get("X-Session"), body
	}
	token, _ := call("v=bar", "")
	if token == "" {
		t.Fatal("no token committed")
	}
	if again, body := call("", token); body != "bar" || again != "" {
		t.Errorf("read with token: body %q, new token %q; want bar and none", body, again)
	}
	if _, body := call("", token[:len(token)-4]+"AAAA"); body != "" {
		t.Errorf("forged token read %q", body)
	}
	if _, body := call("", ""); body != "" {
		t.Errorf("no token read %q", body)
	}
	if _, body := call("destroy=1", token); body != "" {
		t.Errorf("after destroy read %q", body)
	}

	// Load on a context that already has the session returns it as is.
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "foo", "x")
		ctx, _ := m.Load(r.Context(), "")
		io.WriteString(w, m.GetString(ctx, "foo"))
	}))
	if got := serveOnce(h, "/", "").Body.String(); got != "x" {
		t.Errorf("Load inside LoadAndSave: got %q, want x", got)
	}
}

// WriteSessionCookie writes the token Commit returned as the session
// cookie, which LoadAndSave then reads; a zero expiry deletes it.
func TestSCSWriteSessionCookie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		custom := func(w http.ResponseWriter, r *http.Request) {
			var token string
			if ck, err := r.Cookie("session"); err == nil {
				token = ck.Value
			}
			ctx, _ := m.Load(r.Context(), token)
			switch r.URL.Path {
			case "/put":
				m.Put(ctx, "foo", "bar")
			case "/destroy":
				m.Destroy(ctx)
			}
			switch m.Status(ctx) {
			case Modified:
				token, expiry, err := m.Commit(ctx)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				if !expiry.Equal(time.Now().Add(24 * time.Hour)) {
					t.Errorf("expiry %v, want now+24h", expiry)
				}
				m.WriteSessionCookie(ctx, w, token, expiry)
			case Destroyed:
				m.WriteSessionCookie(ctx, w, "", time.Time{})
			}
			io.WriteString(w, m.GetString(ctx, "foo"))
		}
		c := serve(t, m, nil)
		c.srv.Config.Handler = http.HandlerFunc(custom)
		res, _ := c.get("/put")
		if ck := res.Header.Get("Set-Cookie"); !strings.Contains(ck, "Max-Age=86400") || !strings.Contains(ck, "Secure") {
			t.Errorf("Set-Cookie %q", ck)
		}
		// The cookie written by hand opens in LoadAndSave too.
		c.srv.Config.Handler = m.LoadAndSave(http.HandlerFunc(getFoo(m)))
		if _, body := c.get("/"); body != "bar" {
			t.Errorf("LoadAndSave read %q, want bar", body)
		}
		c.srv.Config.Handler = http.HandlerFunc(custom)
		c.get("/destroy")
		if jar := c.jarCookies(); len(jar) != 0 {
			t.Errorf("after destroy jar has %v", jar)
		}
	})
}

func TestSCSDataMethods(t *testing.T) {
	m := New(keyA)
	steps := []struct {
		name string
		do   func(ctx context.Context) any
		want any
	}{
		{"put", func(ctx context.Context) any { m.Put(ctx, "foo", "bar"); m.Put(ctx, "baz", 1); return nil }, nil},
		{"get", func(ctx context.Context) any { return m.Get(ctx, "foo") }, "bar"},
		{"get missing", func(ctx context.Context) any { return m.Get(ctx, "nope") }, nil},
		{"exists", func(ctx context.Context) any { return [2]bool{m.Exists(ctx, "foo"), m.Exists(ctx, "nope")} }, [2]bool{true, false}},
		{"keys sorted", func(ctx context.Context) any { return strings.Join(m.Keys(ctx), ",") }, "baz,foo"},
		{"pop", func(ctx context.Context) any { return m.Pop(ctx, "foo") }, "bar"},
		{"popped", func(ctx context.Context) any { return m.Exists(ctx, "foo") }, false},
		{"pop missing", func(ctx context.Context) any { return m.Pop(ctx, "foo") }, nil},
		{"remove", func(ctx context.Context) any { m.Remove(ctx, "baz"); return len(m.Keys(ctx)) }, 0},
		{"keys of empty", func(ctx context.Context) any { return fmt.Sprintf("%#v", m.Keys(ctx)) }, "[]string{}"},
		{"clear", func(ctx context.Context) any {
			m.Put(ctx, "a", 1)
			return [2]any{m.Clear(ctx), len(m.Keys(ctx))}
		}, [2]any{nil, 0}},
		{"token kept by clear", func(ctx context.Context) any { return m.Token(ctx) != "" }, true},
		{"typed getters of the wrong type", func(ctx context.Context) any {
			m.Put(ctx, "s", "x")
			return fmt.Sprint(m.GetInt(ctx, "s"), m.GetInt32(ctx, "s"), m.GetInt64(ctx, "s"), m.GetBool(ctx, "s"),
				m.GetFloat(ctx, "s"), m.GetBytes(ctx, "s") == nil, m.GetTime(ctx, "s").IsZero())
		}, "0 0 0 false 0 true true"},
	}
	var got any
	var step int
	c := serve(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = steps[step].do(r.Context())
	}))
	for i, s := range steps {
		step = i
		c.get("/")
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

// Token is "" for a session never saved, as in scs; it is set once the
// session is saved.
func TestSCSToken(t *testing.T) {
	m := New(keyA)
	var before, after string
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		before = m.Token(ctx)
		m.Put(ctx, "foo", "bar")
		tok, _, err := m.Commit(ctx)
		if err != nil || tok == "" {
			t.Errorf("Commit: %q, %v", tok, err)
		}
		after = m.Token(ctx)
	}))
	serveOnce(h, "/", "")
	if before != "" || len(after) != 22 {
		t.Errorf("Token before save %q, after %q; want empty, then 22 chars", before, after)
	}
}

func TestSCSDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(keyA)
		m.Lifetime = time.Hour
		c := scsServer(t, m, map[string]func(http.ResponseWriter, *http.Request){
			"/put": putFoo(m), "/get": getFoo(m),
			"/deadline": func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, time.Until(m.Deadline(r.Context())))
			},
			"/extend": func(w http.ResponseWriter, r *http.Request) {
				m.SetDeadline(r.Context(), time.Now().Add(30*24*time.Hour))
			},
		})
		if _, body := c.get("/deadline"); body != "1h0m0s" {
			t.Errorf("new session's deadline in %s, want 1h", body)
		}
		c.get("/put")
		res, _ := c.get("/extend")
		if ck := res.Header.Get("Set-Cookie"); !strings.Contains(ck, "Max-Age=2592000") {
			t.Errorf("SetDeadline: Set-Cookie %q, want Max-Age of 30 days", ck)
		}
		time.Sleep(2 * time.Hour)
		if _, body := c.get("/get"); body != "bar" {
			t.Errorf("2 h into a 30-day deadline got %q", body)
		}
	})
}

func TestSCSMergeSession(t *testing.T) {
	m := New(keyA)
	var other string
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/other":
			m.Put(ctx, "cart", "3 items")
			m.Put(ctx, "user", "guest")
			other, _, _ = m.Commit(ctx)
		case "/merge":
			m.MergeSession(ctx, other)
			m.MergeSession(ctx, "forged")
		}
		io.WriteString(w, m.GetString(ctx, "user")+"/"+m.GetString(ctx, "cart"))
	}))
	serveOnce(h, "/other", "")
	c := serve(t, m, nil)
	c.srv.Config.Handler = h
	c.setCookie(&http.Cookie{Name: "session", Value: "", Path: "/"})
	res, body := c.get("/merge")
	if body != "guest/3 items" || res.Header.Get("Set-Cookie") == "" {
		t.Errorf("merge: %q, Set-Cookie %q", body, res.Header.Get("Set-Cookie"))
	}
	if _, body := c.get("/"); body != "guest/3 items" {
		t.Errorf("after merge: %q", body)
	}
}

func TestSCSNoSessionInContextPanics(t *testing.T) {
	m := New(keyA)
	for name, f := range map[string]func(){
		"Get":    func() { m.Get(context.Background(), "k") },
		"Put":    func() { m.Put(context.Background(), "k", 1) },
		"Status": func() { m.Status(context.Background()) },
		"Commit": func() { m.Commit(context.Background()) },
	} {
		t.Run(name, func(t *testing.T) { mustPanic(t, f) })
	}
}
