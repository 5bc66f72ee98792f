// Package session_test compares sharednothing/session with gorilla/sessions
// and alexedwards/scs v2 on the same requests.
package session_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/gomodule/redigo/redis"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/sharednothing/sharednothing/session"
)

var (
	// key is the one key sharednothing/session takes (it derives its
	// HMAC and AES keys from it); gorilla/sessions takes the two directly.
	key      = bytes.Repeat([]byte{'k'}, 32)
	hashKey  = bytes.Repeat([]byte{'h'}, 32)
	blockKey = bytes.Repeat([]byte{'b'}, 32)

	// redisAddr is set by TestMain when it started a redis-server.
	redisAddr string
	// redisPID is that server's process ID, for its CPU time.
	redisPID int
)

// TestMain starts a private redis-server on a free loopback port when
// benchmarks run, and stops it afterwards.
func TestMain(m *testing.M) {
	flag.Parse()
	stop := func() {}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		var err error
		if stop, err = startRedis(); err != nil {
			fmt.Fprintln(os.Stderr, "redis-server not started, scs+redis benchmarks skip:", err)
			stop = func() {}
		}
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func startRedis() (func(), error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(path, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 100 {
		if c, err := redis.Dial("tcp", addr); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				redisAddr, redisPID = addr, cmd.Process.Pid
				return stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond) // waiting for a child process to listen
	}
	stop()
	return nil, fmt.Errorf("redis-server on %s did not answer", addr)
}

// cpuTime returns the CPU time used so far by this process and by the
// benchmark's redis-server, in nanoseconds. On a machine shared with other
// work, wall-clock ns/op includes time spent waiting for a core; CPU time
// per request does not, so both are reported.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	ns := ru.Utime.Nano() + ru.Stime.Nano()
	if redisPID != 0 {
		// Fields 14 and 15 of /proc/PID/stat: utime and stime in clock
		// ticks (100 per second on Linux).
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", redisPID)); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				f := strings.Fields(s[i+1:])
				if len(f) > 12 {
					u, _ := strconv.ParseInt(f[11], 10, 64)
					k, _ := strconv.ParseInt(f[12], 10, 64)
					ns += (u + k) * int64(10*time.Millisecond)
				}
			}
		}
	}
	return ns
}

// writer is a ResponseWriter that keeps nothing, so the figures are the
// middleware's, not a recorder's.
type writer struct{ h http.Header }

func (w *writer) Header() http.Header         { return w.h }
func (w *writer) Write(p []byte) (int, error) { return len(p), nil }
func (w *writer) WriteHeader(int)             {}

// contender builds, for one implementation, a handler per request kind.
type contender struct {
	name string
	// setup returns the middleware-wrapped handler for a request kind
	// ("untouched", "read", "write"), or nil if the kind does not apply,
	// and the Cookie header of a logged-in session.
	setup func(b *testing.B, kind string) (http.Handler, string)
}

var hello = []byte("hello")

// login puts the session content every contender starts from.
func login(put func(key string, v any)) {
	put("user_id", 12345)
	put("name", "Ada Lovelace")
	put("csrf", "0123456789abcdef0123456789abcdef")
}

// cookieFrom runs h once and returns the Cookie header for what it set.
func cookieFrom(b *testing.B, h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var s string
	for _, c := range rec.Result().Cookies() {
		s += c.Name + "=" + c.Value + "; "
	}
	if s == "" {
		b.Fatal("login set no cookie")
	}
	return s
}

func sharednothing() contender {
	return contender{"sharednothing", func(b *testing.B, kind string) (http.Handler, string) {
		m := session.New(key)
		cookie := cookieFrom(b, m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			login(func(k string, v any) { m.Put(r.Context(), k, v) })
		})))
		n := 0
		return m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch kind {
			case "read":
				if m.GetString(r.Context(), "name") == "" {
					panic("no session")
				}
			case "write":
				n++
				m.Put(r.Context(), "counter", n)
			}
			w.Write(hello)
		})), cookie
	}}
}

// gorillaJSON is a securecookie serializer for gorilla's map[any]any values:
// JSONEncoder alone cannot encode interface-keyed maps.
type gorillaJSON struct{}

func (gorillaJSON) Serialize(src any) ([]byte, error) {
	in := src.(map[any]any)
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k.(string)] = v
	}
	return json.Marshal(out)
}

func (gorillaJSON) Deserialize(b []byte, dst any) error {
	var in map[string]any
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	out := make(map[any]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	*dst.(*map[any]any) = out
	return nil
}

func gorilla(name string, json bool) contender {
	return contender{name, func(b *testing.B, kind string) (http.Handler, string) {
		if kind == "untouched" {
			return nil, "" // no middleware: untouched costs nothing
		}
		store := sessions.NewCookieStore(hashKey, blockKey)
		if json {
			for _, c := range store.Codecs {
				c.(*securecookie.SecureCookie).SetSerializer(gorillaJSON{})
			}
		}
		cookie := cookieFrom(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := store.Get(r, "session")
			login(func(k string, v any) { s.Values[k] = v })
			if err := s.Save(r, w); err != nil {
				b.Fatal(err)
			}
		}))
		n := 0
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := store.Get(r, "session")
			switch kind {
			case "read":
				if s.Values["name"] == nil {
					panic("no session")
				}
			case "write":
				n++
				s.Values["counter"] = n
				if err := s.Save(r, w); err != nil {
					panic(err)
				}
			}
			w.Write(hello)
		}), cookie
	}}
}

func scsWith(name string, store func(b *testing.B) scs.Store) contender {
	return contender{name, func(b *testing.B, kind string) (http.Handler, string) {
		sm := scs.New()
		sm.Store = store(b)
		cookie := cookieFrom(b, sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			login(func(k string, v any) { sm.Put(r.Context(), k, v) })
		})))
		n := 0
		return sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch kind {
			case "read":
				if sm.GetString(r.Context(), "name") == "" {
					panic("no session")
				}
			case "write":
				n++
				sm.Put(r.Context(), "counter", n)
			}
			w.Write(hello)
		})), cookie
	}}
}

func memStore(b *testing.B) scs.Store { return memstore.NewWithCleanupInterval(0) }

func redisStore(b *testing.B) scs.Store {
	if redisAddr == "" {
		b.Skip("no redis-server")
	}
	pool := &redis.Pool{MaxIdle: 4, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", redisAddr) }}
	b.Cleanup(func() { pool.Close() })
	return redisstore.New(pool)
}

// baseline contenders: no middleware, and the least any context-carrying
// middleware must do (one context value, one request copy).
func bare() contender {
	return contender{"bare", func(b *testing.B, kind string) (http.Handler, string) {
		if kind != "untouched" {
			return nil, ""
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(hello) }), ""
	}}
}

type ctxKey struct{}

func withValue() contender {
	return contender{"ctxvalue-floor", func(b *testing.B, kind string) (http.Handler, string) {
		if kind != "untouched" {
			return nil, ""
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(hello) })
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, 1)))
		}), ""
	}}
}

// BenchmarkSession serves the same requests through every contender: a
// request that never touches the session, one that reads one key of a
// logged-in session, and one that writes one key. Each iteration gets a
// fresh shallow copy of the request (gorilla/sessions stores its registry in
// the request).
func BenchmarkSession(b *testing.B) {
	contenders := []contender{
		bare(), withValue(), sharednothing(),
		gorilla("gorilla-gob", false), gorilla("gorilla-json", true),
		scsWith("scs-memstore", memStore), scsWith("scs-redis", redisStore),
	}
	for _, kind := range []string{"untouched", "read", "write"} {
		for _, c := range contenders {
			b.Run(kind+"/"+c.name, func(b *testing.B) {
				h, cookie := c.setup(b, kind)
				if h == nil {
					b.Skip("not applicable")
				}
				base := httptest.NewRequest("GET", "/", nil)
				if cookie != "" {
					base.Header.Set("Cookie", cookie)
				}
				w := &writer{h: http.Header{}}
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					clear(w.h)
					r := *base
					h.ServeHTTP(w, &r)
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
