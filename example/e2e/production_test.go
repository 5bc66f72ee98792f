package e2e

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecurityHeaders checks that every kind of response (public page,
// form, personal page, stylesheet, thumbnail, error) carries the headers
// that keep the site out of frames and scripts out of its pages.
func TestSecurityHeaders(t *testing.T) {
	s := need(t)
	u := newUser(t, s.URL)
	u.login(randomName("headers"))
	for _, path := range []string{"/", "/login", "/notes", "/photos", "/style.css", "/no-such-page", "/thumbs/bogus"} {
		r := u.get(path)
		csp := r.Header.Get("Content-Security-Policy")
		for _, want := range []string{"frame-ancestors 'none'", "default-src 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s (%s): Content-Security-Policy %q lacks %q", path, r.Status, csp, want)
			}
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("GET %s (%s): %s %q, want %q", path, r.Status, h, got, want)
			}
		}
	}
}

// TestLogoutRevokes copies a logged-in user's cookies (as a thief would),
// logs out, and replays the copy: the instance that served the logout
// refuses it at once, every other instance within a second — the logout is
// announced over the invalidation bus; without it, the instances would
// take up to the logout cache's 2 s TTL (this test then fails).
func TestLogoutRevokes(t *testing.T) {
	s := need(t)
	name := randomName("revoked")
	u := newUser(t, s.URL)
	u.login(name)
	if r := u.get("/notes"); !strings.Contains(r.body, greeting(name)) {
		t.Fatalf("not logged in after login: %s", r.Status)
	}
	stolen := u.jar.Cookies(mustURL(t, s.URL))
	replay := func(base string) response {
		thief := newUser(t, base)
		thief.jar.SetCookies(mustURL(t, base), stolen)
		return thief.get("/notes")
	}
	// Before the logout the copy works on every instance: the refusals
	// below are the logout's doing.
	for _, in := range s.Instances {
		if r := replay("http://" + in.Addr); r.StatusCode != http.StatusOK || !strings.Contains(r.body, greeting(name)) {
			t.Fatalf("copied cookie on %s before logout: got %s, want 200 logged in", in.Name, r.Status)
		}
	}
	r := u.post("/logout", nil)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout: got %s, want 303", r.Status)
	}
	served := r.Header.Get("X-Instance")
	for _, in := range s.Instances {
		if in.Name != served {
			continue
		}
		if r := replay("http://" + in.Addr); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
			t.Fatalf("copied cookie replayed on %s, which served the logout: got %s, want 303 to /login at once", in.Name, r.Status)
		}
	}
	deadline := time.Now().Add(time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, in := range s.Instances {
		for {
			r := replay("http://" + in.Addr)
			if r.StatusCode == http.StatusSeeOther && r.Header.Get("Location") == "/login" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("copied cookie replayed on %s 1 s after the logout: got %s, want 303 to /login (is the bus delivering?)", in.Name, r.Status)
			}
			<-tick.C
		}
	}
	// The user can log in again, and that new session is valid everywhere.
	u2 := newUser(t, s.URL)
	u2.login(name)
	for range 3 {
		if r := u2.get("/notes"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, greeting(name)) {
			t.Fatalf("logging in again after logout: GET /notes from %s got %s, want 200 logged in", r.Header.Get("X-Instance"), r.Status)
		}
	}
}

// TestIdempotentPost sends the same note form twice (a retry after a lost
// response), through different instances: both answers say saved, the
// second is marked as a replay, and the note is stored once. The same key
// from another user is a different write.
func TestIdempotentPost(t *testing.T) {
	s := need(t)
	u := newUser(t, s.URL)
	name := randomName("retry")
	u.login(name)
	key := strings.ReplaceAll(randomName("key-0123456789"), "-", "")
	text := randomName("once")
	var insts []string
	for i, in := range s.Instances[:2] {
		d := &user{t: t, base: "http://" + in.Addr, c: u.c, jar: u.jar}
		r := d.post("/notes", url.Values{"text": {text}, "key": {key}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/notes" {
			t.Fatalf("attempt %d on %s: got %s to %q, want 303 to /notes", i+1, in.Name, r.Status, r.Header.Get("Location"))
		}
		if got, want := r.Header.Get("Idempotent-Replayed"), []string{"", "true"}[i]; got != want {
			t.Errorf("attempt %d: Idempotent-Replayed %q, want %q", i+1, got, want)
		}
		insts = append(insts, in.Name)
	}
	other := newUser(t, s.URL)
	other.login(randomName("other"))
	if r := other.post("/notes", url.Values{"text": {text}, "key": {key}}); r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another user's write with the same key was taken for a replay")
	}
	db := openPrimary(t)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM notes WHERE owner = $1 AND body = $2", name, text).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the note sent twice (on %v) with one key is stored %d times, want once", insts, n)
	}
	// The form carries a fresh key each time it is shown.
	k1, k2 := formKeyOf(t, u.get("/notes").body), formKeyOf(t, u.get("/notes").body)
	if k1 == "" || k1 == k2 {
		t.Errorf("form keys %q and %q: want two different, non-empty keys", k1, k2)
	}
}

func formKeyOf(t *testing.T, body string) string {
	t.Helper()
	const marker = `name="key" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		return ""
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func openPrimary(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", cluster.PG.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestDrain sends SIGTERM to an instance and checks what a load balancer
// sees while it drains: /healthz fails, responses still come but close
// their connection, and then the process exits by itself.
func TestDrain(t *testing.T) {
	s := need(t)
	in := s.Instances[2]
	if err := in.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer func() {
		in.Wait()
		if err := in.Start(ctx); err != nil {
			t.Fatalf("restart %s: %v", in.Name, err)
		}
	}()
	// The signal is handled asynchronously: poll, well within the drain.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for start := time.Now(); ; <-tick.C {
		h, err := in.Health(ctx)
		if err == nil && h.Draining {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("%s /healthz 1 s after SIGTERM: %+v, %v; want 503 draining", in.Name, h, err)
		}
	}
	// Page reads are dropped unanswered (nginx retries them elsewhere and
	// counts the failure against the instance); writes are still served;
	// every response closes its connection.
	if resp, err := http.Get("http://" + in.Addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET / while draining: got %s, want the connection closed without an answer", resp.Status)
	}
	d := newUser(t, "http://"+in.Addr)
	d.login(randomName("draining"))
	if r := d.post("/notes", url.Values{"text": {"written while draining"}}); r.StatusCode != http.StatusSeeOther || !r.Close {
		t.Fatalf("POST /notes while draining: got %s, connection close %v; want 303 and Connection: close", r.Status, r.Close)
	}
	// Through nginx nothing fails meanwhile.
	u := newUser(t, s.URL)
	for range 6 {
		if r := u.get("/"); r.StatusCode != http.StatusOK || r.Header.Get("X-Instance") == in.Name {
			t.Fatalf("GET / through nginx while %s drains: got %s from %s, want 200 from another instance", in.Name, r.Status, r.Header.Get("X-Instance"))
		}
	}
}
