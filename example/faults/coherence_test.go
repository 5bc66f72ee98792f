//go:build faults

package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sharednothing/sharednothing/example/internal/stack"
)

// staleBound is the longest a cached home page or count may stay stale on
// any instance after a write, when the bus lost its connection around the
// write: the listener reconnects with backoff, capped at 1 s in the example
// (coherent.Options.MaxBackoff), once PostgreSQL accepts connections, then
// flushes every cache it governs. Connected, it is the delivery latency
// (milliseconds). The rest is margin for polling three instances on a
// loaded machine (page p99 up to 3 s in the primary-restart window).
const staleBound = 6 * time.Second

// prober is a user who uploads marked photos on one instance and watches,
// instance by instance, when the caches show them: the home page to a
// visitor without cookies, the photo count to the prober's session
// without its pin cookie (a reader the caches answer).
type prober struct {
	su     *suite
	name   string
	jar    *cookiejar.Jar
	client *http.Client
	photos int // how many photos the prober has: the count every instance must show
}

func (su *suite) newProber(ctx context.Context) *prober {
	jar, _ := cookiejar.New(nil)
	p := &prober{su: su, name: "probe-" + randHex(3), jar: jar, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	res, err := p.client.PostForm(su.s.URL+"/login", url.Values{"name": {p.name}})
	if err != nil {
		su.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		su.t.Fatalf("prober login: got %s", res.Status)
	}
	return p
}

// upload uploads a photo titled title through instance in, sending the same
// form again (same idempotency key) after a 503 for up to 30 s, as a user
// would while the primary comes back.
func (p *prober) upload(ctx context.Context, in *stack.Instance, title string) error {
	img := testJPEG(p.su.t, 32, 24)
	key := randHex(16)
	for {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("photo", "probe.jpg")
		fw.Write(img)
		mw.WriteField("title", title)
		mw.WriteField("key", key)
		mw.Close()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+in.Addr+"/photos", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		res, err := p.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusSeeOther && res.Header.Get("Location") == "/photos" {
				p.photos++
				return nil
			}
			err = fmt.Errorf("%s", res.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("upload on %s: %w", in.Name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var countRE = regexp.MustCompile(`<span id="photo-count">(\d+)</span>`)

// fresh reports whether instance in shows title on its home page to a
// visitor without cookies, and the prober's current count to its session
// without the pin.
func (p *prober) fresh(ctx context.Context, in *stack.Instance, title string) bool {
	get := func(path string, cookies bool) string {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+in.Addr+path, nil)
		if cookies {
			for _, c := range p.jar.Cookies(req.URL) {
				if c.Name != "_pin" {
					req.AddCookie(c)
				}
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if !strings.Contains(get("/", false), title) {
		return false
	}
	m := countRE.FindStringSubmatch(get("/photos", true))
	return m != nil && m[1] == strconv.Itoa(p.photos)
}

// probe uploads a marked photo through the first instance and returns how
// long after the upload's answer every instance's caches showed it (more
// than bound: they did not within bound).
func (p *prober) probe(ctx context.Context, bound time.Duration) (time.Duration, error) {
	title := "probe " + randHex(6)
	if err := p.upload(ctx, p.su.s.Instances[0], title); err != nil {
		return 0, err
	}
	start := time.Now()
	pending := map[*stack.Instance]bool{}
	for _, in := range p.su.s.Instances {
		pending[in] = true
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(pending) > 0 && time.Since(start) <= bound {
		for in := range pending {
			if p.fresh(ctx, in, title) {
				delete(pending, in)
			}
		}
		<-tick.C
	}
	return time.Since(start), nil
}

// busConnects sums the instances' bus connections and flushes so far, and
// says whether every bus is connected.
func (su *suite) busConnects(ctx context.Context) (connects, flushes uint64, connected bool) {
	connected = true
	for _, in := range su.s.Instances {
		h, err := in.Health(ctx)
		if err != nil || h.Bus == nil {
			return 0, 0, false
		}
		connects += h.Bus.Connects
		flushes += h.Bus.Flushes
		connected = connected && h.Bus.Connected
	}
	return connects, flushes, connected
}

// killListeners terminates every instance's LISTEN connection on the
// primary (pg_terminate_backend), three times under load, and right after
// each kill uploads a photo through one instance: its notification may be
// lost to the instances whose listener is down, which then flush their
// caches on reconnecting. No request may fail (the listener is not on the
// request path), and every instance's cached home page and count must show
// the upload within staleBound.
func (su *suite) killListeners(ctx context.Context, w *window) {
	defer su.allowOnly(w) // zero failed requests
	p := su.newProber(ctx)
	wait(ctx, time.Second)
	connects0, flushes0, _ := su.busConnects(ctx)
	var worst time.Duration
	for round := 1; round <= 3; round++ {
		var killed int
		if err := su.primary.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'").Scan(&killed); err != nil {
			su.t.Fatal(err)
		}
		took, err := p.probe(ctx, staleBound)
		if err != nil {
			su.t.Fatal(err)
		}
		worst = max(worst, took)
		w.note("round %d: %d LISTEN connections terminated; a photo uploaded right after was in every instance's cached home page and count %v after the upload's answer (bound %v)",
			round, killed, took.Round(time.Millisecond), staleBound)
		if killed < len(su.s.Instances) {
			su.t.Errorf("%s: terminated %d LISTEN connections, want one per instance (%d)", w.name, killed, len(su.s.Instances))
		}
		if took > staleBound {
			su.t.Errorf("%s, round %d: stale home page or count on some instance %v after the upload, bound %v", w.name, round, took, staleBound)
		}
		wait(ctx, 1500*time.Millisecond)
	}
	var connects, flushes uint64
	su.waitFor(ctx, "every instance's bus to be connected again", func() bool {
		var ok bool
		connects, flushes, ok = su.busConnects(ctx)
		return ok
	})
	w.note("buses reconnected %d times and flushed %d times in all (3 instances × 3 kills); slowest probe %v",
		connects-connects0, flushes-flushes0, worst.Round(time.Millisecond))
	if connects-connects0 < 3*uint64(len(su.s.Instances)) {
		su.t.Errorf("%s: the buses reconnected %d times, want at least %d", w.name, connects-connects0, 3*len(su.s.Instances))
	}
}

// restartPrimaryCoherence stops the primary (fast shutdown: every
// connection, the listeners' included, is closed), starts it again 2 s
// later, and uploads a photo through one instance as soon as it accepts the
// write: the other instances' listeners may still be waiting out their
// backoff, so the notification may be lost to them; they flush when they
// reconnect. Requests needing the primary fail with clean 503s during the
// outage; every instance's cached home page and count must show the upload
// within staleBound of its answer.
func (su *suite) restartPrimaryCoherence(ctx context.Context, w *window) {
	defer su.allowOnly(w, "503")
	p := su.newProber(ctx)
	before, err := p.probe(ctx, staleBound) // every instance caches the prober's page and count
	if err != nil {
		su.t.Fatal(err)
	}
	w.note("before the fault: an upload was in every instance's caches after %v", before.Round(time.Millisecond))
	_, flushes0, _ := su.busConnects(ctx)
	pg := su.s.PG.Primary()
	wait(ctx, time.Second)
	if err := pg.Stop(); err != nil {
		su.t.Fatal(err)
	}
	w.note("primary stopped")
	wait(ctx, 2*time.Second)
	if err := pg.Start(ctx); err != nil {
		su.t.Fatal(err)
	}
	started := time.Now()
	w.note("primary restarted")
	took, err := p.probe(ctx, staleBound)
	if err != nil {
		su.t.Fatal(err)
	}
	w.note("a photo uploaded as soon as the primary took writes again (%v after its restart) was in every instance's cached home page and count %v after the upload's answer (bound %v)",
		(time.Since(started) - took).Round(time.Millisecond), took.Round(time.Millisecond), staleBound)
	if took > staleBound {
		su.t.Errorf("%s: stale home page or count on some instance %v after the upload, bound %v", w.name, took, staleBound)
	}
	var flushes uint64
	su.waitFor(ctx, "every instance's bus to be connected again", func() bool {
		var ok bool
		_, flushes, ok = su.busConnects(ctx)
		return ok
	})
	w.note("every bus reconnected and flushed (%d flushes in all)", flushes-flushes0)
	if flushes-flushes0 < uint64(len(su.s.Instances)) {
		su.t.Errorf("%s: %d flushes, want one per instance at least", w.name, flushes-flushes0)
	}
}
