package coherent_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/localcache"
)

// site is one instance's web tier: replicapin, coherent.Pages and the
// response cache in front of a page that shows a value read from the
// database, tagged "kv".
type site struct {
	*instance
	pages *coherent.Pages
	rc    *localcache.ResponseCache
	srv   *httptest.Server
}

func newSite(t *testing.T, name string, cfg config) *site {
	t.Helper()
	in := newInstance(t, name, cfg)
	rc, err := localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := coherent.NewPages(in.bus, "pages", rc)
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v string
		_, err := in.db.Read(r.Context(), func(q *sql.DB) error {
			return q.QueryRowContext(r.Context(), `SELECT v FROM coherent_kv WHERE k = 'page'`).Scan(&v)
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		localcache.Tag(r, "kv")
		w.Header().Set("Cache-Control", "public, max-age=600")
		io.WriteString(w, v)
	})
	s := &site{instance: in, pages: pages, rc: rc}
	s.srv = httptest.NewServer(in.db.Handler(pages.Handler(rc.Handler(app))))
	t.Cleanup(s.srv.Close)
	return s
}

// page GETs the page and returns its body and X-Cache header.
func (s *site) page(t *testing.T) (body, xcache string) {
	t.Helper()
	res, err := http.Get(s.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s: status %d: %s", s.name, res.StatusCode, b)
	}
	return string(b), res.Header.Get("X-Cache")
}

// pagesPaused purges tag "kv" from a after a write made while the replica
// is paused, refills b's page, resumes replay and returns b's cached page.
func pagesPaused(t *testing.T, cfg config) string {
	a, b := newSite(t, "a", cfg), newSite(t, "b", cfg)
	write(t, "page", "v1")
	replicated(t)
	for _, s := range []*site{a, b} {
		s.page(t)
		if body, x := s.page(t); body != "v1" || x != "HIT" {
			t.Fatalf("%s: %q %s, want a cached v1", s.name, body, x)
		}
	}
	resume := pauseReplay(t)
	write(t, "page", "v2")
	if err := a.bus.Send(context.Background(), a.pages.Tag("kv")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b purges the tag", func() bool { return b.rc.Stats().Purged > 0 })
	b.page(t) // refill while the replica still shows v1
	resume()
	replicated(t)
	body, x := b.page(t)
	if x != "HIT" {
		t.Fatalf("b: X-Cache %s, want HIT", x)
	}
	return body
}

// A tag purged on one instance is purged on the others, and the refill
// reads at the write's position: the cached page is the new one even
// though the replica lagged. Without position-aware refill it is the old
// one for its whole max-age.
func TestPagesTagPurgeRefillsAtPosition(t *testing.T) {
	pgtestNeed(t)
	t.Run("refill at position", func(t *testing.T) {
		if got := pagesPaused(t, config{}); got != "v2" {
			t.Errorf("b caches %q, want v2", got)
		}
	})
	t.Run("refill off", func(t *testing.T) {
		if got := pagesPaused(t, config{noRefill: true}); got != "v1" {
			t.Errorf("without position-aware refill b caches %q; want the stale v1 (the mechanism is what prevents it)", got)
		}
	})
}

// A URL purged on one instance is purged on the others (behind one host
// name in production; here each test server has its own), and the refill
// of that path reads at the write's position.
func TestPagesURLPurge(t *testing.T) {
	a, b := newSite(t, "a", config{}), newSite(t, "b", config{})
	write(t, "page", "v1")
	replicated(t)
	b.page(t)
	if body, x := b.page(t); body != "v1" || x != "HIT" {
		t.Fatalf("b: %q %s, want a cached v1", body, x)
	}
	resume := pauseReplay(t)
	write(t, "page", "v2")
	if err := a.bus.Send(context.Background(), a.pages.URL(b.srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b purges the URL", func() bool { return b.rc.Stats().Purged > 0 })
	if body, _ := b.page(t); body != "v2" {
		t.Errorf("b refilled %q while the replica lags, want v2", body)
	}
	resume()
	if body, x := b.page(t); body != "v2" || x != "HIT" {
		t.Errorf("b: %q %s, want a cached v2", body, x)
	}
	if err := a.bus.Send(context.Background(), a.pages.URL("/relative")); !errors.Is(err, coherent.ErrBadURL) {
		t.Errorf("Send of a relative URL: got %v, want ErrBadURL", err)
	}
}
