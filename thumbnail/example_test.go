package thumbnail_test

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/thumbnail"
)

// Example mounts the handler at /thumbs on a ServeMux and builds a signed
// URL for a template.
func Example() {
	dir, _ := os.MkdirTemp("", "uploads")
	defer os.RemoveAll(dir)
	writeJPEG(filepath.Join(dir, "cat.jpg"), 800, 600)

	secret := []byte("an application secret of 32+ bytes, shared by every instance")
	thumbs, err := thumbnail.New(thumbnail.Options{
		Source:  thumbnail.Dir(dir),
		Key:     sharednothing.DeriveKey(secret, "thumbnail"),
		Prefix:  "/thumbs",
		Presets: map[string]thumbnail.Spec{"avatar": {Width: 64, Height: 64, Mode: thumbnail.Fill}},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/thumbs/", http.StripPrefix("/thumbs", thumbs)) // with chi: r.Mount("/thumbs", thumbs)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, u := range []string{
		thumbs.URL("cat.jpg", thumbnail.Spec{Width: 200, Height: 200}), // signed: /thumbs/200x200/cat.jpg?s=…
		thumbs.PresetURL("avatar", "cat.jpg"),                          // presets need no signature
		"/thumbs/200x200/cat.jpg",                                      // unsigned: refused
	} {
		resp, err := http.Get(srv.URL + u)
		if err != nil {
			panic(err)
		}
		m, _, err := image.DecodeConfig(resp.Body)
		resp.Body.Close()
		if err != nil {
			fmt.Println(resp.StatusCode)
			continue
		}
		fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), m.Width, m.Height)
	}
	// Output:
	// 200 image/jpeg 200 150
	// 200 image/jpeg 64 64
	// 403
}

func writeJPEG(path string, w, h int) {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, m, nil); err != nil {
		panic(err)
	}
}

// ExampleParseSpec shows the canonical form URLs are signed over.
func ExampleParseSpec() {
	sp, err := thumbnail.ParseSpec("png,fill,q82,300x200")
	fmt.Println(sp, err)
	_, err = thumbnail.ParseSpec("300x200,fill,fit")
	fmt.Println(err)
	// Output:
	// 300x200,fill,png <nil>
	// thumbnail: bad spec: option "fit" repeats or conflicts with an earlier one
}

// ExampleOrigin renders thumbnails of images fetched from an HTTP origin.
func ExampleOrigin() {
	dir, _ := os.MkdirTemp("", "origin")
	defer os.RemoveAll(dir)
	writeJPEG(filepath.Join(dir, "dog.jpg"), 640, 480)
	origin := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer origin.Close()

	thumbs, err := thumbnail.New(thumbnail.Options{
		Source: thumbnail.Origin(origin.URL, &http.Client{Timeout: 5 * time.Second}),
		Key:    sharednothing.DeriveKey([]byte("an application secret of 32+ bytes, shared by every instance"), "thumbnail"),
	})
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"dog.jpg", "missing.jpg"} {
		rec := httptest.NewRecorder()
		thumbs.ServeHTTP(rec, httptest.NewRequest("GET", thumbs.URL(name, thumbnail.Spec{Width: 100, Height: 100, Mode: thumbnail.Fill, Format: thumbnail.PNG}), nil))
		fmt.Println(name, rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// dog.jpg 200 image/png
	// missing.jpg 404 text/plain; charset=utf-8
}
