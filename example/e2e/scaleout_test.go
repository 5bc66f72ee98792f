package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"image"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// TestScaleOut drives the cluster through nginx as one user would, checking
// that no instance is special: sessions, read-your-writes and thumbnails
// work whichever instance serves each request, and survive a secret
// rotation rolled across the instances.
func TestScaleOut(t *testing.T) {
	s := need(t)
	name := randomName("alice")
	u := newUser(t, s.URL)
	timed := func(step string, f func(t *testing.T)) {
		start := time.Now()
		t.Run(step, f)
		t.Logf("timing: %-28s %v", step, time.Since(start).Round(time.Millisecond))
	}

	timed("login_everywhere", func(t *testing.T) {
		u.t = t
		u.login(name)
		seen := map[string]int{}
		for i := range 6 {
			r := u.get("/notes")
			inst := r.Header.Get("X-Instance")
			seen[inst]++
			if r.StatusCode != http.StatusOK || !strings.Contains(r.body, greeting(name)) {
				t.Fatalf("request %d to %s: got %s, logged in %v; want 200 and logged in", i, inst, r.Status, strings.Contains(r.body, greeting(name)))
			}
			if cc := r.Header.Get("Cache-Control"); cc != "private, no-store" {
				t.Errorf("/notes Cache-Control: got %q, want %q", cc, "private, no-store")
			}
		}
		if len(seen) != 3 {
			t.Fatalf("6 requests reached instances %v, want all 3", seen)
		}
	})

	timed("read_your_writes_50x", func(t *testing.T) {
		u.t = t
		replica, err := s.PG.Replicas()[0].Open()
		if err != nil {
			t.Fatal(err)
		}
		defer replica.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.PG.WaitReplayed(ctx, s.PG.Replicas()[0]); err != nil { // the schema, at least
			t.Fatal(err)
		}
		lagged := 0
		for i := range 50 {
			text := fmt.Sprintf("note %d %s", i, randomName("n"))
			r := u.post("/notes", url.Values{"text": {text}})
			if r.StatusCode != http.StatusSeeOther {
				t.Fatalf("round %d: POST /notes: got %s, want 303; body %.300s", i, r.Status, r.body)
			}
			r = u.get("/notes")
			if r.StatusCode != http.StatusOK || !strings.Contains(r.body, html.EscapeString(text)) {
				t.Fatalf("round %d: GET /notes from %s (read from %s): got %s without the note just written",
					i, r.Header.Get("X-Instance"), r.Header.Get("X-Read-From"), r.Status)
			}
			// The replica really is behind: without the pin this read
			// would have missed the note.
			var n int
			if err := replica.QueryRow("SELECT count(*) FROM notes WHERE body = $1", text).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				lagged++
			}
		}
		t.Logf("the replica did not have the note yet when it was read back in %d of 50 rounds", lagged)
		if lagged == 0 {
			t.Fatalf("the replica never lagged: the test cannot tell pinning from no pinning")
		}
	})

	timed("thumbnail_every_instance", func(t *testing.T) {
		u.t = t
		r := u.upload("sunset.jpg", testJPEG(t, 1200, 800, 40))
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("upload: got %s, want 303; body %.500s", r.Status, r.body)
		}
		r = u.get("/photos")
		m := regexp.MustCompile(`<img src="(/thumbs/[^"]+)"`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("no thumbnail on /photos (from %s): %.1000s", r.Header.Get("X-Instance"), r.body)
		}
		thumb := html.UnescapeString(m[1])
		etags := map[string]string{}
		for _, in := range s.Instances {
			d := newUser(t, "http://"+in.Addr)
			r := d.get(thumb)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: got %s, want 200: %s", in.Name, thumb, r.Status, r.body)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader([]byte(r.body)))
			if err != nil || cfg.Width > 320 || cfg.Height > 240 || cfg.Width == 0 {
				t.Fatalf("%s: thumbnail is %s %dx%d (%v), want an image within 320x240", in.Name, format, cfg.Width, cfg.Height, err)
			}
			etags[in.Name] = r.Header.Get("ETag")
		}
		first := etags[s.Instances[0].Name]
		for n, e := range etags {
			if e == "" || e != first {
				t.Fatalf("ETags differ or are missing: %v", etags)
			}
			_ = n
		}
		// And a revalidation through nginx, whichever instance it reaches.
		req, _ := http.NewRequest("GET", s.URL+thumb, nil)
		req.Header.Set("If-None-Match", first)
		if r := u.do(req); r.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match through nginx: got %s, want 304", r.Status)
		}
	})

	timed("bad_uploads", func(t *testing.T) {
		u.t = t
		for _, tc := range []struct {
			name, file string
			data       []byte
			status     int
			msg        string
		}{
			{"html named jpg", "evil.jpg", []byte("<html><script>alert(1)</script></html>"), http.StatusUnsupportedMediaType, "is not a JPEG, PNG, GIF or WebP image"},
			{"no file", "", nil, http.StatusBadRequest, "Choose a photo to upload"},
			{"too large", "big.jpg", bytes.Repeat([]byte{0xff}, 11<<20), http.StatusRequestEntityTooLarge, "too large"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u.t = t
				r := u.upload(tc.file, tc.data)
				if r.StatusCode != tc.status || !strings.Contains(r.body, tc.msg) {
					t.Errorf("got %s with body %.300q; want %d saying %q", r.Status, r.body, tc.status, tc.msg)
				}
			})
		}
	})

	timed("public_home_never_personal", func(t *testing.T) {
		u.t = t
		for range 3 { // the logged-in user fills every instance's cache
			if r := u.get("/"); r.StatusCode != http.StatusOK || strings.Contains(r.body, name) {
				t.Fatalf("GET / as %s from %s: got %s, mentions the user %v; want 200 and public content",
					name, r.Header.Get("X-Instance"), r.Status, strings.Contains(r.body, name))
			}
		}
		anon := newUser(t, s.URL)
		hits := 0
		for range 6 {
			r := anon.get("/")
			if r.StatusCode != http.StatusOK || strings.Contains(r.body, name) || strings.Contains(r.body, "Hello,") {
				t.Fatalf("anonymous GET / from %s (X-Cache %q) shows another user's name", r.Header.Get("X-Instance"), r.Header.Get("X-Cache"))
			}
			if r.Header.Get("X-Cache") == "HIT" {
				hits++
			}
			if len(r.Header.Values("Set-Cookie")) > 0 {
				t.Errorf("GET / set cookies %q, want none on the public page", r.Header.Values("Set-Cookie"))
			}
		}
		t.Logf("%d of 6 anonymous GET / were cache hits", hits)
		if hits < 3 { // two requests per instance, well within max-age=300
			t.Errorf("%d of 6 anonymous GET / were cache hits, want at least 3", hits)
		}
	})

	timed("instance_killed", func(t *testing.T) {
		u.t = t
		victim := s.Instances[1]
		victim.Kill()
		for i := range 6 {
			r := u.get("/notes")
			if r.StatusCode != http.StatusOK || !strings.Contains(r.body, greeting(name)) || r.Header.Get("X-Instance") == victim.Name {
				t.Fatalf("request %d with %s dead: got %s from %s, want 200 logged in from another instance", i, victim.Name, r.Status, r.Header.Get("X-Instance"))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := victim.Start(ctx); err != nil {
			t.Fatal(err)
		}
	})

	timed("primary_down_clean_503", func(t *testing.T) {
		u.t = t
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Everything written so far is on the replica.
		if err := s.PG.WaitReplayed(ctx, s.PG.Replicas()[0]); err != nil {
			t.Fatal(err)
		}
		if err := s.PG.Primary().Stop(); err != nil {
			t.Fatal(err)
		}
		restarted := false
		defer func() {
			if !restarted {
				s.PG.Primary().Start(ctx)
			}
		}()
		for range 3 { // whichever instance serves it
			r := u.post("/notes", url.Values{"text": {"written while the primary is down"}})
			if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" ||
				!strings.Contains(r.body, "nothing was saved") || strings.Contains(r.body, "goroutine") {
				t.Fatalf("POST /notes with the primary down (%s): got %s, Retry-After %q, body %.400q; want a clean 503 page",
					r.Header.Get("X-Instance"), r.Status, r.Header.Get("Retry-After"), r.body)
			}
		}
		// A visitor who has not written reads from the replica.
		if r := newUser(t, s.URL).get("/"); r.StatusCode != http.StatusOK {
			t.Errorf("GET / with the primary down: got %s, want 200 from the replica", r.Status)
		}
		// So does the user whose writes just failed, once the replica has
		// replayed their earlier, successful writes: the failed ones did
		// not pin them to the primary that is down.
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			r := u.get("/notes")
			if r.StatusCode == http.StatusOK && strings.HasPrefix(r.Header.Get("X-Read-From"), "replica-") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /notes by the user whose writes failed, primary down: still %s from %q after 10 s, want 200 from a replica",
					r.Status, r.Header.Get("X-Read-From"))
			}
			<-tick.C
		}
		if err := s.PG.Primary().Start(ctx); err != nil {
			t.Fatal(err)
		}
		restarted = true
		if r := u.post("/notes", url.Values{"text": {"written after the primary came back"}}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /notes after the primary restarted: got %s, want 303", r.Status)
		}
	})

	timed("secret_rotation_rolled", func(t *testing.T) {
		u.t = t
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		old, next := s.Secret, randomName(strings.Repeat("rotated", 5))
		oldCookies := u.jar.Cookies(mustURL(t, s.URL))
		check := func(when string) {
			t.Helper()
			// Read-your-writes holds across instances on different
			// secrets: the note written through one instance is read back
			// through the next three.
			text := randomName("rotating")
			if r := u.post("/notes", url.Values{"text": {text}}); r.StatusCode != http.StatusSeeOther {
				t.Fatalf("%s: POST /notes: got %s, want 303", when, r.Status)
			}
			for range 3 {
				if r := u.get("/notes"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, text) {
					t.Fatalf("%s: GET /notes from %s (read from %s): got %s without the note just written",
						when, r.Header.Get("X-Instance"), r.Header.Get("X-Read-From"), r.Status)
				}
			}
			seen := map[string]bool{}
			for i := 0; i < 6 && len(seen) < 3; i++ {
				r := u.get("/photos")
				seen[r.Header.Get("X-Instance")] = true
				if r.StatusCode != http.StatusOK || !strings.Contains(r.body, greeting(name)) {
					t.Fatalf("%s: GET /photos from %s: got %s, logged in %v; want 200 and still logged in",
						when, r.Header.Get("X-Instance"), r.Status, strings.Contains(r.body, greeting(name)))
				}
				// Thumbnails linked from any instance's page load on every
				// instance, whatever secret it is on.
				m := regexp.MustCompile(`<img src="(/thumbs/[^"]+)"`).FindStringSubmatch(r.body)
				if m == nil {
					t.Fatalf("%s: no thumbnail on /photos", when)
				}
				page := r.Header.Get("X-Instance")
				for _, in := range s.Instances {
					if r := newUser(t, "http://"+in.Addr).get(html.UnescapeString(m[1])); r.StatusCode != http.StatusOK {
						t.Fatalf("%s: thumbnail linked by %s's page, on %s: got %s, want 200: %s", when, page, in.Name, r.Status, r.body)
					}
				}
			}
			if len(seen) != 3 {
				t.Fatalf("%s: requests reached %v, want all 3 instances", when, seen)
			}
		}
		phases := []struct {
			what string
			args []string
		}{
			{"accept the new secret", []string{"-secret", old, "-accept-secret", next}},
			{"seal with the new secret", []string{"-secret", next, "-accept-secret", old}},
			{"drop the old secret", []string{"-secret", next}},
		}
		for p, ph := range phases {
			for i, in := range s.Instances {
				if err := in.Restart(ctx, ph.args); err != nil {
					t.Fatal(err)
				}
				when := fmt.Sprintf("%s, after restarting %s", ph.what, in.Name)
				check(when)
				if p == 1 {
					// The one phase where instances seal with different
					// secrets: a note written on this instance, read back
					// at once on each one not yet restarted.
					for _, other := range s.Instances[i+1:] {
						writer := newUser(t, "http://"+in.Addr)
						writer.login(randomName("pinned"))
						text := randomName("across-secrets")
						if r := writer.post("/notes", url.Values{"text": {text}}); r.StatusCode != http.StatusSeeOther {
							t.Fatalf("%s: POST /notes on %s: got %s, want 303", when, in.Name, r.Status)
						}
						reader := &user{t: t, base: "http://" + other.Addr, c: writer.c, jar: writer.jar}
						if r := reader.get("/notes"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, text) {
							t.Fatalf("%s: note written on %s (new secret), read on %s (old secret) from %s: got %s without it",
								when, in.Name, other.Name, r.Header.Get("X-Read-From"), r.Status)
						}
					}
				}
			}
		}
		s.Secret = next

		// The old cookies no longer open a session: the secret really
		// changed, so the checks above could have failed.
		stale := newUser(t, s.URL)
		stale.jar.SetCookies(mustURL(t, s.URL), oldCookies)
		if r := stale.get("/notes"); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("a cookie sealed with the dropped secret: got %s, want 303 to /login", r.Status)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
