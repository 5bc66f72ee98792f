package thumbnail_test

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
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

// ExampleOptions_webP turns WebP output on. A spec without a format is then
// negotiated by Accept; a real program passes a WebP encoder, such as the
// gen2brain/webp adapter in the repository's bench module
// (thumbwebp.Encode), where this example has a stand-in.
func ExampleOptions_webP() {
	dir, _ := os.MkdirTemp("", "uploads")
	defer os.RemoveAll(dir)
	writeJPEG(filepath.Join(dir, "cat.jpg"), 800, 600)

	thumbs, err := thumbnail.New(thumbnail.Options{
		Source: thumbnail.Dir(dir),
		Key:    sharednothing.DeriveKey([]byte("an application secret of 32+ bytes, shared by every instance"), "thumbnail"),
		WebP: func(w io.Writer, m image.Image, quality int) error { // stand-in for thumbwebp.Encode
			_, err := fmt.Fprintf(w, "RIFF....WEBP %dx%d q%d", m.Bounds().Dx(), m.Bounds().Dy(), quality)
			return err
		},
	})
	if err != nil {
		panic(err)
	}
	for _, tc := range []struct {
		spec   thumbnail.Spec
		accept string
	}{
		{thumbnail.Spec{Width: 200}, "image/avif,image/webp,*/*"}, // negotiated: WebP
		{thumbnail.Spec{Width: 200}, "image/*"},                   // negotiated: the source's JPEG
		{thumbnail.Spec{Width: 200, Format: thumbnail.JPEG}, "image/webp"},
	} {
		req := httptest.NewRequest("GET", thumbs.URL("cat.jpg", tc.spec), nil)
		req.Header.Set("Accept", tc.accept)
		rec := httptest.NewRecorder()
		thumbs.ServeHTTP(rec, req)
		fmt.Printf("%s %q: %s, Vary %q\n", tc.spec, tc.accept, rec.Header().Get("Content-Type"), rec.Header().Get("Vary"))
	}
	// Output:
	// 200x "image/avif,image/webp,*/*": image/webp, Vary "Accept"
	// 200x "image/*": image/jpeg, Vary "Accept"
	// 200x,jpeg "image/webp": image/jpeg, Vary ""
}

// ExampleHandler_Stats shows the counters, ready for expvar or a metrics
// exporter.
func ExampleHandler_Stats() {
	dir, _ := os.MkdirTemp("", "uploads")
	defer os.RemoveAll(dir)
	writeJPEG(filepath.Join(dir, "cat.jpg"), 800, 600)
	os.WriteFile(filepath.Join(dir, "notes.jpg"), []byte("not an image"), 0o644)

	thumbs, err := thumbnail.New(thumbnail.Options{
		Source:  thumbnail.Dir(dir),
		Presets: map[string]thumbnail.Spec{"small": {Width: 100}},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "no thumbnail", http.StatusNotFound)
		},
	})
	if err != nil {
		panic(err)
	}
	for _, path := range []string{"/small/cat.jpg", "/small/cat.jpg", "/small/notes.jpg", "/small/notes.jpg", "/small/missing.jpg"} {
		thumbs.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	b, _ := json.MarshalIndent(thumbs.Stats(), "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "renders": 2,
	//   "memory_hits": 1,
	//   "disk_hits": 0,
	//   "not_modified": 0,
	//   "coalesced": 0,
	//   "queue_rejections": 0,
	//   "remembered_failures": 1,
	//   "cancelled_renders": 0,
	//   "failures": {
	//     "404": 1,
	//     "415": 2
	//   },
	//   "running": 0,
	//   "waiting": 0
	// }
}
