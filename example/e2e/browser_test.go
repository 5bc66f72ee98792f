package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (or another Chrome) for chromedp.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where screenshots go: $E2E_ARTIFACTS, or a directory under
// os.TempDir().
func artifactDir(t *testing.T) string {
	dir := os.Getenv("E2E_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "sharednothing-e2e")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser uses the app through nginx in headless Chromium as a person
// would: log in through the form, post a note and see it, upload photos and
// see their thumbnails rendered, log out. On the way it checks the security
// headers the browser received, and that a copy of the session cookie taken
// before the logout is refused after it. It saves a screenshot of the
// gallery.
func TestBrowser(t *testing.T) {
	s := need(t)
	exe := chromiumPath()
	if exe == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found (apt-get install -y chromium)")
		}
		t.Skip("chromium not found (apt-get install -y chromium)")
	}
	start := time.Now()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelCtx()
	// The first run starts the browser; it must not have a deadline of its
	// own (that would stop the browser), so the deadline comes after it.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	// Photos to upload, as files the file input can pick.
	dir := t.TempDir()
	var files []string
	for i, hue := range []int{20, 140, 220} {
		f := filepath.Join(dir, []string{"harbour.jpg", "meadow.jpg", "dusk.jpg"}[i])
		if err := os.WriteFile(f, testJPEG(t, 1200+200*i, 800, hue), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	name := randomName("browser")
	note := "Bought film for the " + randomName("trip")

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		st := time.Now()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("timing: browser %-24s %v", what, time.Since(st).Round(time.Millisecond))
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("text of #%s: %v", id, err)
		}
		return s
	}

	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(artifactDir(t), name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}

	step("log in",
		chromedp.Navigate(s.URL+"/login"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("greeting")),
	)
	if text := text("greeting"); !strings.Contains(text, greeting(name)) {
		t.Fatalf("after logging in the header says %q, want %q", text, greeting(name))
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.URL+"/notes"))
	if err != nil {
		t.Fatalf("load /notes: %v", err)
	}
	header := func(name string) string {
		for k, v := range resp.Headers {
			if strings.EqualFold(k, name) {
				s, _ := v.(string)
				return s
			}
		}
		return ""
	}
	if csp := header("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("the notes page came with Content-Security-Policy %q, want default-src 'none' and frame-ancestors 'none'", csp)
	}
	if xfo := header("X-Frame-Options"); xfo != "DENY" {
		t.Errorf("the notes page came with X-Frame-Options %q, want DENY", xfo)
	}
	// The stylesheet loaded under that policy: the header is dark blue.
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('header')).backgroundColor`))
	if err != nil || bg != "rgb(34, 51, 68)" {
		t.Errorf("header background %q (%v): the stylesheet did not load under the CSP", bg, err)
	}

	step("post a note",
		chromedp.WaitVisible(chromedp.ID("text")),
		chromedp.SendKeys(chromedp.ID("text"), note),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("notes")),
	)
	if text := text("notes"); !strings.Contains(text, note) {
		t.Fatalf("the notes list says %q, want it to contain %q", text, note)
	}
	// The replica lags by a second, so the list just shown came from the
	// primary, and the page says so.
	if from := text("read-from"); from != "primary" {
		t.Fatalf("right after writing, the notes were read from %q, want the primary", from)
	}
	shoot("notes.png")

	for _, f := range files {
		step("upload "+filepath.Base(f),
			chromedp.Navigate(s.URL+"/photos"),
			chromedp.WaitVisible(chromedp.ID("photo")),
			chromedp.SetUploadFiles(chromedp.ID("photo"), []string{f}),
			chromedp.Click(chromedp.ID("upload")),
			chromedp.WaitVisible(chromedp.ID("flash")),
		)
		if text := text("flash"); text != "Photo uploaded." {
			t.Fatalf("after uploading %s the page says %q", filepath.Base(f), text)
		}
	}
	// Every thumbnail has loaded and decoded: naturalWidth > 0.
	st := time.Now()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
			const imgs = [...document.querySelectorAll('#gallery img')];
			return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0);
		})()`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("waiting for 3 rendered thumbnails: %v", err)
	}
	t.Logf("timing: browser %-24s %v", "thumbnails rendered", time.Since(st).Round(time.Millisecond))
	widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[...document.querySelectorAll('#gallery img')].map(i => i.naturalWidth)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range widths {
		if w <= 0 || w > 320 {
			t.Fatalf("thumbnail naturalWidths %v, want each in 1..320", widths)
		}
	}

	shoot("gallery.png")
	t.Logf("thumbnail widths %v", widths)

	// What a thief would copy: the session cookie, before the logout.
	jar, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.URL}})
	if err != nil {
		t.Fatal(err)
	}
	var stolen *network.Cookie
	for _, c := range jar.Cookies {
		if strings.HasSuffix(c.Name, "session") {
			stolen = c
		}
	}
	if stolen == nil {
		t.Fatalf("no session cookie in the browser: %v", jar.Cookies)
	}

	step("log out",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/login"]`)),
		chromedp.Navigate(s.URL+"/notes"),
		chromedp.WaitVisible(chromedp.ID("name")), // sent back to the login form
	)
	greetings, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#greeting').length`))
	if err != nil {
		t.Fatal(err)
	}
	if greetings != 0 {
		t.Fatal("still greeted after logging out")
	}

	// Put the copied cookie back and load /notes: refused (sent to the
	// login form) on every instance; the logout reaches the other instances
	// over the invalidation bus, and at the latest when their 2 s cache of
	// logout times expires.
	replayed := func() bool {
		t.Helper()
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: stolen.Name, Value: stolen.Value, URL: s.URL + "/"}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/notes"), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
			t.Fatal(err)
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#greeting').length`))
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	st = time.Now()
	refusals := 0
	for refusals < 3 { // three in a row: round-robin reaches every instance
		if replayed() {
			refusals = 0
			if time.Since(st) > 2500*time.Millisecond {
				t.Fatalf("a session cookie copied before the logout still works %v after it", time.Since(st).Round(time.Millisecond))
			}
			continue
		}
		refusals++
	}
	t.Logf("timing: browser %-24s %v", "replayed cookie refused", time.Since(st).Round(time.Millisecond))
	t.Logf("timing: browser test total %v", time.Since(start).Round(time.Millisecond))
}
