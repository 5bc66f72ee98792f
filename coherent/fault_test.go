package coherent_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/coherent"
)

// load runs readers on in until stop is closed, through its coherent cache.
func load(in *instance, keys []string, stop <-chan struct{}, wg *sync.WaitGroup) {
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				in.get(context.Background(), keys[rand.IntN(len(keys))])
			}
		})
	}
}

// The listener's connection is killed under load while a write happens
// that its instance therefore never hears of: on reconnecting, the
// instance flushes, so no stale value survives the reconnect, and no
// request fails meanwhile.
func TestListenerKilledUnderLoad(t *testing.T) {
	a, b := newInstance(t, "a", config{}), newInstance(t, "b", config{})
	ctx := context.Background()
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprint("kill", i)
		write(t, keys[i], "v0")
	}
	replicated(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	load(b, keys, stop, &wg)
	// A writer on a keeps writing and sending throughout.
	var writes atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := keys[1+i%(len(keys)-1)]
			write(t, k, fmt.Sprint("w", i))
			if err := a.bus.Send(ctx, a.users.Key(k)); err != nil {
				t.Error(err)
			}
			writes.Add(1)
		}
	})
	waitFor(t, 5*time.Second, "b serving hits", func() bool { return b.local.Len() == len(keys) })

	gate := make(chan struct{})
	b.gate.Store(&gate)
	killed := time.Now()
	if err := cluster.Primary.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'coherent_b'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b notices the kill", func() bool { return !b.bus.Stats().Connected })
	// A write b cannot hear of: its cached value for keys[0] is now stale.
	write(t, keys[0], "during the gap")
	if err := a.bus.Send(ctx, a.users.Key(keys[0])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b caches keys[0] again", func() bool { _, ok := b.cached(keys[0]); return ok })
	if v, _ := b.cached(keys[0]); v != "v0" {
		t.Logf("b refilled keys[0] from a read after the write: %q", v)
	}
	b.gate.Store(nil)
	close(gate)
	waitFor(t, 5*time.Second, "b reconnects", func() bool { s := b.bus.Stats(); return s.Connected && s.Connects == 2 })
	gap := time.Since(killed)
	if v, ok := b.cached(keys[0]); ok && v != "during the gap" {
		t.Errorf("b holds %q for keys[0] after reconnecting, want it flushed", v)
	}
	if v, err := b.get(ctx, keys[0]); err != nil || v != "during the gap" {
		t.Errorf("b reads %q, %v after reconnecting; want the write made during the gap", v, err)
	}
	close(stop)
	wg.Wait()
	st := b.bus.Stats()
	if st.Flushes < 2 {
		t.Errorf("b flushed %d times, want at least 2 (connect, reconnect)", st.Flushes)
	}
	if n := b.errs.Load(); n != 0 {
		t.Errorf("%d reads on b failed, want 0", n)
	}
	// Every key b holds now is the latest value.
	replicated(t)
	for _, k := range keys {
		waitFor(t, 2*time.Second, "b agrees on "+k, func() bool {
			v, ok := b.cached(k)
			want, _ := a.get(ctx, k)
			return !ok || v == want
		})
	}
	t.Logf("kill -> reconnected and flushed: %v (gate held it); %d writes, %d loads on b, stats %+v", gap, writes.Load(), b.loads.Load(), st)
}

// muteListener stops delivering notifications, like a connection that
// died without the socket noticing.
type muteListener struct {
	coherent.Listener
	mute *atomic.Bool
}

func (l muteListener) WaitForNotification(ctx context.Context) (string, error) {
	for {
		p, err := l.Listener.WaitForNotification(ctx)
		if err != nil || !l.mute.Load() {
			return p, err
		}
	}
}

// A listener that stops hearing the channel is found out by the heartbeat
// within MaxSilence, and the instance reconnects and flushes.
func TestSilentListenerFlushes(t *testing.T) {
	var mute atomic.Bool
	b := newInstance(t, "b", config{
		heartbeat:  20 * time.Millisecond,
		maxSilence: 100 * time.Millisecond,
		wrap: func(l coherent.Listener) coherent.Listener {
			return muteListener{l, &mute}
		},
	})
	b.local.Set("x", "cached")
	before := b.bus.Stats()
	mute.Store(true)
	start := time.Now()
	waitFor(t, 5*time.Second, "b reconnects", func() bool { return b.bus.Stats().Connects > before.Connects })
	mute.Store(false)
	if _, ok := b.cached("x"); ok {
		t.Error("b kept its entries after reconnecting")
	}
	t.Logf("silence -> reconnected and flushed in %v", time.Since(start))
}

// The primary stops while a key is marked at a position the (paused)
// replica has not replayed: the instance keeps answering, hits and misses
// (from the replica, TTL-bounded while disconnected), then reconnects and
// flushes when the primary is back.
func TestPrimaryRestart(t *testing.T) {
	a, b := newInstance(t, "a", config{}), newInstance(t, "b", config{})
	ctx := context.Background()
	write(t, "r1", "v1")
	write(t, "r2", "v1")
	replicated(t)
	for _, k := range []string{"r1", "r2"} {
		if v, err := b.get(ctx, k); err != nil || v != "v1" {
			t.Fatalf("got %q, %v", v, err)
		}
	}
	resume := pauseReplay(t)
	write(t, "r1", "v2")
	if err := a.bus.Send(ctx, a.users.Key("r1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b drops r1", func() bool { _, ok := b.cached("r1"); return !ok })
	if err := cluster.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Primary.Start(context.Background()) })
	waitFor(t, 5*time.Second, "b notices", func() bool { return !b.bus.Stats().Connected })
	if v, err := b.get(ctx, "r2"); err != nil || v != "v1" {
		t.Errorf("hit while the primary is down: %q, %v", v, err)
	}
	if v, err := b.get(ctx, "r1"); err != nil {
		t.Errorf("marked miss while the primary is down: %q, %v; want a read from the replica", v, err)
	}
	resume()
	if err := cluster.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b reconnects", func() bool { s := b.bus.Stats(); return s.Connected && s.Connects >= 2 })
	for _, k := range []string{"r1", "r2"} {
		if _, ok := b.cached(k); ok {
			t.Errorf("b kept %s after reconnecting", k)
		}
	}
	if v, err := b.get(ctx, "r1"); err != nil || v != "v2" {
		t.Errorf("after reconnecting: %q, %v; want v2", v, err)
	}
	if n := b.errs.Load(); n != 0 {
		t.Errorf("%d reads on b failed, want 0", n)
	}
	if s := b.bus.Stats(); s.LastError == "" {
		t.Error("Stats.LastError is empty after an outage")
	}
}
