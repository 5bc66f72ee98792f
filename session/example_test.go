package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/session"
)

// secret stands for the application secret, loaded from the environment.
var secret = []byte("load me from the environment, 32+ bytes")

// newClient returns a client with a cookie jar for srv that shows each
// response's body and whether it set a cookie.
func newClient(srv *httptest.Server) func(method, path string) {
	client := *srv.Client() // a client of its own, with its own jar
	client.Jar, _ = cookiejar.New(nil)
	return func(method, path string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s %s: %s (Set-Cookie: %v)\n", method, path, body, res.Header.Get("Set-Cookie") != "")
	}
}

func ExampleManager_LoadAndSave() {
	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
	sessions.Lifetime = 12 * time.Hour
	sessions.IdleTimeout = 30 * time.Minute

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sessions.RenewToken(ctx) // a new token at every privilege change
		sessions.Put(ctx, "user", "ada")
		sessions.Put(ctx, "flash", "Welcome back!")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		sessions.Destroy(r.Context())
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		fmt.Fprintf(w, "user=%q flash=%q", sessions.GetString(ctx, "user"), sessions.PopString(ctx, "flash"))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok") // never touches the session: no cookie work at all
	})

	srv := httptest.NewTLSServer(sessions.LoadAndSave(mux))
	defer srv.Close()
	do := newClient(srv)
	do("POST", "/login") // follows the redirect to /
	do("GET", "/")
	do("GET", "/health")
	do("POST", "/logout")
	// Output:
	// POST /login: user="ada" flash="Welcome back!" (Set-Cookie: true)
	// GET /: user="ada" flash="" (Set-Cookie: false)
	// GET /health: ok (Set-Cookie: false)
	// POST /logout: user="" flash="" (Set-Cookie: false)
}

// Values other than strings, numbers, bools, []byte and time.Time are
// kept as JSON; GetAs reads them back typed, and says why when it cannot.
func ExampleGetAs() {
	type User struct {
		ID   int
		Name string
	}
	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
	h := sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sessions.Put(ctx, "user", User{42, "Ada"})

		_, isUser := sessions.Get(ctx, "user").(User)
		fmt.Printf("Get returns %T (a User: %v)\n", sessions.Get(ctx, "user"), isUser)

		u, err := session.GetAs[User](sessions, ctx, "user")
		fmt.Println(u, err)
		_, err = session.GetAs[User](sessions, ctx, "cart")
		fmt.Println(err)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	// Output:
	// Get returns json.RawMessage (a User: false)
	// {42 Ada} <nil>
	// session: no value for key "cart"
}

// To rotate the key, deploy the new key with the old one as a previous
// key: old cookies still open, and are re-sealed with the new key on their
// next use. Remove the old key once Lifetime has passed.
func ExampleNew_rotation() {
	oldKey := sharednothing.DeriveKey([]byte("the old application secret, 32+ bytes"), "session")
	newKey := sharednothing.DeriveKey([]byte("the new application secret, 32+ bytes"), "session")

	var sessions *session.Manager
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/login" {
			sessions.Put(ctx, "user", "ada")
		}
		io.WriteString(w, sessions.GetString(ctx, "user"))
	})
	sessions = session.New(oldKey)
	srv := httptest.NewTLSServer(sessions.LoadAndSave(app))
	defer srv.Close()
	do := newClient(srv)
	do("GET", "/login")

	sessions = session.New(newKey, oldKey) // the new key first
	srv.Config.Handler = sessions.LoadAndSave(app)
	do("GET", "/") // re-sealed with the new key
	do("GET", "/")

	sessions = session.New(newKey) // the old key retired
	srv.Config.Handler = sessions.LoadAndSave(app)
	do("GET", "/")
	// Output:
	// GET /login: ada (Set-Cookie: true)
	// GET /: ada (Set-Cookie: true)
	// GET /: ada (Set-Cookie: false)
	// GET /: ada (Set-Cookie: false)
}

// A session too large for one cookie is split over several when MaxChunks
// allows it; otherwise it is ErrTooLarge and the client keeps its old
// cookie.
func ExampleManager_LoadAndSave_chunks() {
	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
	sessions.MaxChunks = 3
	h := sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sessions.Put(r.Context(), "notes", strings.Repeat("x", 3000))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	for _, c := range rec.Result().Cookies() {
		fmt.Println(c.Name)
	}

	sessions.MaxChunks = 1
	sessions.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		fmt.Println("error:", err)
		http.Error(w, "session too large", http.StatusInternalServerError)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	fmt.Println(rec.Code, len(rec.Result().Cookies()), "cookies")
	// Output:
	// session
	// session.1
	// error: session: sealed session exceeds the 4096-byte cookie limit
	// 500 0 cookies
}

// A cookie session cannot be deleted on the server, but Validate can
// refuse sessions issued before a user's "log out everywhere". The
// revoking request reads the user, records the time, then renews its own
// session, which was issued after that time and so stays valid.
func ExampleManager_Validate() {
	var mu sync.Mutex
	revoked := map[string]time.Time{} // in production: a column on the user row

	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
	sessions.Validate = func(ctx context.Context, v *session.Values) bool {
		user, _ := v.Get("user").(string)
		mu.Lock()
		defer mu.Unlock()
		return user == "" || v.Issued().After(revoked[user])
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		sessions.RenewToken(r.Context())
		sessions.Put(r.Context(), "user", "ada")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		user := sessions.GetString(ctx, "user")
		mu.Lock()
		revoked[user] = time.Now()
		mu.Unlock()
		sessions.RenewToken(ctx) // this session stays logged in
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%q", sessions.GetString(r.Context(), "user"))
	})
	srv := httptest.NewTLSServer(sessions.LoadAndSave(mux))
	defer srv.Close()
	laptop, phone := newClient(srv), newClient(srv)
	laptop("GET", "/login")
	phone("GET", "/login")
	laptop("GET", "/logout-everywhere")
	laptop("GET", "/")
	phone("GET", "/")
	// Output:
	// GET /login: ok (Set-Cookie: true)
	// GET /login: ok (Set-Cookie: true)
	// GET /logout-everywhere: ok (Set-Cookie: true)
	// GET /: user="ada" (Set-Cookie: false)
	// GET /: user="" (Set-Cookie: false)
}

// Load and Commit carry the session in a header instead of a cookie, for
// an API client or a websocket handshake.
func ExampleManager_Load() {
	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := sessions.Load(r.Context(), r.Header.Get("X-Session"))
		if err != nil {
			http.Error(w, http.StatusText(500), 500)
			return
		}
		n := sessions.GetInt(ctx, "calls") + 1
		sessions.Put(ctx, "calls", n)
		if sessions.Status(ctx) == session.Modified {
			token, _, err := sessions.Commit(ctx)
			if err != nil {
				http.Error(w, http.StatusText(500), 500)
				return
			}
			w.Header().Set("X-Session", token)
		}
		fmt.Fprintf(w, "call %d", n)
	})
	srv := httptest.NewServer(api)
	defer srv.Close()

	var token string
	for range 3 {
		req, _ := http.NewRequest("POST", srv.URL, nil)
		req.Header.Set("X-Session", token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		token = res.Header.Get("X-Session")
		fmt.Println(string(body))
	}
	// Output:
	// call 1
	// call 2
	// call 3
}
