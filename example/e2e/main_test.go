package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/example/internal/pgcluster"
	"github.com/sharednothing/sharednothing/example/internal/stack"
)

// The one cluster every test in the package drives, started by TestMain as
// make cluster starts it: replica lag 1 s, three instances, nginx.
var (
	cluster    *stack.Stack
	clusterErr error
	startTook  time.Duration
)

const replicaDelay = time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute) // a cold build cache compiles SQLite
	start := time.Now()
	// A longer drain than the default, so TestDrain can look at a draining
	// instance on a slow machine.
	cluster, clusterErr = stack.Start(ctx, stack.Options{Instances: 3, ReplicaDelay: replicaDelay, Drain: 5 * time.Second})
	startTook = time.Since(start)
	cancel()
	if clusterErr == nil {
		fmt.Fprintf(os.Stderr, "e2e: cluster up in %v (build + PostgreSQL + 3 instances + nginx) at %s\n", startTook.Round(time.Millisecond), cluster.URL)
		defer cluster.Close()
	} else {
		fmt.Fprintln(os.Stderr, "e2e: cannot start the cluster:", clusterErr)
	}
	return m.Run()
}

// need returns the cluster, or fails the test (skips it outside CI when a
// tool is simply not installed).
func need(t *testing.T) *stack.Stack {
	t.Helper()
	if clusterErr != nil {
		missing := errors.Is(clusterErr, pgcluster.ErrNoPostgres) || errors.Is(clusterErr, stack.ErrNoNginx)
		if missing && os.Getenv("CI") != "true" {
			t.Skip(clusterErr)
		}
		t.Fatal(clusterErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster logs:\n%s", cluster.Logs())
		}
	})
	return cluster
}

// user is one simulated visitor: a cookie jar and a client that does not
// follow redirects, so every response can be checked.
type user struct {
	t    *testing.T
	base string
	c    *http.Client
	jar  *cookiejar.Jar
}

func newUser(t *testing.T, base string) *user {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &user{t: t, base: base, jar: jar, c: &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is a finished response with its body read.
type response struct {
	*http.Response
	body string
}

func (u *user) do(req *http.Request) response {
	u.t.Helper()
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		u.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{resp, string(b)}
}

func (u *user) get(path string) response {
	u.t.Helper()
	req, err := http.NewRequest("GET", u.base+path, nil)
	if err != nil {
		u.t.Fatal(err)
	}
	return u.do(req)
}

func (u *user) post(path string, form url.Values) response {
	u.t.Helper()
	req, err := http.NewRequest("POST", u.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return u.do(req)
}

// upload posts a multipart form with file under field "photo".
func (u *user) upload(filename string, data []byte) response {
	u.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if data != nil {
		fw, err := mw.CreateFormFile("photo", filename)
		if err != nil {
			u.t.Fatal(err)
		}
		fw.Write(data)
	}
	mw.WriteField("title", "test "+filename)
	mw.Close()
	req, err := http.NewRequest("POST", u.base+"/photos", &body)
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return u.do(req)
}

// login logs in as name and checks the redirect.
func (u *user) login(name string) {
	u.t.Helper()
	r := u.post("/login", url.Values{"name": {name}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/notes" {
		u.t.Fatalf("POST /login: got %s Location %q, want 303 to /notes; body: %.300s", r.Status, r.Header.Get("Location"), r.body)
	}
}

// greeting is what the header shows a logged-in user.
func greeting(name string) string { return "Hello, " + name }

// testJPEG draws a w×h JPEG: a colour gradient with a few discs, so that a
// thumbnail of it is recognisable in a screenshot.
func testJPEG(t testing.TB, w, h int, hue int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((hue + x/4 + y/4) % 256), 255}
			for i, d := range [][3]int{{w / 4, h / 3, h / 5}, {w / 2, h / 2, h / 4}, {3 * w / 4, 2 * h / 3, h / 6}} {
				if dx, dy := x-d[0], y-d[1]; dx*dx+dy*dy < d[2]*d[2] {
					c = color.RGBA{uint8(255 - 60*i), uint8(200 - hue%150), uint8(60 * i), 255}
				}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
