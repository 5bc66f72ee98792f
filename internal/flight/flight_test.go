package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

func TestDoCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		var runs atomic.Int32
		release := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]int, 5)
		for i := range results {
			wg.Go(func() {
				v, err, _ := g.Do(context.Background(), "k", func(context.Context) (int, error) {
					runs.Add(1)
					<-release
					return 42, nil
				})
				if err != nil {
					t.Error(err)
				}
				results[i] = v
			})
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Errorf("fn ran %d times, want 1", n)
		}
		for i, v := range results {
			if v != 42 {
				t.Errorf("caller %d got %d, want 42", i, v)
			}
		}
	})
}

func TestDoCancelsWhenEveryoneLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		cancelled := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			_, err, _ := g.Do(ctx, "k", func(wctx context.Context) (int, error) {
				<-wctx.Done()
				close(cancelled)
				return 0, wctx.Err()
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
		}()
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case <-cancelled:
		default:
			t.Fatal("work not cancelled after its only caller left")
		}
	})
}

func TestDoPanic(t *testing.T) {
	var g Group[int, int]
	_, err, _ := g.Do(context.Background(), 1, func(context.Context) (int, error) { panic("boom") })
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("got %v, want a PanicError with boom", err)
	}
	v, err, _ := g.Do(context.Background(), 1, func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatalf("after a panic: got %d, %v; want 7, nil", v, err)
	}
}

// TestDoAfterEveryoneLeftStartsAfresh: once every caller has gone, the
// next caller for the key must not join the cancelled work.
func TestDoAfterEveryoneLeftStartsAfresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		go g.Do(ctx, "k", func(wctx context.Context) (int, error) {
			<-wctx.Done()
			<-release // slow to notice, still running
			return 0, wctx.Err()
		})
		synctest.Wait()
		cancel()
		synctest.Wait()
		v, err, _ := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 2, nil })
		if v != 2 || err != nil {
			t.Errorf("got %d, %v; want 2, nil from new work", v, err)
		}
		close(release)
	})
}

func TestForget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		release := make(chan struct{})
		first := make(chan int, 1)
		go func() {
			v, _, _ := g.Do(context.Background(), "k", func(context.Context) (int, error) {
				<-release
				return 1, nil
			})
			first <- v
		}()
		synctest.Wait()
		g.Forget("k")
		v, err, _ := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 2, nil })
		if v != 2 || err != nil {
			t.Errorf("after Forget got %d, %v; want 2, nil from new work", v, err)
		}
		close(release)
		if v := <-first; v != 1 {
			t.Errorf("the forgotten call's waiter got %d, want 1", v)
		}
	})
}
