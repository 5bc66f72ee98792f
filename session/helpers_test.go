package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

var (
	keyA = bytes.Repeat([]byte("a"), 32)
	keyB = bytes.Repeat([]byte("b"), 32)
)

// pipeListener is a net.Listener whose connections are in-memory pipes, so
// that a real TLS httptest.Server and http.Client run inside a
// testing/synctest bubble: goroutines blocked on a pipe are durably
// blocked and the fake clock can advance, which real sockets prevent.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pipeAddr names the server "example.com", a name httptest's certificate
// covers, so TLS verification runs as usual.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "example.com" }

// client talks to one TLS test server through a cookie jar.
type client struct {
	t   *testing.T
	srv *httptest.Server
	hc  *http.Client
	// errs collects what ErrorHandler received.
	mu   sync.Mutex
	errs []error
}

// serve starts a TLS server running h behind m.LoadAndSave (h may use
// c.srv.Config.Handler to replace the whole stack later). If m has no
// ErrorHandler, one that records the error and replies 500 is installed.
// It works inside and outside a synctest bubble.
func serve(t *testing.T, m *Manager, h http.Handler) *client {
	t.Helper()
	c := &client{t: t}
	if m.ErrorHandler == nil {
		m.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
			http.Error(w, "session error", http.StatusInternalServerError)
		}
	}
	var handler http.Handler
	if h != nil {
		handler = m.LoadAndSave(h)
	}
	c.srv = httptest.NewUnstartedServer(handler)
	c.srv.Listener.Close()
	pl := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	c.srv.Listener = pl
	c.srv.StartTLS()
	c.hc = c.srv.Client()
	tr := c.hc.Transport.(*http.Transport)
	tr.DialContext = pl.dial
	tr.TLSClientConfig.ServerName = "example.com"
	c.hc.Jar, _ = cookiejar.New(nil)
	t.Cleanup(c.close)
	return c
}

func (c *client) close() {
	c.hc.CloseIdleConnections()
	c.srv.Close()
}

// do sends req and returns the response and its body.
func (c *client) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

// get requests path and returns the response and its body.
func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.srv.URL+path, nil)
	return c.do(req)
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

// setCookie puts a cookie into the jar as if the server had set it.
func (c *client) setCookie(ck *http.Cookie) {
	u, _ := url.Parse(c.srv.URL + ck.Path)
	c.hc.Jar.SetCookies(u, []*http.Cookie{ck})
}

// kv is a handler for /put?k=v, /get?k, /pop?k, /keys, /clear, /destroy,
// /renew, /token, /status.
func kv(m *Manager) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		q := r.URL.Query()
		switch strings.TrimPrefix(r.URL.Path, "/admin") {
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
		case "/token":
			fmt.Fprint(w, m.Token(ctx))
		case "/deadline":
			fmt.Fprint(w, m.Deadline(ctx).UnixNano())
		}
	}
}

// serveOnce runs h once on a request carrying cookie header hdr and
// returns the recorder.
func serveOnce(h http.Handler, target, hdr string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	if hdr != "" {
		r.Header.Set("Cookie", hdr)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// cookieHeader joins a response's cookies into a Cookie request header.
func cookieHeader(res *http.Response) string {
	var parts []string
	for _, c := range res.Cookies() {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// mustPanic runs f and fails unless it panics with a "session: " message.
func mustPanic(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		msg, _ := recover().(string)
		if !strings.HasPrefix(msg, "session: ") {
			t.Errorf("got panic %q, want a session: panic", msg)
		}
	}()
	f()
}
