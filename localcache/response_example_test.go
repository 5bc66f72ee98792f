package localcache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/sharednothing/sharednothing/localcache"
)

// ExampleResponseCache_PurgeTag tags pages by what they show, then drops
// every page showing photos after an upload, whatever their URLs.
func ExampleResponseCache_PurgeTag() {
	pages, err := localcache.NewResponseCache(localcache.ResponseOptions{})
	if err != nil {
		panic(err)
	}
	defer pages.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Cache-Tag", "photos, home") // removed before it reaches the client
		fmt.Fprintln(w, "latest photos")
	})
	mux.HandleFunc("GET /photos/{id}", func(w http.ResponseWriter, r *http.Request) {
		localcache.Tag(r, "photos", "photo-"+r.PathValue("id"))
		w.Header().Set("Cache-Control", "public, max-age=300")
		fmt.Fprintln(w, "photo", r.PathValue("id"))
	})
	srv := httptest.NewServer(pages.Handler(mux))
	defer srv.Close()

	get := func(path string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		fmt.Println(path, res.Header.Get("X-Cache"), res.Header.Get("Cache-Tag") == "")
	}
	get("/")
	get("/photos/7")
	get("/")
	fmt.Println("purged:", pages.PurgeTag("photos"))
	get("/")
	fmt.Println("purged:", pages.PurgeTag("photo-7"))
	// Output:
	// / MISS true
	// /photos/7 MISS true
	// / HIT true
	// purged: 2
	// / MISS true
	// purged: 0
}

// ExampleResponseCache_Purge removes a URL whatever the scheme it is
// given with: behind a TLS-terminating proxy the cache sees http.
func ExampleResponseCache_Purge() {
	pages, err := localcache.NewResponseCache(localcache.ResponseOptions{})
	if err != nil {
		panic(err)
	}
	defer pages.Close()
	h := pages.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintln(w, "article")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com/articles/1", nil))
	n, err := pages.Purge("https://example.com/articles/1")
	fmt.Println(n, err)
	// Output: 1 <nil>
}
