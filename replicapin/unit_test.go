package replicapin_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/replicapin"
)

// fakePositions reports positions the test sets, without a database, so
// the routing rules can be checked exactly.
type fakePositions struct {
	mu         sync.Mutex
	primary    replicapin.Position
	primaryErr error
	replicas   map[*sql.DB]replicapin.Position
	replicaErr map[*sql.DB]error
}

func (f *fakePositions) Primary(context.Context, *sql.DB) (replicapin.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.primary, f.primaryErr
}

func (f *fakePositions) Replica(_ context.Context, db *sql.DB) (replicapin.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replicas[db], f.replicaErr[db]
}

func (f *fakePositions) setPrimary(p replicapin.Position, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.primary, f.primaryErr = p, err
}

func (f *fakePositions) setReplica(db *sql.DB, p replicapin.Position, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replicas[db], f.replicaErr[db] = p, err
}

// fakeDB returns a *sql.DB that is never connected to: the fake positions
// and the routing only compare pointers.
func fakeDB(t testing.TB) *sql.DB {
	db, err := sql.Open("pgx", "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type fakeSetup struct {
	db       *replicapin.DB
	pos      *fakePositions
	primary  *sql.DB
	replicas []*sql.DB
	now      time.Time
	errs     *errorLog
}

// newFake builds a DB over fake servers: the primary at 1/1000 on timeline
// 1 and n replicas at 1/500, polled once. Its clock is fixed at s.now.
func newFake(t testing.TB, n int, opts replicapin.Options) *fakeSetup {
	s := &fakeSetup{
		pos:     &fakePositions{replicas: map[*sql.DB]replicapin.Position{}, replicaErr: map[*sql.DB]error{}},
		primary: fakeDB(t),
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		errs:    &errorLog{},
	}
	s.pos.primary = replicapin.Position{Timeline: 1, Offset: 1000}
	for range n {
		r := fakeDB(t)
		s.replicas = append(s.replicas, r)
		s.pos.replicas[r] = replicapin.Position{Timeline: 1, Offset: 500}
	}
	opts.Positions = s.pos
	opts.PollInterval = forever
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = s.errs.handle
	}
	s.db = newDB(t, s.primary, s.replicas, opts)
	s.db.SetClock(func() time.Time { return s.now })
	pollNow(t, s.db)
	return s
}

// pinAt seals a pin at offset on timeline 1 that expires in 10 s.
func (s *fakeSetup) pinAt(off uint64) string {
	return replicapin.SealPin(testKey, "_pin", replicapin.Pin{
		Pos:     replicapin.Position{Timeline: 1, Offset: off},
		Expires: s.now.Add(10 * time.Second),
	})
}

// readHandler answers with where Reader sent it: "primary" or "replica-N".
func (s *fakeSetup) readHandler() http.Handler {
	return s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := s.db.Reader(r.Context())
		if q == s.primary {
			io.WriteString(w, "primary")
			return
		}
		for i, rep := range s.replicas {
			if q == rep {
				io.WriteString(w, "replica-"+string(rune('1'+i)))
			}
		}
	}))
}

// serveHTTP runs one request with an optional pin cookie through h.
func serveHTTP(h http.Handler, method, cookie string) *http.Response {
	req := httptest.NewRequest(method, "/", nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "_pin", Value: cookie})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func pinCookieOf(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == "_pin" {
			return c
		}
	}
	return nil
}

func body(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestBadCookies: whatever a client sends as its pin cookie, the request
// succeeds; anything but a valid pin sealed with our key is ignored (the
// client is unpinned) and cleared.
func TestBadCookies(t *testing.T) {
	s := newFake(t, 1, replicapin.Options{})
	valid := s.pinAt(1000)
	flipped := []byte(valid)
	flipped[10] ^= 'A' ^ 'B'
	if flipped[10] == valid[10] {
		flipped[10] = 'C'
	}
	tests := []struct {
		name, cookie string
		wantFrom     string
		wantCleared  bool
	}{
		{"no cookie", "", "replica-1", false},
		{"valid pin", valid, "primary", false},
		{"tampered", string(flipped), "replica-1", true},
		{"other key", replicapin.SealPin([]byte(strings.Repeat("x", 32)), "_pin", replicapin.Pin{
			Pos: replicapin.Position{Timeline: 1, Offset: 1 << 62}, Expires: s.now.Add(1000 * time.Hour)}), "replica-1", true},
		{"sealed for another cookie name", replicapin.SealPin(testKey, "_other", replicapin.Pin{
			Pos: replicapin.Position{Timeline: 1, Offset: 1000}, Expires: s.now.Add(time.Second)}), "replica-1", true},
		{"expired", replicapin.SealPin(testKey, "_pin", replicapin.Pin{
			Pos: replicapin.Position{Timeline: 1, Offset: 1000}, Expires: s.now}), "replica-1", true},
		{"truncated", valid[:30], "replica-1", true},
		{"garbage", "not-a-pin", "replica-1", true},
		{"long", strings.Repeat("A", 4000), "replica-1", true},
		{"non-ASCII", "ünïcødé", "replica-1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serveHTTP(s.readHandler(), "GET", tt.cookie)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", res.StatusCode)
			}
			if got := body(res); got != tt.wantFrom {
				t.Errorf("read from %s, want %s", got, tt.wantFrom)
			}
			c := pinCookieOf(res)
			if cleared := c != nil && c.MaxAge < 0; cleared != tt.wantCleared || (c != nil && !cleared) {
				t.Errorf("Set-Cookie %v, want cleared %v", c, tt.wantCleared)
			}
		})
	}
}

// TestMaxPin: a pin lasts MaxPin after the write, in the cookie's Max-Age
// and in its sealed expiry, even if no replica ever catches up.
func TestMaxPin(t *testing.T) {
	for _, maxPin := range []time.Duration{0, 1500 * time.Millisecond} {
		want := maxPin
		if want == 0 {
			want = 30 * time.Second
		}
		t.Run(want.String(), func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{MaxPin: maxPin})
			h := s.readHandler()
			c := pinCookieOf(serveHTTP(h, "POST", ""))
			if c == nil {
				t.Fatal("POST set no pin cookie")
			}
			if wantAge := int((want + time.Second - 1) / time.Second); c.MaxAge != wantAge || !c.HttpOnly || c.Secure || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie %v: want Max-Age %d, HttpOnly, Path /, SameSite Lax (Secure off in tests)", c, wantAge)
			}
			p, err := s.db.OpenPin(c.Value, s.now)
			if err != nil || !p.Expires.Equal(s.now.Add(want)) || p.Pos != (replicapin.Position{Timeline: 1, Offset: 1000}) {
				t.Fatalf("pin %+v, %v; want 0/3E8@1 expiring at +%v", p, err, want)
			}
			start := s.now
			s.now = start.Add(want - time.Millisecond)
			if got := body(serveHTTP(h, "GET", c.Value)); got != "primary" {
				t.Errorf("read just before MaxPin from %s, want primary", got)
			}
			s.now = start.Add(want)
			res := serveHTTP(h, "GET", c.Value)
			if got := body(res); got != "replica-1" {
				t.Errorf("read at MaxPin from %s, want replica-1", got)
			}
			if c := pinCookieOf(res); c == nil || c.MaxAge >= 0 {
				t.Errorf("expired pin: Set-Cookie %v, want it cleared", c)
			}
		})
	}
}

// TestPinMerge: a write response merges the client's pin with the
// primary's new position and never moves it backwards; when the position
// cannot be read, the client is pinned to the primary and the handler's
// response goes out unchanged.
func TestPinMerge(t *testing.T) {
	unknown := replicapin.SealPin(testKey, "_pin", replicapin.Pin{Unknown: true, Expires: time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)})
	tests := []struct {
		name        string
		incoming    func(s *fakeSetup) string
		primary     replicapin.Position
		primaryErr  error
		want        replicapin.Position
		wantUnknown bool
	}{
		{"first write", func(*fakeSetup) string { return "" }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 2000}, false},
		{"older pin, newer write", func(s *fakeSetup) string { return s.pinAt(1000) }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 2000}, false},
		{"newer pin stays", func(s *fakeSetup) string { return s.pinAt(3000) }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 3000}, false},
		{"new timeline", func(s *fakeSetup) string { return s.pinAt(3000) }, replicapin.Position{Timeline: 2, Offset: 100}, nil, replicapin.Position{Timeline: 2, Offset: 100}, false},
		{"unknown pin, known write", func(*fakeSetup) string { return unknown }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 2000}, false},
		{"primary down", func(s *fakeSetup) string { return s.pinAt(1000) }, replicapin.Position{}, errors.New("connection refused"), replicapin.Position{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{})
			s.pos.setPrimary(tt.primary, tt.primaryErr)
			h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s.db.Writer(r.Context())
				w.WriteHeader(http.StatusCreated)
			}))
			res := serveHTTP(h, "POST", tt.incoming(s))
			if res.StatusCode != http.StatusCreated {
				t.Errorf("status %d, want the handler's 201", res.StatusCode)
			}
			c := pinCookieOf(res)
			if c == nil {
				t.Fatal("no pin cookie")
			}
			p, err := s.db.OpenPin(c.Value, s.now)
			if err != nil || p.Pos != tt.want || p.Unknown != tt.wantUnknown || !p.Expires.Equal(s.now.Add(30*time.Second)) {
				t.Errorf("pin %+v, %v; want %v, unknown %v, expiring in 30s", p, err, tt.want, tt.wantUnknown)
			}
			errs := s.errs.all()
			if tt.primaryErr != nil {
				if len(errs) != 1 || !errors.Is(errs[0], replicapin.ErrPositionUnknown) || !errors.Is(errs[0], tt.primaryErr) {
					t.Errorf("ErrorHandler got %v, want ErrPositionUnknown wrapping %v", errs, tt.primaryErr)
				}
				// Even replicas at the primary's last position do not serve
				// a client whose write position is unknown.
				s.pos.setReplica(s.replicas[0], replicapin.Position{Timeline: 1, Offset: 1 << 40}, nil)
				pollNow(t, s.db)
				if got := body(serveHTTP(s.readHandler(), "GET", c.Value)); got != "primary" {
					t.Errorf("read with an unknown pin from %s, want primary", got)
				}
			} else if len(errs) != 0 {
				t.Errorf("ErrorHandler got %v, want nothing", errs)
			}
		})
	}
}

type routeKey struct{}

// TestWriteDetection: which requests set a pin, and that a request that
// wrote reads its own write from the primary.
func TestWriteDetection(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		writeMethods []string
		callWriter   bool
		wantPin      bool
	}{
		{"GET", "GET", nil, false, false},
		{"HEAD", "HEAD", nil, false, false},
		{"OPTIONS", "OPTIONS", nil, false, false},
		{"TRACE", "TRACE", nil, false, false},
		{"GET calling Writer", "GET", nil, true, true},
		{"POST", "POST", nil, false, true},
		{"PUT", "PUT", nil, false, true},
		{"PATCH", "PATCH", nil, false, true},
		{"DELETE", "DELETE", nil, false, true},
		{"custom method", "PURGE", nil, false, true},
		{"POST, only Writer marks writes", "POST", []string{}, false, false},
		{"POST calling Writer, only Writer marks writes", "POST", []string{}, true, true},
		{"listed method", "PURGE", []string{"PURGE"}, false, true},
		{"unlisted method", "POST", []string{"PURGE"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{WriteMethods: tt.writeMethods})
			// The replica has caught up with the primary, so only a
			// write in this very request sends the read to the primary.
			s.pos.setReplica(s.replicas[0], replicapin.Position{Timeline: 1, Offset: 1000}, nil)
			pollNow(t, s.db)
			var from *sql.DB
			h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.callWriter {
					s.db.Writer(r.Context())
				}
				// A context derived from the request's, as a router's.
				ctx := context.WithValue(r.Context(), routeKey{}, "route")
				from = s.db.Reader(ctx)
			}))
			res := serveHTTP(h, tt.method, "")
			if got := pinCookieOf(res) != nil; got != tt.wantPin {
				t.Errorf("pin set = %v, want %v", got, tt.wantPin)
			}
			if got := from == s.primary; got != tt.wantPin {
				t.Errorf("read from the primary = %v, want %v", got, tt.wantPin)
			}
			if got := res.Header.Get("X-Read-From"); (got == "primary") != tt.wantPin {
				t.Errorf("X-Read-From = %q", got)
			}
		})
	}
}

// TestLateWrite: a Writer call after the response started cannot be
// pinned, and is reported.
func TestLateWrite(t *testing.T) {
	s := newFake(t, 1, replicapin.Options{})
	h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "streaming...")
		s.db.Writer(r.Context())
	}))
	res := serveHTTP(h, "GET", "")
	if c := pinCookieOf(res); c != nil {
		t.Errorf("Set-Cookie %v after the headers went out", c)
	}
	if errs := s.errs.all(); len(errs) != 1 || !errors.Is(errs[0], replicapin.ErrLateWrite) {
		t.Errorf("ErrorHandler got %v, want ErrLateWrite", errs)
	}
}

func TestUsePrimary(t *testing.T) {
	s := newFake(t, 1, replicapin.Options{})
	h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.db.Reader(replicapin.UsePrimary(r.Context())) != s.primary {
			t.Error("Reader(UsePrimary(ctx)) is not the primary")
		}
	}))
	if got := serveHTTP(h, "GET", "").Header.Get("X-Read-From"); got != "primary" {
		t.Errorf("X-Read-From = %q, want primary", got)
	}
	if s.db.Reader(replicapin.UsePrimary(context.Background())) != s.primary {
		t.Error("Reader(UsePrimary(ctx)) outside a request is not the primary")
	}
	if s.db.Reader(context.Background()) != s.replicas[0] {
		t.Error("Reader outside a request is not the replica")
	}
}

// TestReplicaChoice: round-robin among usable replicas, pinned clients only
// on replicas that cover their pin, and the pin is cleared only when every
// replica, even one that is down, has passed it.
func TestReplicaChoice(t *testing.T) {
	s := newFake(t, 3, replicapin.Options{})
	r1, r2, r3 := s.replicas[0], s.replicas[1], s.replicas[2]
	s.pos.setReplica(r1, replicapin.Position{Timeline: 1, Offset: 2000}, nil)
	s.pos.setReplica(r2, replicapin.Position{Timeline: 1, Offset: 500}, nil)
	s.pos.setReplica(r3, replicapin.Position{Timeline: 1, Offset: 3000}, nil)
	pollNow(t, s.db)
	h := s.readHandler()
	count := func(cookie string, n int) map[string]int {
		got := map[string]int{}
		for range n {
			res := serveHTTP(h, "GET", cookie)
			got[body(res)]++
			if c := pinCookieOf(res); c != nil {
				got["cleared"]++
			}
		}
		return got
	}
	if got := count("", 30); got["replica-1"] != 10 || got["replica-2"] != 10 || got["replica-3"] != 10 {
		t.Errorf("unpinned reads %v, want 10 on each replica", got)
	}
	if got := count(s.pinAt(1000), 20); got["replica-1"] != 10 || got["replica-3"] != 10 || got["cleared"] != 0 {
		t.Errorf("reads pinned at 1000: %v, want 10 on replica-1 and replica-3, none cleared", got)
	}
	// replica-2 goes down having last been seen at 500: a pin at 1000
	// must outlive its absence.
	s.pos.setReplica(r2, replicapin.Position{}, errors.New("down"))
	pollNow(t, s.db)
	if got := count(s.pinAt(1000), 4); got["replica-2"] != 0 || got["cleared"] != 0 {
		t.Errorf("reads pinned at 1000 with replica-2 down: %v, want none on replica-2, none cleared", got)
	}
	s.pos.setReplica(r2, replicapin.Position{Timeline: 1, Offset: 1000}, nil)
	pollNow(t, s.db)
	if got := count(s.pinAt(1000), 3); got["cleared"] != 3 {
		t.Errorf("reads pinned at 1000 with every replica past it: %v, want the pin cleared each time", got)
	}
	st := s.db.Stats()
	if st.PinsCleared != 3 || st.Replicas[1].Reads == 0 || st.Replicas[1].Name != "replica-2" {
		t.Errorf("stats %+v", st)
	}
}

func TestMaxLag(t *testing.T) {
	tests := []struct {
		maxLag   uint64
		wantFrom string
	}{
		{0, "replica-1"},
		{499, "primary"},
		{500, "replica-1"},
	}
	for _, tt := range tests {
		s := newFake(t, 1, replicapin.Options{MaxLag: tt.maxLag})
		if got := body(serveHTTP(s.readHandler(), "GET", "")); got != tt.wantFrom {
			t.Errorf("MaxLag %d: read from %s, want %s", tt.maxLag, got, tt.wantFrom)
		}
		if got := s.db.Stats().Replicas[0]; got.Lag != 500 || !got.Up {
			t.Errorf("MaxLag %d: replica stats %+v, want up with Lag 500", tt.maxLag, got)
		}
	}
}

func TestNewErrors(t *testing.T) {
	p := fakeDB(t)
	r := fakeDB(t)
	tests := []struct {
		name     string
		primary  *sql.DB
		replicas []*sql.DB
		opts     replicapin.Options
	}{
		{"nil primary", nil, nil, replicapin.Options{Key: testKey}},
		{"no key", p, nil, replicapin.Options{}},
		{"short key", p, nil, replicapin.Options{Key: testKey[:31]}},
		{"short previous key", p, nil, replicapin.Options{Key: testKey, PreviousKeys: [][]byte{testKey[:31]}}},
		{"nil replica", p, []*sql.DB{r, nil}, replicapin.Options{Key: testKey}},
		{"replica twice", p, []*sql.DB{r, r}, replicapin.Options{Key: testKey}},
		{"primary as replica", p, []*sql.DB{p}, replicapin.Options{Key: testKey}},
		{"negative MaxPin", p, nil, replicapin.Options{Key: testKey, MaxPin: -1}},
		{"negative PollInterval", p, nil, replicapin.Options{Key: testKey, PollInterval: -1}},
		{"bad cookie name", p, nil, replicapin.Options{Key: testKey, Cookie: replicapin.CookieOptions{Name: "a b"}}},
		{"insecure __Host- cookie", p, nil, replicapin.Options{Key: testKey, Cookie: replicapin.CookieOptions{Name: "__Host-pin", Insecure: true}}},
		{"__Host- cookie with a path", p, nil, replicapin.Options{Key: testKey, Cookie: replicapin.CookieOptions{Name: "__Host-pin", Path: "/app"}}},
		{"insecure __Secure- cookie", p, nil, replicapin.Options{Key: testKey, Cookie: replicapin.CookieOptions{Name: "__Secure-pin", Insecure: true}}},
		{"lower-case write method", p, nil, replicapin.Options{Key: testKey, WriteMethods: []string{"post"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := replicapin.New(tt.primary, tt.replicas, tt.opts)
			if err == nil {
				db.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "replicapin: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// blockingPositions never answers until its context is done.
type blockingPositions struct {
	mu     sync.Mutex
	active int
}

func (b *blockingPositions) wait(ctx context.Context) (replicapin.Position, error) {
	b.mu.Lock()
	b.active++
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	b.active--
	b.mu.Unlock()
	return replicapin.Position{}, ctx.Err()
}

func (b *blockingPositions) Primary(ctx context.Context, _ *sql.DB) (replicapin.Position, error) {
	return b.wait(ctx)
}

func (b *blockingPositions) Replica(ctx context.Context, _ *sql.DB) (replicapin.Position, error) {
	return b.wait(ctx)
}

// TestClose: Close cancels polls in flight and returns once every monitor
// goroutine has exited; a second Close is harmless.
func TestClose(t *testing.T) {
	pos := &blockingPositions{}
	db, err := replicapin.New(fakeDB(t), []*sql.DB{fakeDB(t), fakeDB(t)}, replicapin.Options{
		Key: testKey, Positions: pos, PollTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	pos.mu.Lock()
	active := pos.active
	pos.mu.Unlock()
	if active != 0 {
		t.Errorf("%d polls still running after Close", active)
	}
	db.Close()
	// A slow poll (PollTimeout an hour) never made a server look up.
	if st := db.Stats(); st.Primary.Up || st.Replicas[0].Up {
		t.Errorf("stats after Close: %+v", st)
	}
}

// TestPollTimeout: a server that does not answer within PollTimeout is
// marked down.
func TestPollTimeout(t *testing.T) {
	pos := &blockingPositions{}
	db := newDB(t, fakeDB(t), []*sql.DB{fakeDB(t)}, replicapin.Options{
		Positions: pos, PollInterval: forever, PollTimeout: time.Millisecond,
	})
	pollNow(t, db)
	st := db.Stats()
	if st.Replicas[0].Up || !errors.Is(st.Replicas[0].Err, context.DeadlineExceeded) {
		t.Errorf("hung replica: Up %v, Err %v; want down with DeadlineExceeded", st.Replicas[0].Up, st.Replicas[0].Err)
	}
}

// TestConcurrentRequests runs pinned and unpinned requests, and handlers
// that call Reader and Writer from several goroutines, at once; run with
// -race.
func TestConcurrentRequests(t *testing.T) {
	s := newFake(t, 2, replicapin.Options{})
	h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				if i == 0 && r.Method == "POST" {
					s.db.Writer(r.Context())
				}
				s.db.Reader(r.Context())
			})
		}
		wg.Wait()
	}))
	pin := s.pinAt(700)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				method, cookie := "GET", ""
				switch (i + j) % 3 {
				case 1:
					method = "POST"
				case 2:
					cookie = pin
				}
				if res := serveHTTP(h, method, cookie); res.StatusCode != http.StatusOK {
					t.Errorf("status %d", res.StatusCode)
				}
			}
		})
	}
	for range 20 {
		pollNow(t, s.db)
	}
	wg.Wait()
	st := s.db.Stats()
	if got := st.PrimaryReads + st.Replicas[0].Reads + st.Replicas[1].Reads; got != 8*50*4 {
		t.Errorf("reads counted %d, want %d", got, 8*50*4)
	}
}

// TestTwoDBs: an app with two DBs (two database clusters) nests their
// middlewares; a write to one pins the client for that one only.
func TestTwoDBs(t *testing.T) {
	s1 := newFake(t, 1, replicapin.Options{})
	s2 := newFake(t, 1, replicapin.Options{Cookie: replicapin.CookieOptions{Name: "_pin2"}})
	var from1, from2 *sql.DB
	h := s1.db.Handler(s2.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s1.db.Writer(r.Context())
		from1, from2 = s1.db.Reader(r.Context()), s2.db.Reader(r.Context())
	})))
	res := serveHTTP(h, "GET", "")
	if from1 != s1.primary || from2 != s2.replicas[0] {
		t.Errorf("reads went to DB 1's primary %v, DB 2's replica %v; want true, true", from1 == s1.primary, from2 == s2.replicas[0])
	}
	var names []string
	for _, c := range res.Cookies() {
		names = append(names, c.Name)
	}
	if len(names) != 1 || names[0] != "_pin" {
		t.Errorf("cookies set: %v, want only _pin", names)
	}
}

// TestKeyRotation: pins sealed with a previous key are honoured, and a new
// write reseals the pin with the current key; without the previous key
// they are ignored.
func TestKeyRotation(t *testing.T) {
	oldKey := []byte(strings.Repeat("o", 32))
	newKey := []byte(strings.Repeat("n", 32))
	tests := []struct {
		name     string
		previous [][]byte
		wantFrom string
	}{
		{"previous key listed", [][]byte{[]byte(strings.Repeat("p", 32)), oldKey}, "primary"},
		{"previous key dropped", nil, "replica-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{Key: newKey, PreviousKeys: tt.previous})
			old := replicapin.SealPin(oldKey, "_pin", replicapin.Pin{
				Pos: replicapin.Position{Timeline: 1, Offset: 3000}, Expires: s.now.Add(time.Second)})
			if got := body(serveHTTP(s.readHandler(), "GET", old)); got != tt.wantFrom {
				t.Errorf("read with an old-key pin from %s, want %s", got, tt.wantFrom)
			}
			c := pinCookieOf(serveHTTP(s.readHandler(), "POST", old))
			if c == nil {
				t.Fatal("POST set no pin")
			}
			p, err := s.db.OpenPin(c.Value, s.now)
			if err != nil {
				t.Fatal(err)
			}
			if c.Value != replicapin.SealPin(newKey, "_pin", p) {
				t.Error("new pin not sealed with Key")
			}
			if want := map[bool]uint64{true: 3000, false: 1000}[tt.previous != nil]; p.Pos.Offset != want {
				t.Errorf("pin offset %d, want %d (merged with the old pin only if it was honoured)", p.Pos.Offset, want)
			}
		})
	}
}

// TestReadRetry: Read retries a failed replica read once on the primary,
// but not a missing row, a failure on the primary, or a cancelled request.
func TestReadRetry(t *testing.T) {
	failure := errors.New("connection reset")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name        string
		ctx         context.Context
		replicaErr  error
		primaryErr  error
		wantErr     error
		wantCalls   int
		wantRetries uint64
	}{
		{"replica succeeds", context.Background(), nil, nil, nil, 1, 0},
		{"replica fails", context.Background(), failure, nil, nil, 2, 1},
		{"both fail", context.Background(), failure, failure, failure, 2, 1},
		{"no rows", context.Background(), sql.ErrNoRows, nil, sql.ErrNoRows, 1, 0},
		{"request cancelled", cancelled, failure, nil, failure, 1, 0},
		{"primary only, and it fails", replicapin.UsePrimary(context.Background()), nil, failure, failure, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{})
			var calls []*sql.DB
			err := s.db.Read(tt.ctx, func(q *sql.DB) error {
				calls = append(calls, q)
				if q == s.primary {
					return tt.primaryErr
				}
				return tt.replicaErr
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Read = %v, want %v", err, tt.wantErr)
			}
			if len(calls) != tt.wantCalls {
				t.Fatalf("fn called %d times, want %d", len(calls), tt.wantCalls)
			}
			if tt.wantCalls == 2 && (calls[0] != s.replicas[0] || calls[1] != s.primary) {
				t.Error("want the replica first, then the primary")
			}
			if got := s.db.Stats().Retries; got != tt.wantRetries {
				t.Errorf("Retries = %d, want %d", got, tt.wantRetries)
			}
		})
	}
}

func TestDebugHeaderOffByDefault(t *testing.T) {
	s := newFake(t, 1, replicapin.Options{})
	db, err := replicapin.New(s.primary, s.replicas, replicapin.Options{Key: testKey, Positions: s.pos, PollInterval: forever})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { db.Reader(r.Context()) }))
	if got := serveHTTP(h, "GET", "").Header.Get("X-Read-From"); got != "" {
		t.Errorf("X-Read-From = %q without DebugHeader", got)
	}
}
