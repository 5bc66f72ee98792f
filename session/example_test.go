package session_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/session"
)

func ExampleManager_LoadAndSave() {
	secret := []byte("load me from the environment, 32+ bytes")
	sessions := session.New(
		sharednothing.DeriveKey(secret, "session hash"),
		sharednothing.DeriveKey(secret, "session block"),
	)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sessions.RenewToken(ctx) // new session ID at login
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
	client := srv.Client()
	client.Jar, _ = cookiejar.New(nil)

	show := func(res *http.Response, err error) {
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s (Set-Cookie: %v)\n", body, res.Header.Get("Set-Cookie") != "")
	}
	show(client.Post(srv.URL+"/login", "", nil)) // follows the redirect to /
	show(client.Get(srv.URL + "/"))
	show(client.Get(srv.URL + "/health"))
	show(client.Post(srv.URL+"/logout", "", nil))
	// Output:
	// user="ada" flash="Welcome back!" (Set-Cookie: true)
	// user="ada" flash="" (Set-Cookie: false)
	// ok (Set-Cookie: false)
	// user="" flash="" (Set-Cookie: false)
}
