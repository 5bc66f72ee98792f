package replicapin_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/internal/reqstate"
	"github.com/sharednothing/sharednothing/replicapin"
)

// fakePositions reports positions the test sets, without a database, so
// the routing rules can be checked exactly. It counts the primary's
// position reads.
type fakePositions struct {
	mu           sync.Mutex
	primary      replicapin.Position
	primaryErr   error
	primaryReads int
	replicas     map[*sql.DB]replicapin.Position
	replicaErr   map[*sql.DB]error
}

func (f *fakePositions) Primary(context.Context, *sql.DB) (replicapin.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.primaryReads++
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

func (f *fakePositions) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.primaryReads
}

// fakeDB returns a *sql.DB on the stub driver: the fake positions and the
// routing only compare pointers.
func fakeDB(t testing.TB) *sql.DB {
	db, err := sql.Open("stub", "")
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
	errs     *errorLog
}

// newFake builds a DB over fake servers: the primary at 0/3E8 (1000) on
// timeline 1 and n replicas at 0/1F4 (500), polled once. Tests that depend
// on the time call it inside a synctest bubble.
func newFake(t testing.TB, n int, opts replicapin.Options) *fakeSetup {
	s := &fakeSetup{
		pos:     &fakePositions{replicas: map[*sql.DB]replicapin.Position{}, replicaErr: map[*sql.DB]error{}},
		primary: fakeDB(t),
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
	s.db = newDB(t, s.primary, replicas(s.replicas...), opts)
	pollNow(t, s.db)
	return s
}

// pinAt seals a pin at offset on timeline tl that expires in 10 s.
func pinAt(tl uint32, off uint64) string {
	return replicapin.SealPin(testKey, "_pin", replicapin.Pin{
		Pos:     replicapin.Position{Timeline: tl, Offset: off},
		Expires: time.Now().Add(10 * time.Second),
	})
}

// readHandler answers with where Read sent it: "primary" or "replica-N".
func (s *fakeSetup) readHandler() http.Handler {
	return s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := s.db.Read(r.Context(), func(*sql.DB) error { return nil })
		io.WriteString(w, from)
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
// succeeds; anything but a valid pin signed with our key is ignored (the
// client is unpinned) and cleared.
func TestBadCookies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFake(t, 1, replicapin.Options{})
		valid := pinAt(1, 1000)
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
				Pos: replicapin.Position{Timeline: 1, Offset: 1 << 62}, Expires: time.Now().Add(1000 * time.Hour)}), "replica-1", true},
			{"signed for another cookie name", replicapin.SealPin(testKey, "_other", replicapin.Pin{
				Pos: replicapin.Position{Timeline: 1, Offset: 1000}, Expires: time.Now().Add(time.Second)}), "replica-1", true},
			{"expired", replicapin.SealPin(testKey, "_pin", replicapin.Pin{
				Pos: replicapin.Position{Timeline: 1, Offset: 1000}, Expires: time.Now()}), "replica-1", true},
			{"truncated", valid[:30], "replica-1", true},
			{"garbage", "not-a-pin", "replica-1", true},
			{"long", strings.Repeat("A", 4000), "replica-1", true},
			{"non-ASCII", "ünïcødé", "replica-1", true},
		}
		for _, tt := range tests {
			res := serveHTTP(s.readHandler(), "GET", tt.cookie)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, want 200", tt.name, res.StatusCode)
			}
			if got := body(res); got != tt.wantFrom {
				t.Errorf("%s: read from %s, want %s", tt.name, got, tt.wantFrom)
			}
			c := pinCookieOf(res)
			if cleared := c != nil && c.MaxAge < 0; cleared != tt.wantCleared || (c != nil && !cleared) {
				t.Errorf("%s: Set-Cookie %v, want cleared %v", tt.name, c, tt.wantCleared)
			}
		}
	})
}

// TestMaxPin: a pin lasts MaxPin after the write, in the cookie's Max-Age
// and in its signed expiry, even if no replica ever catches up.
func TestMaxPin(t *testing.T) {
	for _, maxPin := range []time.Duration{0, 1500 * time.Millisecond} {
		want := maxPin
		if want == 0 {
			want = 30 * time.Second
		}
		t.Run(want.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFake(t, 1, replicapin.Options{MaxPin: maxPin})
				h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == "POST" {
						s.db.Writer(r.Context())
						return
					}
					from, _ := s.db.Read(r.Context(), func(*sql.DB) error { return nil })
					io.WriteString(w, from)
				}))
				start := time.Now()
				c := pinCookieOf(serveHTTP(h, "POST", ""))
				if c == nil {
					t.Fatal("POST set no pin cookie")
				}
				if wantAge := int(want.Round(time.Second) / time.Second); c.MaxAge != wantAge || !c.HttpOnly || c.Secure || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
					t.Errorf("cookie %v: want Max-Age %d, HttpOnly, Path /, SameSite Lax (Secure off in tests)", c, wantAge)
				}
				p, err := s.db.OpenPin(c.Value, start)
				if err != nil || !p.Expires.Equal(start.Add(want)) || p.Pos != (replicapin.Position{Timeline: 1, Offset: 1000}) {
					t.Fatalf("pin %+v, %v; want 0/3E8@1 expiring at +%v", p, err, want)
				}
				time.Sleep(want - time.Millisecond)
				if got := body(serveHTTP(h, "GET", c.Value)); got != "primary" {
					t.Errorf("read just before MaxPin from %s, want primary", got)
				}
				time.Sleep(time.Millisecond)
				res := serveHTTP(h, "GET", c.Value)
				if got := body(res); got != "replica-1" {
					t.Errorf("read at MaxPin from %s, want replica-1", got)
				}
				if c := pinCookieOf(res); c == nil || c.MaxAge >= 0 {
					t.Errorf("expired pin: Set-Cookie %v, want it cleared", c)
				}
			})
		})
	}
}

// TestPinMerge: a write response merges the client's pin with the
// primary's new position and never moves it backwards; when the position
// cannot be read after a successful write, the client is pinned to the
// primary and the handler's response goes out unchanged.
func TestPinMerge(t *testing.T) {
	tests := []struct {
		name        string
		incoming    func() string
		primary     replicapin.Position
		primaryErr  error
		want        replicapin.Position
		wantUnknown bool
	}{
		{"first write", func() string { return "" }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 2000}, false},
		{"older pin, newer write", func() string { return pinAt(1, 1000) }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 2000}, false},
		{"newer pin stays", func() string { return pinAt(1, 3000) }, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 3000}, false},
		{"new timeline", func() string { return pinAt(1, 3000) }, replicapin.Position{Timeline: 2, Offset: 100}, nil, replicapin.Position{Timeline: 2, Offset: 100}, false},
		{"unknown pin, known write", func() string {
			return replicapin.SealPin(testKey, "_pin", replicapin.Pin{Unknown: true, Expires: time.Now().Add(5 * time.Second)})
		}, replicapin.Position{Timeline: 1, Offset: 2000}, nil, replicapin.Position{Timeline: 1, Offset: 2000}, false},
		{"position unreadable", func() string { return pinAt(1, 1000) }, replicapin.Position{}, errors.New("connection refused"), replicapin.Position{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFake(t, 1, replicapin.Options{})
				s.pos.setPrimary(tt.primary, tt.primaryErr)
				h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					s.db.Writer(r.Context())
					w.WriteHeader(http.StatusCreated)
				}))
				res := serveHTTP(h, "POST", tt.incoming())
				if res.StatusCode != http.StatusCreated {
					t.Errorf("status %d, want the handler's 201", res.StatusCode)
				}
				c := pinCookieOf(res)
				if c == nil {
					t.Fatal("no pin cookie")
				}
				p, err := s.db.OpenPin(c.Value, time.Now())
				if err != nil || p.Pos != tt.want || p.Unknown != tt.wantUnknown || !p.Expires.Equal(time.Now().Add(30*time.Second)) {
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
		})
	}
}

type routeKey struct{}

// TestPinOnlyAfterSuccess: a request pins the client only if it wrote
// through Writer and succeeded, or called Wrote; any other request, POSTs
// included, costs no read of the primary's position. A request that wrote
// reads its own write from the primary.
func TestPinOnlyAfterSuccess(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		writer     bool // the handler calls Writer
		wrote      bool // the handler calls Wrote
		status     int
		succeeded  func(int) bool
		wantPin    bool
		wantFailed uint64
	}{
		{"GET", "GET", false, false, 200, nil, false, 0},
		{"POST that does not write (login)", "POST", false, false, 303, nil, false, 0},
		{"POST to a missing page", "POST", false, false, 404, nil, false, 0},
		{"DELETE that does not write", "DELETE", false, false, 204, nil, false, 0},
		{"Writer, 201", "POST", true, false, 201, nil, true, 0},
		{"Writer, 303", "POST", true, false, 303, nil, true, 0},
		{"GET calling Writer", "GET", true, false, 200, nil, true, 0},
		{"Writer, 503: the write failed", "POST", true, false, 503, nil, false, 1},
		{"Writer, 422: the form did not validate", "POST", true, false, 422, nil, false, 1},
		{"Writer, 409 counted a success", "POST", true, false, 409, func(s int) bool { return s < 400 || s == 409 }, true, 0},
		{"Writer, 303 counted a failure", "POST", true, false, 303, func(s int) bool { return s < 300 }, false, 1},
		{"Wrote, 500: committed, then failed", "POST", false, true, 500, nil, true, 0},
		{"Writer and Wrote, 500", "POST", true, true, 500, nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{Succeeded: tt.succeeded})
			// The replica has caught up with the primary, so only a
			// write in this very request sends the read to the primary.
			s.pos.setReplica(s.replicas[0], replicapin.Position{Timeline: 1, Offset: 1000}, nil)
			pollNow(t, s.db)
			polls := s.pos.reads()
			var from *sql.DB
			h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.writer {
					s.db.Writer(r.Context())
				}
				if tt.wrote {
					s.db.Wrote(r.Context())
				}
				// A context derived from the request's, as a router's.
				ctx := context.WithValue(r.Context(), routeKey{}, "route")
				from = s.db.Reader(ctx)
				w.WriteHeader(tt.status)
			}))
			res := serveHTTP(h, tt.method, "")
			if got := pinCookieOf(res) != nil; got != tt.wantPin {
				t.Errorf("pin set = %v, want %v", got, tt.wantPin)
			}
			if got, want := s.pos.reads()-polls, map[bool]int{true: 1}[tt.wantPin]; got != want {
				t.Errorf("primary position read %d times, want %d", got, want)
			}
			wantPrimary := tt.writer || tt.wrote
			if got := from == s.primary; got != wantPrimary {
				t.Errorf("read from the primary = %v, want %v", got, wantPrimary)
			}
			if got := res.Header.Get("X-Read-From"); (got == "primary") != wantPrimary {
				t.Errorf("X-Read-From = %q", got)
			}
			if got := s.db.Stats().FailedWrites; got != tt.wantFailed {
				t.Errorf("FailedWrites = %d, want %d", got, tt.wantFailed)
			}
		})
	}
}

// TestFailedWriteOnDownPrimary: with the primary down, a write fails and
// the handler answers 503; the client is not pinned to the dead primary,
// nothing is reported, and its next read goes to the replica.
func TestFailedWriteOnDownPrimary(t *testing.T) {
	primary, err := sql.Open("stub", "down") // every query fails
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	replica := fakeDB(t)
	pos := &fakePositions{primaryErr: errDown,
		replicas:   map[*sql.DB]replicapin.Position{replica: {Timeline: 1, Offset: 500}},
		replicaErr: map[*sql.DB]error{}}
	var errs errorLog
	db := newDB(t, primary, replicas(replica), replicapin.Options{Positions: pos, PollInterval: forever, ErrorHandler: errs.handle})
	pollNow(t, db)
	h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method == "POST" {
			if _, err := db.Writer(ctx).ExecContext(ctx, "INSERT INTO notes VALUES ('hello')"); err != nil {
				http.Error(w, "not saved", http.StatusServiceUnavailable)
				return
			}
		}
		from, _ := db.Read(ctx, func(*sql.DB) error { return nil })
		io.WriteString(w, from)
	}))
	polls := pos.reads()
	res := serveHTTP(h, "POST", "")
	if c := pinCookieOf(res); res.StatusCode != http.StatusServiceUnavailable || c != nil {
		t.Fatalf("failed POST: %d, Set-Cookie %v; want 503 and no pin", res.StatusCode, c)
	}
	if got := pos.reads() - polls; got != 0 {
		t.Errorf("primary position read %d times for the failed write, want 0", got)
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("ErrorHandler got %v, want nothing", e)
	}
	if got := body(serveHTTP(h, "GET", "")); got != "replica-1" {
		t.Errorf("read after the failed write from %s, want replica-1", got)
	}
}

// TestLateWrite: a Writer or Wrote call after the response started cannot
// be pinned, and is reported; what the ErrorHandler writes is discarded.
func TestLateWrite(t *testing.T) {
	for _, mark := range []string{"Writer", "Wrote"} {
		t.Run(mark, func(t *testing.T) {
			var errs []error
			s := newFake(t, 1, replicapin.Options{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				errs = append(errs, err)
				http.Error(w, "ignored", http.StatusInternalServerError)
			}})
			h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "streaming...")
				if mark == "Writer" {
					s.db.Writer(r.Context())
				} else {
					s.db.Wrote(r.Context())
				}
			}))
			res := serveHTTP(h, "GET", "")
			if c := pinCookieOf(res); c != nil {
				t.Errorf("Set-Cookie %v after the headers went out", c)
			}
			if got := body(res); res.StatusCode != 200 || got != "streaming..." {
				t.Errorf("response %d %q, want the handler's 200 %q", res.StatusCode, got, "streaming...")
			}
			if len(errs) != 1 || !errors.Is(errs[0], replicapin.ErrLateWrite) {
				t.Errorf("ErrorHandler got %v, want ErrLateWrite", errs)
			}
		})
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
	if got := count(pinAt(1, 1000), 20); got["replica-1"] != 10 || got["replica-3"] != 10 || got["cleared"] != 0 {
		t.Errorf("reads pinned at 1000: %v, want 10 on replica-1 and replica-3, none cleared", got)
	}
	// replica-2 goes down having last been seen at 500: a pin at 1000
	// must outlive its absence.
	s.pos.setReplica(r2, replicapin.Position{}, errors.New("down"))
	pollNow(t, s.db)
	if got := count(pinAt(1, 1000), 4); got["replica-2"] != 0 || got["cleared"] != 0 {
		t.Errorf("reads pinned at 1000 with replica-2 down: %v, want none on replica-2, none cleared", got)
	}
	s.pos.setReplica(r2, replicapin.Position{Timeline: 1, Offset: 1000}, nil)
	pollNow(t, s.db)
	if got := count(pinAt(1, 1000), 3); got["cleared"] != 3 {
		t.Errorf("reads pinned at 1000 with every replica past it: %v, want the pin cleared each time", got)
	}
	st := s.db.Stats()
	if st.PinsCleared != 3 || st.Replicas[1].Reads == 0 || st.Replicas[1].Name != "replica-2" {
		t.Errorf("stats %+v", st)
	}
}

// TestReplicaNames: the names given in Replica appear in Read's result,
// ReadFrom, Stats and the debug header.
func TestReplicaNames(t *testing.T) {
	primary, r1, r2 := fakeDB(t), fakeDB(t), fakeDB(t)
	pos := &fakePositions{primary: replicapin.Position{Timeline: 1, Offset: 10},
		replicas:   map[*sql.DB]replicapin.Position{r1: {Timeline: 1, Offset: 10}, r2: {Timeline: 1, Offset: 10}},
		replicaErr: map[*sql.DB]error{}}
	db := newDB(t, primary, []replicapin.Replica{{Name: "eu-1", DB: r1}, {DB: r2}}, replicapin.Options{Positions: pos, PollInterval: forever})
	pollNow(t, db)
	var reads, froms []string
	h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := db.Read(r.Context(), func(*sql.DB) error { return nil })
		reads = append(reads, from)
		froms = append(froms, db.ReadFrom(r.Context()))
	}))
	var headers []string
	for range 2 {
		headers = append(headers, serveHTTP(h, "GET", "").Header.Get("X-Read-From"))
	}
	want := []string{"replica-2", "eu-1"} // round-robin starts at the second
	for i := range want {
		if reads[i] != want[i] || froms[i] != want[i] || headers[i] != want[i] {
			t.Errorf("read %d: Read %q, ReadFrom %q, X-Read-From %q; want %q", i, reads[i], froms[i], headers[i], want[i])
		}
	}
	if st := db.Stats(); st.Primary.Name != "primary" || st.Replicas[0].Name != "eu-1" || st.Replicas[1].Name != "replica-2" {
		t.Errorf("stats names %q %q %q", st.Primary.Name, st.Replicas[0].Name, st.Replicas[1].Name)
	}
	if got := db.ReadFrom(context.Background()); got != "" {
		t.Errorf("ReadFrom outside a request = %q, want \"\"", got)
	}
}

// TestAtLeast: a read that must see position P goes to a replica that has
// replayed both P and the client's pin, else to the primary.
func TestAtLeast(t *testing.T) {
	s := newFake(t, 2, replicapin.Options{})
	s.pos.setReplica(s.replicas[0], replicapin.Position{Timeline: 1, Offset: 2000}, nil)
	s.pos.setReplica(s.replicas[1], replicapin.Position{Timeline: 1, Offset: 800}, nil)
	pollNow(t, s.db)
	none := replicapin.Position{Timeline: 1 << 31} // no AtLeast
	tests := []struct {
		name string
		pin  string
		at   replicapin.Position
		want []string
	}{
		{"no minimum", "", none, []string{"replica-1", "replica-2"}},
		{"the zero position", "", replicapin.Position{}, []string{"primary"}},
		{"replayed by one", "", replicapin.Position{Timeline: 1, Offset: 1000}, []string{"replica-1"}},
		{"replayed by none", "", replicapin.Position{Timeline: 1, Offset: 3000}, []string{"primary"}},
		{"other timeline", "", replicapin.Position{Timeline: 2, Offset: 10}, []string{"primary"}},
		{"pin beyond the minimum", pinAt(1, 2500), replicapin.Position{Timeline: 1, Offset: 700}, []string{"primary"}},
		{"minimum beyond the pin", pinAt(1, 700), replicapin.Position{Timeline: 1, Offset: 900}, []string{"replica-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				if tt.at != none {
					ctx = replicapin.AtLeast(ctx, tt.at)
				}
				from, err := s.db.Read(ctx, func(*sql.DB) error { return nil })
				if err != nil {
					t.Error(err)
				}
				io.WriteString(w, from)
			}))
			seen := map[string]bool{}
			for range 4 {
				seen[body(serveHTTP(h, "GET", tt.pin))] = true
			}
			for _, w := range tt.want {
				if !seen[w] {
					t.Errorf("reads went to %v, want %v", seen, tt.want)
				}
			}
			if len(seen) != len(tt.want) {
				t.Errorf("reads went to %v, want only %v", seen, tt.want)
			}
		})
	}
	// Nested calls keep the furthest position.
	ctx := replicapin.AtLeast(replicapin.AtLeast(context.Background(), replicapin.Position{Timeline: 1, Offset: 2500}), replicapin.Position{Timeline: 1, Offset: 100})
	if got := s.db.Reader(ctx); got != s.primary {
		t.Error("AtLeast(AtLeast(ctx, 2500), 100): read not on the primary")
	}
	if !s.db.Replayed(replicapin.Position{Timeline: 1, Offset: 800}) || s.db.Replayed(replicapin.Position{Timeline: 1, Offset: 801}) {
		t.Error("Replayed: want true at 800 (both replicas), false at 801")
	}
	if got, err := s.db.PrimaryPosition(context.Background()); err != nil || got != (replicapin.Position{Timeline: 1, Offset: 1000}) {
		t.Errorf("PrimaryPosition = %v, %v; want 0/3E8@1", got, err)
	}
}

// TestFailoverRouting: after a promotion, pins taken on the old timeline read
// from the (new) primary until they expire; the promoted node is not read
// from as a replica; a replica still on the old timeline is not read from
// until it follows the new one, and then it is.
func TestFailoverRouting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFake(t, 2, replicapin.Options{})
		r1, r2 := s.replicas[0], s.replicas[1]
		s.pos.setReplica(r1, replicapin.Position{Timeline: 1, Offset: 1000}, nil)
		s.pos.setReplica(r2, replicapin.Position{Timeline: 1, Offset: 900}, nil)
		pollNow(t, s.db)
		oldPin := pinAt(1, 1000)
		if got := body(serveHTTP(s.readHandler(), "GET", oldPin)); got != "replica-1" {
			t.Fatalf("before the failover: pinned read from %s, want replica-1", got)
		}

		// replica-1 is promoted: the primary connection string now
		// reaches it, on timeline 2, from the switch point 0/3E8.
		s.pos.setPrimary(replicapin.Position{Timeline: 2, Offset: 1100}, nil)
		s.pos.setReplica(r1, replicapin.Position{}, replicapin.ErrNotReplica)
		pollNow(t, s.db)
		for _, tt := range []struct{ cookie, want string }{{oldPin, "primary"}, {"", "primary"}} {
			if got := body(serveHTTP(s.readHandler(), "GET", tt.cookie)); got != tt.want {
				t.Errorf("after the promotion, pin %v: read from %s, want %s", tt.cookie != "", got, tt.want)
			}
		}
		st := s.db.Stats()
		if st.Replicas[0].Up || !strings.Contains(st.Replicas[0].Err, replicapin.ErrNotReplica.Error()) ||
			st.Replicas[1].Up || !strings.Contains(st.Replicas[1].Err, replicapin.ErrTimeline.Error()) {
			t.Errorf("replica stats after the promotion: %+v", st.Replicas)
		}

		// replica-2 is re-pointed at the new primary and follows timeline 2.
		s.pos.setReplica(r2, replicapin.Position{Timeline: 2, Offset: 1100}, nil)
		pollNow(t, s.db)
		if got := body(serveHTTP(s.readHandler(), "GET", "")); got != "replica-2" {
			t.Errorf("unpinned read once replica-2 follows timeline 2 from %s, want replica-2", got)
		}
		res := serveHTTP(s.readHandler(), "GET", oldPin)
		if got := body(res); got != "primary" || pinCookieOf(res) != nil {
			t.Errorf("old-timeline pin: read from %s, Set-Cookie %v; want primary, kept", got, pinCookieOf(res))
		}
		time.Sleep(10 * time.Second) // the old pin expires
		if got := body(serveHTTP(s.readHandler(), "GET", oldPin)); got != "replica-2" {
			t.Errorf("expired old-timeline pin: read from %s, want replica-2", got)
		}
		// A write on the new primary pins on timeline 2, which replica-2 covers.
		h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.db.Writer(r.Context()) }))
		c := pinCookieOf(serveHTTP(h, "POST", oldPin))
		if c == nil {
			t.Fatal("write after the failover set no pin")
		}
		if p, _ := s.db.OpenPin(c.Value, time.Now()); p.Pos != (replicapin.Position{Timeline: 2, Offset: 1100}) {
			t.Errorf("pin after the failover %v, want 0/44C@2", p.Pos)
		}
		if got := body(serveHTTP(s.readHandler(), "GET", c.Value)); got != "replica-2" {
			t.Errorf("read pinned on timeline 2 from %s, want replica-2", got)
		}
	})
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
		replicas []replicapin.Replica
		opts     replicapin.Options
		want     string // the whole message, when it is fixed
	}{
		{"nil primary", nil, nil, replicapin.Options{Key: testKey}, "replicapin: New: nil primary"},
		{"no key", p, nil, replicapin.Options{}, ""},
		{"short key", p, nil, replicapin.Options{Key: testKey[:31]}, ""},
		{"short previous key", p, nil, replicapin.Options{Key: testKey, PreviousKeys: [][]byte{testKey[:31]}}, ""},
		{"nil replica", p, []replicapin.Replica{{DB: r}, {}}, replicapin.Options{Key: testKey}, ""},
		{"replica twice", p, replicas(r, r), replicapin.Options{Key: testKey}, ""},
		{"primary as replica", p, replicas(p), replicapin.Options{Key: testKey}, ""},
		{"replica named primary", p, []replicapin.Replica{{Name: "primary", DB: r}}, replicapin.Options{Key: testKey}, ""},
		{"replica names clash", p, []replicapin.Replica{{DB: r}, {Name: "replica-1", DB: fakeDB(t)}}, replicapin.Options{Key: testKey}, ""},
		{"negative MaxPin", p, nil, replicapin.Options{Key: testKey, MaxPin: -1}, "replicapin: New: Options.MaxPin must not be negative"},
		{"negative PollInterval", p, nil, replicapin.Options{Key: testKey, PollInterval: -1}, "replicapin: New: Options.PollInterval must not be negative"},
		{"negative PollTimeout", p, nil, replicapin.Options{Key: testKey, PollTimeout: -1}, "replicapin: New: Options.PollTimeout must not be negative"},
		{"bad cookie name", p, nil, replicapin.Options{Key: testKey, Cookie: sharednothing.Cookie{Name: "a b"}}, ""},
		{"insecure __Host- cookie", p, nil, replicapin.Options{Key: testKey, Cookie: sharednothing.Cookie{Name: "__Host-pin", Insecure: true}}, ""},
		{"__Host- cookie with a path", p, nil, replicapin.Options{Key: testKey, Cookie: sharednothing.Cookie{Name: "__Host-pin", Path: "/app"}}, ""},
		{"insecure __Secure- cookie", p, nil, replicapin.Options{Key: testKey, Cookie: sharednothing.Cookie{Name: "__secure-pin", Insecure: true}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := replicapin.New(tt.primary, tt.replicas, tt.opts)
			if err == nil {
				db.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "replicapin: New: ") {
				t.Errorf("error %q lacks the prefix \"replicapin: New: \"", err)
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
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
	db, err := replicapin.New(fakeDB(t), replicas(fakeDB(t), fakeDB(t)), replicapin.Options{
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
	synctest.Test(t, func(t *testing.T) {
		pos := &blockingPositions{}
		db := newDB(t, fakeDB(t), replicas(fakeDB(t)), replicapin.Options{
			Positions: pos, PollInterval: forever, PollTimeout: time.Second,
		})
		pollNow(t, db)
		st := db.Stats()
		if st.Replicas[0].Up || st.Replicas[0].Err != context.DeadlineExceeded.Error() {
			t.Errorf("hung replica: Up %v, Err %q; want down with %q", st.Replicas[0].Up, st.Replicas[0].Err, context.DeadlineExceeded)
		}
	})
}

// TestStatsJSON: Stats encodes to plain JSON, errors as strings and
// positions in their text form, as expvar would publish it.
func TestStatsJSON(t *testing.T) {
	s := newFake(t, 1, replicapin.Options{})
	s.pos.setReplica(s.replicas[0], replicapin.Position{}, errors.New("connection refused"))
	pollNow(t, s.db)
	b, err := json.Marshal(s.db.Stats())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"primary_reads":0,"retries":0,"pins_set":0,"pins_cleared":0,"failed_writes":0,` +
		`"primary":{"name":"primary","up":true,"position":"0/3E8@1","lag":0,"reads":0},` +
		`"replicas":[{"name":"replica-1","up":false,"err":"connection refused","position":"0/1F4@1","lag":500,"reads":0}]}`
	if string(b) != want {
		t.Errorf("json:\n%s\nwant\n%s", b, want)
	}
	var back replicapin.Stats
	if err := json.Unmarshal(b, &back); err != nil || back.Replicas[0].Position != (replicapin.Position{Timeline: 1, Offset: 500}) {
		t.Errorf("decoding it back: %+v, %v", back, err)
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
	pin := pinAt(1, 700)
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
	s2 := newFake(t, 1, replicapin.Options{Cookie: sharednothing.Cookie{Name: "_pin2"}})
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

// TestKeyRotation: pins signed with a previous key are honoured, and a new
// write re-signs the pin with the current key; without the previous key
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
			synctest.Test(t, func(t *testing.T) {
				s := newFake(t, 1, replicapin.Options{Key: newKey, PreviousKeys: tt.previous})
				old := replicapin.SealPin(oldKey, "_pin", replicapin.Pin{
					Pos: replicapin.Position{Timeline: 1, Offset: 3000}, Expires: time.Now().Add(time.Second)})
				if got := body(serveHTTP(s.readHandler(), "GET", old)); got != tt.wantFrom {
					t.Errorf("read with an old-key pin from %s, want %s", got, tt.wantFrom)
				}
				h := s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.db.Writer(r.Context()) }))
				c := pinCookieOf(serveHTTP(h, "POST", old))
				if c == nil {
					t.Fatal("POST set no pin")
				}
				p, err := s.db.OpenPin(c.Value, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if c.Value != replicapin.SealPin(newKey, "_pin", p) {
					t.Error("new pin not signed with Key")
				}
				if want := map[bool]uint64{true: 3000, false: 1000}[tt.previous != nil]; p.Pos.Offset != want {
					t.Errorf("pin offset %d, want %d (merged with the old pin only if it was honoured)", p.Pos.Offset, want)
				}
			})
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
		wantFrom    string
		wantCalls   int
		wantRetries uint64
	}{
		{"replica succeeds", context.Background(), nil, nil, nil, "replica-1", 1, 0},
		{"replica fails", context.Background(), failure, nil, nil, "primary", 2, 1},
		{"both fail", context.Background(), failure, failure, failure, "primary", 2, 1},
		{"no rows", context.Background(), sql.ErrNoRows, nil, sql.ErrNoRows, "replica-1", 1, 0},
		{"request cancelled", cancelled, failure, nil, failure, "replica-1", 1, 0},
		{"primary only, and it fails", replicapin.UsePrimary(context.Background()), nil, failure, failure, "primary", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, 1, replicapin.Options{})
			var calls []*sql.DB
			from, err := s.db.Read(tt.ctx, func(q *sql.DB) error {
				calls = append(calls, q)
				if q == s.primary {
					return tt.primaryErr
				}
				return tt.replicaErr
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Read = %v, want %v", err, tt.wantErr)
			}
			if from != tt.wantFrom {
				t.Errorf("Read from %q, want %q", from, tt.wantFrom)
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
	db, err := replicapin.New(s.primary, replicas(s.replicas...), replicapin.Options{Key: testKey, Positions: s.pos, PollInterval: forever})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { db.Reader(r.Context()) }))
	if got := serveHTTP(h, "GET", "").Header.Get("X-Read-From"); got != "" {
		t.Errorf("X-Read-From = %q without DebugHeader", got)
	}
}

// TestTimeWindow: a TimeWindow pin holds until the window has passed at a
// replica poll, then the replica serves the client and the pin is cleared.
func TestTimeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		primary, replica := fakeDB(t), fakeDB(t)
		db := newDB(t, primary, replicas(replica), replicapin.Options{
			Positions:    replicapin.TimeWindow(2 * time.Second),
			PollInterval: forever,
		})
		h := db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				db.Writer(r.Context())
				return
			}
			from, _ := db.Read(r.Context(), func(*sql.DB) error { return nil })
			io.WriteString(w, from)
		}))
		c := pinCookieOf(serveHTTP(h, "POST", ""))
		if c == nil {
			t.Fatal("POST set no pin")
		}
		steps := []struct {
			after   time.Duration
			from    string
			cleared bool
		}{
			{0, "primary", false},
			{1999 * time.Millisecond, "primary", false},
			{time.Millisecond, "replica-1", true},
		}
		for i, s := range steps {
			time.Sleep(s.after)
			pollNow(t, db)
			res := serveHTTP(h, "GET", c.Value)
			if got, cl := body(res), pinCookieOf(res); got != s.from || (cl != nil && cl.MaxAge < 0) != s.cleared {
				t.Errorf("step %d: read from %s, Set-Cookie %v; want %s, cleared %v", i, got, cl, s.from, s.cleared)
			}
		}
		if got := db.Stats().PinsCleared; got != 1 {
			t.Errorf("PinsCleared = %d, want 1", got)
		}
	})
}

// TestRequestState: on every request the middleware registers the pin
// cookie with the toolkit's per-request state (reusing a State an outer
// middleware created), and marks requests that carry a valid pin as ones a
// response cache must read through; an invalid or expired pin does not.
func TestRequestState(t *testing.T) {
	s := newFake(t, 1, replicapin.Options{})
	expired := replicapin.SealPin(testKey, "_pin", replicapin.Pin{
		Pos: replicapin.Position{Timeline: 1, Offset: 1000}, Expires: time.Now().Add(-time.Second)})
	tests := []struct {
		name, cookie string
		wantBypass   bool
	}{
		{"no cookie", "", false},
		{"valid pin", pinAt(1, 1000), true},
		{"pin already passed", pinAt(1, 10), true},
		{"tampered", "garbage", false},
		{"expired", expired, false},
	}
	for _, tt := range tests {
		for _, outer := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/outer state %v", tt.name, outer), func(t *testing.T) {
				var got reqstate.Snapshot
				var inner *reqstate.State
				var h http.Handler = s.db.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					inner = reqstate.From(r.Context())
					got = inner.Snapshot()
				}))
				var outerState *reqstate.State
				if outer {
					next := h
					h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						r, outerState = reqstate.Ensure(r)
						next.ServeHTTP(w, r)
					})
				}
				serveHTTP(h, "GET", tt.cookie)
				if inner == nil {
					t.Fatal("no reqstate.State in the handler's context")
				}
				if outer && inner != outerState {
					t.Error("the middleware replaced the outer State instead of reusing it")
				}
				want := []reqstate.Cookie{{Name: "_pin", Kind: reqstate.Pin}}
				if !slices.Equal(got.Cookies, want) {
					t.Errorf("cookies %v, want %v", got.Cookies, want)
				}
				if got.Bypass != tt.wantBypass {
					t.Errorf("Bypass = %v, want %v", got.Bypass, tt.wantBypass)
				}
			})
		}
	}
}
