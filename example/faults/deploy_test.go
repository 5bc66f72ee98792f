//go:build faults

package faults

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sharednothing/sharednothing/example/internal/stack"
)

// rollingRestart restarts every instance in turn, as a deploy does: SIGTERM,
// the instance drains (fails /healthz, closes connections after each
// response) and finishes what is in flight, the new process starts, and only
// then is the next one restarted. Not one request may fail, POSTs included.
func (su *suite) rollingRestart(ctx context.Context, w *window) {
	defer su.allowOnly(w) // zero failed requests
	// On top of the users, 16 more post notes back to back, without
	// pausing: more requests in flight at every instant a listener closes.
	storm, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var stormers []*user
	for i := range 16 {
		u := newUser(su.s.URL, fmt.Sprintf("s%02d-%s", i, randHex(3)), true)
		if err := u.login(ctx, w); err != nil {
			su.t.Fatal(err)
		}
		stormers = append(stormers, u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for storm.Err() == nil {
				text := fmt.Sprintf("%s storm %s", u.name, randHex(6))
				if st, loc := u.postNote(storm, w, text); st == http.StatusSeeOther && loc == "/notes" {
					u.mu.Lock()
					u.acked = append(u.acked, text)
					u.mu.Unlock()
				}
			}
		}()
	}
	defer func() {
		stop()
		wg.Wait()
		for _, u := range stormers {
			have, err := su.notesOf(ctx, u.name)
			if err != nil {
				su.t.Fatal(err)
			}
			for _, a := range u.acked {
				switch {
				case have[a] == 0:
					w.lost++
				case have[a] > 1:
					w.dup++
				}
			}
		}
	}()
	wait(ctx, 2*time.Second)
	for _, in := range su.s.Instances {
		start := time.Now()
		if err := in.Restart(ctx, nil); err != nil {
			su.t.Fatalf("restart %s: %v", in.Name, err)
		}
		w.note("restarted %s in %v (drain %v, then start-up)", in.Name, time.Since(start).Round(10*time.Millisecond), stack.Drain)
		wait(ctx, time.Second)
	}
	wait(ctx, time.Second)
	if w.retries != 0 {
		su.t.Errorf("%s: %d POSTs had to be retried, want 0", w.name, w.retries)
	}
}

// killMidPost makes POSTs wait in the database (the test holds a lock on the
// notes table), SIGKILLs an instance while it has such a POST in flight, and
// then releases the lock. The clients see a 503 for the killed requests
// (nginx does not resend a POST it has sent) and send the same form again;
// the idempotency key makes each note saved exactly once.
func (su *suite) killMidPost(ctx context.Context, w *window) {
	defer su.allowOnly(w, "503")
	victim := su.s.Instances[1]
	wait(ctx, 2*time.Second)
	tx, err := su.primary.BeginTx(ctx, nil)
	if err != nil {
		su.t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE notes IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		su.t.Fatal(err)
	}
	var waiting int
	su.waitFor(ctx, "a POST on "+victim.Name+" waiting in the database", func() bool {
		err := su.primary.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", victim.Name).Scan(&waiting)
		return err == nil && waiting > 0
	})
	victim.Kill()
	w.note("killed %s with %d POST(s) in flight, waiting for a lock in the database", victim.Name, waiting)
	wait(ctx, 300*time.Millisecond)
	if err := tx.Rollback(); err != nil {
		su.t.Fatal(err)
	}
	w.note("lock released")
	if err := victim.Start(ctx); err != nil {
		su.t.Fatalf("restart %s: %v", victim.Name, err)
	}
	w.note("restarted %s", victim.Name)
	wait(ctx, 2*time.Second)
	if w.retries == 0 {
		su.t.Errorf("%s: no POST was retried: the fault did not hit a request in flight", w.name)
	}
}

// failover kills the primary as a dead machine would (immediate shutdown),
// promotes the replica that has received the most WAL and points the other
// at it. The instances follow through their multi-host connection string.
// The old primary is then rebuilt as a replica of the new one.
func (su *suite) failover(ctx context.Context, w *window) {
	pg := su.s.PG
	old := pg.Primary()
	old.Kill()
	killed := time.Now()
	w.note("%s (primary) killed", old.Name)
	next, err := pg.MostAdvanced(ctx)
	if err != nil {
		su.t.Fatal(err)
	}
	chosen := time.Since(killed)
	if err := pg.Failover(ctx, next); err != nil {
		su.t.Fatal(err)
	}
	w.note("%s (the most advanced replica, chosen %v after the kill) promoted %v after the kill; the other replica follows it",
		next.Name, chosen.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	su.waitFor(ctx, "a write through the instances' connection string to succeed", func() bool {
		_, err := su.primary.ExecContext(ctx, "CREATE TEMP TABLE IF NOT EXISTS failover_probe (x int)")
		return err == nil
	})
	w.note("writes accepted again %v after the kill", time.Since(killed).Round(time.Millisecond))
	if err := old.Rebuild(ctx); err != nil {
		su.t.Fatalf("rebuild %s as a replica: %v", old.Name, err)
	}
	if err := old.SetApplyDelay(ctx, replicaLag); err != nil {
		su.t.Fatal(err)
	}
	w.note("%s rebuilt as a replica of %s", old.Name, next.Name)
	// The instances know the nodes that were replicas at start: the
	// promoted one must no longer be read from, a rebuilt one is read from
	// again once it follows the new timeline.
	if su.replicaName(next) != "" {
		su.waitFor(ctx, "every instance to stop reading from "+next.Name, func() bool { return su.replicasUp(ctx, next, false) })
		w.note("no instance reads from %s (now the primary) any more", next.Name)
	}
	for _, n := range pg.Replicas() {
		if su.replicaName(n) != "" {
			su.waitFor(ctx, "every instance to read from "+n.Name+" (following "+next.Name+")", func() bool { return su.replicasUp(ctx, n, true) })
			w.note("every instance reads from %s again, on %s's timeline", n.Name, next.Name)
		}
	}
}

func (su *suite) failoverAsync(ctx context.Context, w *window) {
	defer su.allowOnly(w, "503")
	// Asynchronous replication may lose what the primary acknowledged but
	// had not yet sent: allowed, counted and reported. At most one note per
	// writer can be in that gap on loopback.
	w.lossAllowed = writers
	wait(ctx, 2*time.Second)
	su.failover(ctx, w)
	wait(ctx, 2*time.Second)
}

func (su *suite) failoverSync(ctx context.Context, w *window) {
	defer su.allowOnly(w, "503")
	pg := su.s.PG
	// The write-latency cost, side by side under the same load: 4 s
	// asynchronous, then 4 s synchronous.
	posts := func() []time.Duration {
		w.mu.Lock()
		defer w.mu.Unlock()
		return append([]time.Duration(nil), w.postDur...)
	}
	wait(ctx, 4*time.Second)
	async := posts()
	if err := pg.SetSynchronous(ctx, true); err != nil {
		su.t.Fatal(err)
	}
	defer pg.SetSynchronous(ctx, false) // on the new primary: back to the default for what follows
	wait(ctx, 4*time.Second)
	sync := posts()[len(async):]
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	w.note("POST /notes, the 4 s before synchronous replication was turned on: p50 %v, p99 %v (%d POSTs); the 4 s after: p50 %v, p99 %v (%d POSTs)",
		r(percentile(async, 0.5)), r(percentile(async, 0.99)), len(async), r(percentile(sync, 0.5)), r(percentile(sync, 0.99)), len(sync))
	// The commit itself, without the app: 200 one-row commits in a row,
	// synchronous, then asynchronous for this session only.
	for _, mode := range []string{"on", "local"} {
		ds, err := commitTimes(ctx, su.primary, mode, 200)
		if err != nil {
			su.t.Fatal(err)
		}
		w.note("one-row commit on the primary, synchronous_commit = %s: p50 %v, p99 %v", mode, percentile(ds, 0.5).Round(time.Microsecond), percentile(ds, 0.99).Round(time.Microsecond))
	}
	su.failover(ctx, w)
	wait(ctx, 2*time.Second)
}

// lbResult is one load-balancer measurement.
type lbResult struct {
	conns            int
	path             string // "nginx" or "direct"
	reqs, errs       int
	secs             float64
	p50, p99         time.Duration
	instanceRequests map[string]int
	rounds           []float64 // req/s of each run behind a median
}

// measureLB measures the cost of nginx: a logged-in /notes page, fetched by
// conns keep-alive connections for a few seconds, once spread directly over
// the instances (each connection to one instance, as a client-side balancer
// would: the sum of the instances' throughput) and once through nginx,
// back to back, at 8 and 32 connections.
func (su *suite) measureLB(ctx context.Context) {
	jar, _ := cookiejar.New(nil)
	u := &user{name: "lb-" + randHex(3), base: su.s.URL, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	setup := newWindow("lb setup")
	if err := u.login(ctx, setup); err != nil {
		su.t.Fatal(err)
	}
	for range 5 {
		u.postNote(ctx, setup, "a note for the load test "+randHex(4))
	}
	cookies := jar.Cookies(mustParse(su.s.URL))
	var direct []string
	for _, in := range su.s.Instances {
		direct = append(direct, "http://"+in.Addr)
	}
	// Short runs, alternating, several rounds: the machine is shared and
	// its load swings; the medians of each side are compared.
	const d, rounds = 2 * time.Second, 3
	for _, conns := range []int{8, 32} {
		runs := map[string][]lbResult{}
		for range rounds {
			for _, path := range []string{"direct", "nginx"} {
				targets := []string{su.s.URL}
				if path == "direct" {
					targets = direct
				}
				r := loadRun(ctx, targets, cookies, conns, d)
				r.path = path
				runs[path] = append(runs[path], r)
				su.t.Logf("load balancer cost: %s at %d connections: %.0f req/s, p50 %v, p99 %v, %d errors, per instance %v",
					path, conns, r.rate(), r.p50, r.p99, r.errs, r.instanceRequests)
			}
		}
		dr, nr := median(runs["direct"]), median(runs["nginx"])
		su.lb = append(su.lb, dr, nr)
		// The target (≥ 80 % of direct throughput, p99 ≤ 2× direct) is
		// reported, not enforced: on a shared machine whose load swings
		// several-fold within seconds, a threshold would fail at random.
		ratio := nr.rate() / dr.rate()
		met := ratio >= 0.8 && nr.p99 <= 2*dr.p99
		su.t.Logf("through nginx at %d connections: %.0f%% of direct throughput, p99 %v vs %v: target (≥ 80%%, ≤ 2×) met: %v",
			conns, 100*ratio, nr.p99, dr.p99, met)
		for _, r := range append(runs["direct"], runs["nginx"]...) {
			if r.errs > 0 {
				su.t.Errorf("load test %s at %d connections: %d errors", r.path, conns, r.errs)
			}
		}
	}
}

func (r lbResult) rate() float64 { return float64(r.reqs) / r.secs }

// median returns the run with the median throughput, with the median p50
// and p99 of the runs, and every run's throughput for the report.
func median(rs []lbResult) lbResult {
	by := func(f func(lbResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m := rs[0]
	m.reqs, m.secs = int(by(func(r lbResult) float64 { return r.rate() })), 1
	m.p50 = time.Duration(by(func(r lbResult) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(by(func(r lbResult) float64 { return float64(r.p99) }))
	for _, r := range rs {
		m.rounds = append(m.rounds, r.rate())
	}
	return m
}

// loadRun has conns workers fetch /notes from targets (worker i from
// targets[i%len]) with the given cookies for d.
func loadRun(ctx context.Context, targets []string, cookies []*http.Cookie, conns int, d time.Duration) lbResult {
	res := lbResult{conns: conns, instanceRequests: map[string]int{}}
	var mu sync.Mutex
	var all []time.Duration
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			var ds []time.Duration
			insts := map[string]int{}
			errs := 0
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", targets[i%len(targets)]+"/notes", nil)
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				_, err = readAll(resp)
				if err != nil || resp.StatusCode != http.StatusOK {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				ds = append(ds, time.Since(t0))
				insts[resp.Header.Get("X-Instance")]++
			}
			mu.Lock()
			all = append(all, ds...)
			res.errs += errs
			for k, v := range insts {
				res.instanceRequests[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.secs = time.Since(start).Seconds()
	res.reqs = len(all)
	res.p50, res.p99 = percentile(all, 0.5), percentile(all, 0.99)
	return res
}

// lbTable renders the load-balancer measurements as Markdown.
func (su *suite) lbTable() string {
	b := "| connections | path | req/s (median; each run) | p50 | p99 | nginx ÷ direct (req/s) | p99 nginx ÷ direct |\n|---|---|---|---|---|---|---|\n"
	for i, r := range su.lb {
		ratio, p99 := "", ""
		if r.path == "nginx" && i > 0 {
			dr := su.lb[i-1]
			ratio = fmt.Sprintf("%.0f %%", 100*r.rate()/dr.rate())
			p99 = fmt.Sprintf("%.2f×", float64(r.p99)/float64(dr.p99))
		}
		var each []string
		for _, x := range r.rounds {
			each = append(each, fmt.Sprintf("%.0f", x))
		}
		b += fmt.Sprintf("| %d | %s | %.0f (%s) | %v | %v | %s | %s |\n", r.conns, r.path, r.rate(), strings.Join(each, ", "),
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), ratio, p99)
	}
	return b
}

func readAll(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// commitTimes times n one-row INSERT commits on one connection with the
// session's synchronous_commit set to mode ("on": wait for the synchronous
// replica's flush; "local": do not).
func commitTimes(ctx context.Context, db *sql.DB, mode string, n int) ([]time.Duration, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS commit_probe (at timestamptz)"); err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "SET synchronous_commit = "+mode); err != nil {
		return nil, err
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := conn.ExecContext(ctx, "INSERT INTO commit_probe VALUES (now())"); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	_, err = conn.ExecContext(ctx, "RESET synchronous_commit")
	return ds, err
}
