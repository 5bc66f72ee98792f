package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMetrics checks that /metrics exports every component's Stats in the
// Prometheus text format, with values that move when the app is used.
func TestMetrics(t *testing.T) {
	srv := sqliteServer(t, 1<<20)

	// Two views of the home page: a miss, then a hit in the response cache.
	for range 2 {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.PostForm(srv.URL+"/login", url.Values{"name": {"ada"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	text := string(body)
	for _, want := range []string{
		"sharednothing_pages_hits 1",
		"sharednothing_pages_misses 1",
		"sharednothing_session_",
		"sharednothing_replicapin_",
		"sharednothing_thumbnail_",
		"sharednothing_logouts_",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}
