//go:build faults

package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// user is one simulated visitor with its own cookie jar.
type user struct {
	name   string
	base   string
	client *http.Client
	writer bool // posts notes; readers only browse

	mu    sync.Mutex
	acked []string // notes the app confirmed with a 303
	thumb string   // a thumbnail URL seen on the user's gallery
}

func newUser(base, name string, writer bool) *user {
	jar, _ := cookiejar.New(nil)
	return &user{
		name: name, base: base, writer: writer,
		client: &http.Client{
			Jar:     jar,
			Timeout: 15 * time.Second,
			// Redirects are requests of their own: measured and checked.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 4},
		},
	}
}

// do sends one request, records it in w and returns status and body.
// status 0 means a transport error (timeout, reset).
func (u *user) do(ctx context.Context, w *window, method, path string, body io.Reader, ctype string) (int, string) {
	st, b, _ := u.doLoc(ctx, w, method, path, body, ctype)
	return st, b
}

// doLoc is do that also returns the Location header.
func (u *user) doLoc(ctx context.Context, w *window, method, path string, body io.Reader, ctype string) (int, string, string) {
	st, b, h := u.doHeader(ctx, w, method, path, body, ctype)
	return st, b, h.Get("Location")
}

// doHeader is do that also returns the response header.
func (u *user) doHeader(ctx context.Context, w *window, method, path string, body io.Reader, ctype string) (int, string, http.Header) {
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, body)
	if err != nil {
		panic(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	start := time.Now()
	res, err := u.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, "", nil // the window ended: not a result
		}
		w.record(0, time.Since(start))
		w.note("%s %s %s: %v", u.name, method, path, err)
		return 0, "", http.Header{}
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	w.record(res.StatusCode, d)
	if method == "POST" {
		w.post(d)
	}
	if res.StatusCode >= 500 {
		checkCleanError(w, u.name, method, path, res, string(b), d)
	}
	return res.StatusCode, string(b), res.Header
}

// postNote posts a note as a browser form does, with an idempotency key,
// and, like a person who saw "may or may not have been saved", sends the
// same form again after a 503 or a broken connection (up to 5 attempts). It
// returns the final status and Location.
func (u *user) postNote(ctx context.Context, w *window, text string) (int, string) {
	form := url.Values{"text": {text}, "key": {randHex(16)}}.Encode()
	for attempt := 1; ; attempt++ {
		st, _, h := u.doHeader(ctx, w, "POST", "/notes", strings.NewReader(form), "application/x-www-form-urlencoded")
		if st == http.StatusSeeOther {
			if attempt > 1 {
				w.add(&w.retriedOK, 1)
			}
			if h.Get("Idempotent-Replayed") == "true" {
				w.add(&w.replayed, 1)
				w.note("%s: a retried note had been saved by the first attempt; not saved twice", u.name)
			}
			return st, h.Get("Location")
		}
		if (st != http.StatusServiceUnavailable && st != 0) || attempt == 5 {
			return st, h.Get("Location")
		}
		w.add(&w.retries, 1)
		wait(ctx, 300*time.Millisecond) // the user reads the message, clicks again
		if ctx.Err() != nil {
			return -1, ""
		}
	}
}

// checkCleanError notes a 5xx that is not a clean, quick 503.
func checkCleanError(w *window, who, method, path string, res *http.Response, body string, d time.Duration) {
	switch {
	case res.StatusCode != http.StatusServiceUnavailable:
		w.note("%s %s %s: %d (want only clean 503s): %.120q", who, method, path, res.StatusCode, body)
	case strings.Contains(body, "goroutine ") || strings.Contains(body, "panic"):
		w.add(&w.unclean, 1)
		w.note("%s %s %s: 503 with a stack trace", who, method, path)
	default:
		p, _, _ := strings.Cut(path, "?")
		if strings.HasPrefix(p, "/thumbs/") {
			p = "/thumbs/…"
		}
		w.noteKind(method+p+"503", "%s %s: 503 %q", method, p, pageText(body))
	}
	if res.StatusCode == http.StatusServiceUnavailable && d > 6*time.Second {
		w.add(&w.unclean, 1)
		w.note("%s %s %s: 503 after %v (a hang, not a quick refusal)", who, method, path, d)
	}
}

func (u *user) login(ctx context.Context, w *window) error {
	st, _ := u.do(ctx, w, "POST", "/login", strings.NewReader(url.Values{"name": {u.name}}.Encode()), "application/x-www-form-urlencoded")
	if st != http.StatusSeeOther {
		return fmt.Errorf("%s: login got %d", u.name, st)
	}
	return nil
}

// loggedIn tells from a page whether it greets u.
func (u *user) greeted(body string) bool {
	return strings.Contains(body, `id="greeting">Hello, `+u.name)
}

// checkPage classifies a response to a logged-in-only page.
func (u *user) checkPage(w *window, status int, body string) {
	switch {
	case status == http.StatusSeeOther:
		// requireUser redirects a visitor without a session to /login.
		w.add(&w.loggedOut, 1)
		w.note("%s was logged out", u.name)
	case status == http.StatusOK && !u.greeted(body):
		w.add(&w.loggedOut, 1)
		w.note("%s got a page that does not greet them", u.name)
	}
}

var (
	tagRE   = regexp.MustCompile(`(?s)<head>.*</head>|<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// pageText is a body's visible text, shortened: what a user would read.
func pageText(body string) string {
	t := strings.TrimSpace(spaceRE.ReplaceAllString(tagRE.ReplaceAllString(body, " "), " "))
	if len(t) > 140 {
		t = t[:140] + "…"
	}
	return t
}

var thumbRE = regexp.MustCompile(`src="(/thumbs/[^"]+)"`)

// step is one round of a user's browsing.
func (u *user) step(ctx context.Context, w *window, i int) {
	u.do(ctx, w, "GET", "/", nil, "")
	if u.writer {
		text := fmt.Sprintf("%s note %s", u.name, randHex(6))
		st, loc := u.postNote(ctx, w, text)
		if st == http.StatusSeeOther && loc == "/login" {
			w.add(&w.loggedOut, 1)
			w.note("%s was logged out", u.name)
		}
		if st == http.StatusSeeOther && loc == "/notes" {
			u.mu.Lock()
			u.acked = append(u.acked, text)
			u.mu.Unlock()
			// Read it back at once: it must be there, whatever the replica.
			st, body := u.do(ctx, w, "GET", "/notes", nil, "")
			u.checkPage(w, st, body)
			if st == http.StatusOK && u.greeted(body) && !strings.Contains(body, text) {
				w.add(&w.stale, 1)
				w.note("%s: stale read, own note %q missing right after writing it", u.name, text)
			}
		}
	} else {
		st, body := u.do(ctx, w, "GET", "/notes", nil, "")
		u.checkPage(w, st, body)
	}
	if i%4 == 0 {
		st, body := u.do(ctx, w, "GET", "/photos", nil, "")
		u.checkPage(w, st, body)
		if m := thumbRE.FindStringSubmatch(body); m != nil {
			u.mu.Lock()
			u.thumb = strings.ReplaceAll(m[1], "&amp;", "&")
			u.mu.Unlock()
		}
	}
	u.mu.Lock()
	thumb := u.thumb
	u.mu.Unlock()
	if thumb != "" && i%2 == 1 {
		u.do(ctx, w, "GET", thumb, nil, "")
	}
}

// upload posts a small photo.
func (u *user) upload(ctx context.Context, w *window, img []byte) (int, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("photo", "photo.jpg")
	fw.Write(img)
	mw.WriteField("title", u.name+"'s photo")
	mw.Close()
	st, _, loc := u.doLoc(ctx, w, "POST", "/photos", &buf, mw.FormDataContentType())
	return st, loc
}

// run loops u's steps until ctx ends, pausing between steps like a person.
func (u *user) run(ctx context.Context, w *window, think time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; i < 100000; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u.step(ctx, w, i)
		t.Reset(think)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
