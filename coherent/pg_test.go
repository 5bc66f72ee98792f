package coherent_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// A Send on A drops the key from B's and C's caches, and their next load
// reads the new value.
func TestSendReachesEveryInstance(t *testing.T) {
	a, b, c := newInstance(t, "a", config{}), newInstance(t, "b", config{}), newInstance(t, "c", config{})
	ctx := context.Background()
	write(t, "u1", "old")
	replicated(t)
	for _, in := range []*instance{a, b, c} {
		if v, err := in.get(ctx, "u1"); err != nil || v != "old" {
			t.Fatalf("%s: got %q, %v, want old", in.name, v, err)
		}
	}
	write(t, "u1", "new")
	start := time.Now()
	if err := a.bus.Send(ctx, a.users.Key("u1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.cached("u1"); ok {
		t.Error("a: still cached after its own Send returned")
	}
	for _, in := range []*instance{b, c} {
		waitFor(t, 2*time.Second, in.name+" drops u1", func() bool { _, ok := in.cached("u1"); return !ok })
	}
	t.Logf("commit -> every instance dropped the key: %v", time.Since(start))
	for _, in := range []*instance{a, b, c} {
		if v, err := in.get(ctx, "u1"); err != nil || v != "new" {
			t.Errorf("%s: got %q, %v, want new", in.name, v, err)
		}
	}
	j, err := json.Marshal(b.bus.Stats())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"connected":true`) || !strings.Contains(string(j), `"invalidations":1`) {
		t.Errorf("Stats JSON %s, want connected and one invalidation", j)
	}
}

// stalePaused writes while the replica's replay is paused, sends the
// invalidation from a, refills b and c while the replica still shows the
// old value, resumes replay and reports which instances then still hold
// the old value.
func stalePaused(t *testing.T, cfg config) (stale []string) {
	a, b, c := newInstance(t, "a", cfg), newInstance(t, "b", cfg), newInstance(t, "c", cfg)
	ctx := context.Background()
	write(t, "u2", "v1")
	replicated(t)
	for _, in := range []*instance{a, b, c} {
		if v, err := in.get(ctx, "u2"); err != nil || v != "v1" {
			t.Fatalf("%s: got %q, %v, want v1", in.name, v, err)
		}
	}
	resume := pauseReplay(t)
	write(t, "u2", "v2")
	if err := a.bus.Send(ctx, a.users.Key("u2")); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{b, c} {
		waitFor(t, 2*time.Second, in.name+" drops u2", func() bool { _, ok := in.cached("u2"); return !ok })
	}
	// Misses on every instance while the replica is behind.
	for _, in := range []*instance{a, b, c} {
		if _, err := in.get(ctx, "u2"); err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
	}
	resume()
	replicated(t)
	for _, in := range []*instance{a, b, c} {
		if v, err := in.get(ctx, "u2"); err != nil {
			t.Fatalf("%s: %v", in.name, err)
		} else if v != "v2" {
			stale = append(stale, in.name)
		}
	}
	return stale
}

// With replay paused, an invalidation never lets a lagging replica put the
// old value back; with position-aware refill off, it does (the test bites).
func TestNoStaleRefillFromLaggingReplica(t *testing.T) {
	pgtestNeed(t)
	t.Run("refill at position", func(t *testing.T) {
		if stale := stalePaused(t, config{}); len(stale) > 0 {
			t.Errorf("stale after replay resumed on %v, want none", stale)
		}
	})
	t.Run("refill off", func(t *testing.T) {
		stale := stalePaused(t, config{noRefill: true})
		// a applied its own Send before b and c heard it, but all three
		// refilled from the paused replica.
		if !slices.Equal(stale, []string{"a", "b", "c"}) {
			t.Errorf("without position-aware refill: stale on %v, want [a b c] (the mechanism is what prevents it)", stale)
		}
	})
}

// SendTx notifies only if the transaction commits, and receivers refill at
// a position that covers the commit although the notification carried
// none.
func TestSendTx(t *testing.T) {
	a, b := newInstance(t, "a", config{}), newInstance(t, "b", config{})
	ctx := context.Background()
	write(t, "u3", "v1")
	replicated(t)
	for _, in := range []*instance{a, b} {
		if v, _ := in.get(ctx, "u3"); v != "v1" {
			t.Fatalf("%s: got %q, want v1", in.name, v)
		}
	}
	primary := openDB(t, cluster.Primary.DSN)

	// Rolled back: nobody hears anything. A heartbeat from b that comes
	// back proves b's listener had its chance.
	tx, err := primary.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE coherent_kv SET v = 'rolled back' WHERE k = 'u3'`); err != nil {
		t.Fatal(err)
	}
	if err := a.bus.SendTx(ctx, tx, a.users.Key("u3")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := a.bus.Send(ctx, a.users.Key("unrelated")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b hears the later Send", func() bool { return b.bus.Stats().Invalidations >= 1 })
	if v, ok := b.cached("u3"); !ok || v != "v1" {
		t.Fatalf("b after rollback: cached %q %v, want v1 still cached", v, ok)
	}

	// Committed with replay paused: b drops the key and refills from the
	// primary.
	resume := pauseReplay(t)
	tx, err = primary.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE coherent_kv SET v = 'v2' WHERE k = 'u3'`); err != nil {
		t.Fatal(err)
	}
	if err := a.bus.SendTx(ctx, tx, a.users.Key("u3")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		waitFor(t, 2*time.Second, in.name+" drops u3", func() bool { _, ok := in.cached("u3"); return !ok })
		if v, err := in.get(ctx, "u3"); err != nil || v != "v2" {
			t.Errorf("%s refilled %q, %v while the replica lags; want v2", in.name, v, err)
		}
	}
	resume()
}

// Thousands of keys in one Send go out split into payloads under 8000
// bytes, and every one arrives.
func TestSendSplitsLargeBatches(t *testing.T) {
	a, b := newInstance(t, "a", config{}), newInstance(t, "b", config{})
	const n = 3000
	items := make([]coherent.Item, n)
	for i := range items {
		key := fmt.Sprintf("user:%08d:with a rather long key and spaces", i)
		b.local.Set(key, "x")
		items[i] = a.users.Key(key)
	}
	before := a.bus.Stats().Sent
	if err := a.bus.Send(context.Background(), items...); err != nil {
		t.Fatal(err)
	}
	if sent := a.bus.Stats().Sent - before; sent < 2 {
		t.Errorf("sent %d notifications for %d keys, want several", sent, n)
	}
	waitFor(t, 5*time.Second, "b drops every key", func() bool { return b.local.Len() == 0 })
}

// Concurrent Sends share statements (group commit) and all arrive.
func TestConcurrentSendsBatch(t *testing.T) {
	a, b := newInstance(t, "a", config{}), newInstance(t, "b", config{})
	const senders, each = 8, 50
	for i := range senders * each {
		b.local.Set(fmt.Sprint("k", i), "x")
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				if err := a.bus.Send(context.Background(), a.users.Key(fmt.Sprint("k", s*each+i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 5*time.Second, "b drops every key", func() bool { return b.local.Len() == 0 })
}

func pgtestNeed(t *testing.T) {
	t.Helper()
	if cluster == nil {
		newInstance(t, "probe", config{}) // skips, or fails under CI
	}
}

// A request whose client is pinned (replicapin marks it through
// reqstate) reads through the typed cache and stores what it read; so
// does a request after it sent an invalidation.
func TestPinnedRequestReadsThrough(t *testing.T) {
	b := newInstance(t, "b", config{})
	write(t, "p1", "old")
	replicated(t)
	ctx := context.Background()
	if v, _ := b.get(ctx, "p1"); v != "old" {
		t.Fatalf("got %q, want old", v)
	}
	write(t, "p1", "new") // no Send: b's entry is now stale
	replicated(t)
	if v, _ := b.get(ctx, "p1"); v != "old" {
		t.Fatalf("unpinned: got %q, want the cached old", v)
	}
	r, st := reqstate.Ensure(httptest.NewRequest("GET", "/", nil))
	st.Bypass()
	if v, _ := b.get(r.Context(), "p1"); v != "new" {
		t.Errorf("pinned: got %q, want new", v)
	}
	if v, _ := b.cached("p1"); v != "new" {
		t.Errorf("after the pinned read the cache holds %q, want new", v)
	}

	write(t, "p1", "newer")
	replicated(t)
	r, _ = reqstate.Ensure(httptest.NewRequest("POST", "/", nil))
	if err := b.bus.Send(r.Context(), b.users.Key("unrelated")); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.get(r.Context(), "p1"); v != "newer" {
		t.Errorf("after Send in the same request: got %q, want newer", v)
	}
}

func TestOptionsValidation(t *testing.T) {
	dial := func(context.Context) (coherent.Listener, error) { return nil, errStop }
	db := &sql.DB{}
	tests := []struct {
		name string
		opts coherent.Options
		want string
	}{
		{"no dial", coherent.Options{DB: db}, "coherent: New: Options.Dial is required"},
		{"no db", coherent.Options{Dial: dial}, "coherent: New: Options.DB is required"},
		{"negative", coherent.Options{Dial: dial, DB: db, Heartbeat: -1}, "coherent: New: Options.Heartbeat must not be negative"},
		{"negative marks", coherent.Options{Dial: dial, DB: db, MaxMarks: -1}, "coherent: New: Options.MaxMarks must not be negative"},
		{"bad channel", coherent.Options{Dial: dial, DB: db, Channel: "Bad-Name"}, `coherent: New: Options.Channel "Bad-Name" must be 1 to 63 lower-case letters, digits or underscores`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus, err := coherent.New(tt.opts)
			if err == nil {
				bus.Close()
				t.Fatalf("got no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("got %q, want %q", err, tt.want)
			}
		})
	}
}

// Send applies its items to its own instance whatever happens: with a
// caller that gave up (the batch still goes, and others hear it), and
// after Close (nothing goes out, ErrClosed).
func TestSendAppliesLocallyAlways(t *testing.T) {
	a, b := newInstance(t, "a", config{}), newInstance(t, "b", config{})
	for _, in := range []*instance{a, b} {
		in.local.Set("s1", "old")
		in.local.Set("s2", "old")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.bus.Send(ctx, a.users.Key("s1")); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		waitFor(t, 2*time.Second, in.name+" drops s1", func() bool { _, ok := in.cached("s1"); return !ok })
	}
	a.bus.Close()
	if err := a.bus.Send(context.Background(), a.users.Key("s2")); !errors.Is(err, coherent.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if _, ok := a.cached("s2"); ok {
		t.Error("Send after Close left the key in its own cache")
	}
}
