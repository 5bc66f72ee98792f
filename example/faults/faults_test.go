//go:build faults

package faults

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"image"
	"image/jpeg"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/example/internal/pgcluster"
	"github.com/sharednothing/sharednothing/example/internal/stack"
	"github.com/sharednothing/sharednothing/thumbnail"
)

const (
	writers    = 16 // users who post notes and read them back
	readers    = 8  // users who only browse
	think      = 25 * time.Millisecond
	rssBound   = 768 << 20 // per instance; thumbnail cache 128 MiB + response cache 64 MiB + renders in flight
	replicaLag = 200 * time.Millisecond
	thumbQueue = 4 // renders waiting per instance before quick 503s
)

// suite is the running cluster and its simulated users.
type suite struct {
	t       *testing.T
	s       *stack.Stack
	users   []*user
	primary *sql.DB // follows the primary across failovers
	windows []*window
	lb      []lbResult
}

func TestFaults(t *testing.T) {
	if _, err := pgcluster.BinDir(""); err != nil {
		t.Fatal(err) // this suite is only run on purpose (make faults): missing parts fail it
	}
	if _, err := stack.NginxPath(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{Instances: 3, Replicas: 2, ReplicaDelay: replicaLag, Env: []string{fmt.Sprintf("THUMB_QUEUE=%d", thumbQueue)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	primary, err := sql.Open("pgx", s.PG.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	su := &suite{t: t, s: s, primary: primary}
	for i := range writers + readers {
		su.users = append(su.users, newUser(s.URL, fmt.Sprintf("u%02d-%s", i, randHex(3)), i < writers))
	}
	setup := newWindow("setup")
	for _, u := range su.users {
		if err := u.login(ctx, setup); err != nil {
			t.Fatal(err)
		}
	}
	small := testJPEG(t, 320, 240)
	for _, u := range su.users[:4] {
		if st, loc := u.upload(ctx, setup, small); st != http.StatusSeeOther || loc != "/photos" {
			t.Fatalf("upload: got %d to %q, want 303 to /photos", st, loc)
		}
	}

	if only := os.Getenv("FAULTS_ONLY"); only == "" || regexp.MustCompile(only).MatchString("load balancer cost") {
		su.measureLB(ctx)
		wait(ctx, 3*time.Second) // let the requests the load test left behind finish
	}

	su.run("baseline (no fault)", 6*time.Second, nil)
	su.run("1. app instance SIGKILLed and restarted", 10*time.Second, su.killInstance)
	su.run("2. replica stopped and restarted", 12*time.Second, su.stopReplica)
	su.run("3. replica lags (replay paused 5 s)", 9*time.Second, su.pauseReplay)
	su.run("4. secret rotated across instances", 0, su.rotateSecret)
	su.run("5. thumbnail flood", 0, su.thumbnailFlood)
	su.run("6. primary restarts", 10*time.Second, su.restartPrimary)
	su.run("7. rolling restart of every instance (SIGTERM, drain)", 0, su.rollingRestart)
	su.run("8. instance killed mid-POST, clients retry", 6*time.Second, su.killMidPost)
	su.run("9. primary lost, replica promoted (asynchronous replication)", 0, su.failoverAsync)
	su.run("10. primary lost, replica promoted (synchronous replication)", 0, su.failoverSync)
	su.run("11. invalidation bus: LISTEN connections terminated under load", 0, su.killListeners)
	su.run("12. invalidation bus: primary restarted", 0, su.restartPrimaryCoherence)

	su.report()
}

// run drives the load for one window while fault runs; the window lasts at
// least d and until fault returns. It then checks what every window must
// show: no stale read, no logout, no lost acknowledged write.
func (su *suite) run(name string, d time.Duration, fault func(ctx context.Context, w *window)) {
	t := su.t
	if only := os.Getenv("FAULTS_ONLY"); only != "" && fault != nil && !regexp.MustCompile(only).MatchString(name) {
		return // FAULTS_ONLY=regexp runs only the matching windows (and the baseline)
	}
	w := newWindow(name)
	su.windows = append(su.windows, w)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, u := range su.users {
		wg.Add(1)
		go func() { defer wg.Done(); u.run(ctx, w, think) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); su.sampleRSS(ctx, w) }()

	start := time.Now()
	if fault != nil {
		fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Minute)
		fault(fctx, w)
		fcancel()
	}
	if rest := d - time.Since(start); rest > 0 {
		tm := time.NewTimer(rest)
		<-tm.C
	}
	cancel()
	wg.Wait()

	su.checkAcked(w)
	t.Logf("%s\n%s%s", name, tableHeader, w.row())
	for _, n := range w.noteLines() {
		t.Logf("  %s", n)
	}
	if w.loggedOut != 0 {
		t.Errorf("%s: %d logged-out users, want 0", name, w.loggedOut)
	}
	if w.lost > w.lossAllowed {
		t.Errorf("%s: %d acknowledged writes lost, want at most %d", name, w.lost, w.lossAllowed)
	}
	if w.stale > w.lost {
		t.Errorf("%s: %d stale reads, more than the %d lost writes explain", name, w.stale, w.lost)
	}
	if w.dup != 0 {
		t.Errorf("%s: %d acknowledged writes stored more than once, want 0", name, w.dup)
	}
	if w.unclean != 0 {
		t.Errorf("%s: %d refusals hung for more than 6 s or showed a stack trace", name, w.unclean)
	}
	for inst, peak := range w.rssPeak {
		if peak > rssBound {
			t.Errorf("%s: %s peaked at %d MiB RSS, bound %d MiB", name, inst, peak>>20, rssBound>>20)
		}
	}
}

// allowOnly fails the window if any request failed with a status other
// than those listed (503 is the app's clean refusal).
func (su *suite) allowOnly(w *window, statuses ...string) {
	su.t.Helper()
	allowed := map[string]bool{}
	for _, s := range statuses {
		allowed[s] = true
	}
	for s, n := range w.failed() {
		if !allowed[s] {
			su.t.Errorf("%s: %d requests failed with %s", w.name, n, s)
		}
	}
}

// checkAcked looks on the primary for every note the app acknowledged.
func (su *suite) checkAcked(w *window) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range su.users {
		u.mu.Lock()
		acked := append([]string(nil), u.acked...)
		u.mu.Unlock()
		if len(acked) == 0 {
			continue
		}
		have, err := su.notesOf(ctx, u.name)
		if err != nil {
			su.t.Fatalf("reading notes from the primary: %v", err)
		}
		for _, a := range acked {
			switch {
			case have[a] == 0:
				w.lost++
				w.note("acknowledged note %q of %s is missing", a, u.name)
			case have[a] > 1:
				w.dup++
				w.note("acknowledged note %q of %s is stored %d times", a, u.name, have[a])
			}
		}
		u.mu.Lock()
		u.acked = u.acked[len(acked):] // checked once: a later window's loss is its own
		u.mu.Unlock()
	}
}

// notesOf counts u's notes on the primary by text, retrying for up to 30 s
// (ctx) while the primary is busy or just promoted.
func (su *suite) notesOf(ctx context.Context, owner string) (map[string]int, error) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		have := map[string]int{}
		rows, err := su.primary.QueryContext(ctx, "SELECT body FROM notes WHERE owner = $1", owner)
		if err == nil {
			for rows.Next() {
				var b string
				rows.Scan(&b)
				have[b]++
			}
			err = rows.Err()
			rows.Close()
		}
		if err == nil {
			return have, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-tick.C:
		}
	}
}

// sampleRSS records each instance's peak resident memory in w.
func (su *suite) sampleRSS(ctx context.Context, w *window) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, in := range su.s.Instances {
			if pid := in.PID(); pid > 0 {
				if rss, err := vmRSS(pid); err == nil {
					w.rss(in.Name, rss)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func wait(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// waitFor polls cond until it holds or ctx ends.
func (su *suite) waitFor(ctx context.Context, what string, cond func() bool) {
	su.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			su.t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func (su *suite) killInstance(ctx context.Context, w *window) {
	wait(ctx, 2*time.Second)
	victim := su.s.Instances[1]
	victim.Kill()
	w.note("killed %s", victim.Name)
	wait(ctx, 3*time.Second)
	if err := victim.Start(ctx); err != nil {
		su.t.Fatalf("restart %s: %v", victim.Name, err)
	}
	w.note("restarted %s", victim.Name)
	// Requests in flight on the killed process die with it; nginx retries
	// idempotent ones, and turns the rest into a clean 503.
	defer su.allowOnly(w, "503")
}

// replicaName is the name the instances give node n as a replica, or ""
// if they were not given it (the first primary).
func (su *suite) replicaName(n *pgcluster.Node) string {
	for i, m := range su.s.ReplicaNodes {
		if m == n {
			return fmt.Sprintf("replica-%d", i+1)
		}
	}
	return ""
}

// replicasUp reports whether every instance sees replica r as up (want) or
// down (!want).
func (su *suite) replicasUp(ctx context.Context, r *pgcluster.Node, want bool) bool {
	name := su.replicaName(r)
	for _, in := range su.s.Instances {
		h, err := in.Health(ctx)
		if err != nil {
			return false
		}
		up := false
		for _, rh := range h.Replicas {
			if rh.Name == name {
				up = rh.Up
			}
		}
		if up != want {
			return false
		}
	}
	return true
}

func (su *suite) stopReplica(ctx context.Context, w *window) {
	defer su.allowOnly(w) // zero failed requests
	r := su.s.PG.Replicas()[0]
	wait(ctx, 2*time.Second)
	if err := r.Stop(); err != nil {
		su.t.Fatal(err)
	}
	su.waitFor(ctx, "every instance to see the replica down", func() bool { return su.replicasUp(ctx, r, false) })
	w.note("replica stopped; all instances see it down")
	wait(ctx, 3*time.Second)
	if err := r.Start(ctx); err != nil {
		su.t.Fatal(err)
	}
	su.waitFor(ctx, "every instance to use the replica again", func() bool { return su.replicasUp(ctx, r, true) })
	w.note("replica restarted; all instances use it again")
	// Reads return to the replica: an unpinned reader is served from it.
	su.waitFor(ctx, "a read served by the replica", func() bool {
		// A query string of its own: not answered from the response cache.
		res, err := http.Get(su.s.URL + "/?probe=" + randHex(4))
		if err != nil {
			return false
		}
		res.Body.Close()
		return strings.HasPrefix(res.Header.Get("X-Read-From"), "replica")
	})
}

func (su *suite) pauseReplay(ctx context.Context, w *window) {
	defer su.allowOnly(w)
	r := su.s.PG.Replicas()[0]
	wait(ctx, time.Second)
	if err := r.PauseReplay(ctx); err != nil {
		su.t.Fatal(err)
	}
	w.note("replay paused")
	wait(ctx, 5*time.Second)
	if err := r.ResumeReplay(ctx); err != nil {
		su.t.Fatal(err)
	}
	w.note("replay resumed")
}

// rotateSecret rolls a new secret across the instances, one instance at a
// time, in the three phases a rolling rotation needs: every instance first
// learns to accept the new secret (still sealing with the old one, which
// the instances not yet rolled can read); then every instance seals with the
// new one and still accepts the old; after a grace period in which every
// active user has been re-sealed, the old secret is dropped.
func (su *suite) rotateSecret(ctx context.Context, w *window) {
	defer su.allowOnly(w, "503")
	old := su.s.Secret
	next := randHex(32)
	roll := func(what string, args ...string) {
		for _, in := range su.s.Instances {
			wait(ctx, time.Second)
			if err := in.Restart(ctx, args); err != nil {
				su.t.Fatalf("restart %s (%s): %v", in.Name, what, err)
			}
		}
		w.note("rolled across all instances: %s", what)
	}
	roll("seal with the old secret, accept the new", "-secret", old, "-accept-secret", next)
	roll("seal with the new secret, accept the old", "-secret", next, "-accept-secret", old)
	wait(ctx, 6*time.Second) // grace period: every active user is re-sealed, and has seen pages (thumbnail URLs) signed with the new key
	roll("the old secret dropped", "-secret", next)
	su.s.Secret = next
	wait(ctx, 2*time.Second)
}

// thumbnailFlood asks for many distinct sizes of large images at once, far
// beyond what the instances can render, while the users keep browsing.
func (su *suite) thumbnailFlood(ctx context.Context, w *window) {
	t := su.t
	big := testJPEG(t, 4000, 3000)
	var names []string
	for _, u := range su.users[:2] {
		if st, loc := u.upload(ctx, w, big); st != http.StatusSeeOther || loc != "/photos" {
			t.Fatalf("uploading a 12 MP photo: got %d to %q, want 303 to /photos", st, loc)
		}
	}
	rows, err := su.primary.QueryContext(ctx, "SELECT file FROM photos WHERE width = 4000")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f string
		rows.Scan(&f)
		names = append(names, f)
	}
	rows.Close()
	if len(names) == 0 {
		t.Fatal("no large photos stored")
	}
	signer, err := thumbnail.New(thumbnail.Options{
		Source: thumbnail.Dir(filepath.Join(su.s.Dir, "data")),
		Key:    sharednothing.DeriveKey([]byte(su.s.Secret), "thumbnail"),
		Prefix: "/thumbs",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Render capacity: GOMAXPROCS renders at once per instance plus its
	// queue; the flood keeps ten times that many requests in flight.
	capacity := len(su.s.Instances) * (runtime.GOMAXPROCS(0) + thumbQueue)
	flood := 10 * capacity * 2 // two waves' worth
	fw := newWindow("flood")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var rejectDur []time.Duration
	retryAfter := 0
	sem := make(chan struct{}, 10*capacity)
	client := &http.Client{Timeout: 60 * time.Second}
	for i := range flood {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			url := signer.URL(names[i%len(names)], thumbnail.Spec{Width: 100 + i, Height: 100 + i})
			start := time.Now()
			res, err := client.Get(su.s.URL + url)
			d := time.Since(start)
			if err != nil {
				fw.record(0, d)
				return
			}
			res.Body.Close()
			fw.record(res.StatusCode, d)
			if res.StatusCode == http.StatusServiceUnavailable {
				mu.Lock()
				rejectDur = append(rejectDur, d)
				if res.Header.Get("Retry-After") != "" {
					retryAfter++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ok := fw.byStatus[200]
	w.note("flood: %d thumbnail requests for distinct sizes, %d rendered, %d refused with 503 (%d with Retry-After), others %v",
		flood, ok, len(rejectDur), retryAfter, fw.failed())
	if len(rejectDur) == 0 {
		t.Errorf("flood: no request was refused; the queue did not bound the work")
	}
	if retryAfter != len(rejectDur) {
		t.Errorf("flood: %d of %d 503s lack Retry-After", len(rejectDur)-retryAfter, len(rejectDur))
	}
	for s, n := range fw.failed() {
		if s != "503" {
			t.Errorf("flood: %d thumbnail requests failed with %s, want only 503", n, s)
		}
	}
	fw.durations = rejectDur
	w.note("flood: 503 latency p50 %v p99 %v; page latency during the flood is the window's", fw.percentile(0.5), fw.percentile(0.99))
	if p99 := fw.percentile(0.99); p99 > 2*time.Second {
		t.Errorf("flood: 503s took up to %v (p99), want quick refusals", p99)
	}
	su.allowOnly(w, "503")
	if p99 := w.percentile(0.99); p99 > 3*time.Second {
		t.Errorf("flood: other pages' p99 was %v, want them to stay fast", p99)
	}
}

func (su *suite) restartPrimary(ctx context.Context, w *window) {
	// Writes during the outage are refused with 503; reads that need the
	// primary too. Nothing else may fail.
	defer su.allowOnly(w, "503")
	p := su.s.PG.Primary()
	wait(ctx, 2*time.Second)
	if err := p.Stop(); err != nil {
		su.t.Fatal(err)
	}
	w.note("primary stopped")
	wait(ctx, 3*time.Second)
	if err := p.Start(ctx); err != nil {
		su.t.Fatal(err)
	}
	w.note("primary restarted")
	su.waitFor(ctx, "a write to succeed again", func() bool {
		_, err := su.primary.ExecContext(ctx, "SELECT 1")
		return err == nil
	})
}

// report prints the whole table and writes it to docs/RELIABILITY.md.
func (su *suite) report() {
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, w := range su.windows {
		b.WriteString(w.row())
	}
	su.t.Logf("\n%s", b.String())
	if path := os.Getenv("RELIABILITY_MD"); path != "" {
		writeReliability(su.t, path, b.String(), su.windows, su.lbTable())
	}
}

// testJPEG makes a smooth w×h JPEG (compresses like a photo, not like noise).
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Y[y*img.YStride+x] = uint8((x*7 + y*3) / 16)
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 100, 150
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
