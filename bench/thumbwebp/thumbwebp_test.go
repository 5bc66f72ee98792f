package thumbwebp

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/disintegration/imaging"
	"github.com/gen2brain/webp"

	"github.com/sharednothing/sharednothing/thumbnail"
)

// photoGlob finds real photographs: Debian's mate-backgrounds package
// (apt-get install mate-backgrounds) ships twelve nature photos, 1.2 to 5
// megapixels.
const photoGlob = "/usr/share/backgrounds/mate/nature/*.jpg"

// jpegQuality is the quality WebP is matched against: thumbnail's default.
const jpegQuality = thumbnail.DefaultQuality

var sizes = []int{256, 1024}

// thumbs returns the photos fitted into size×size with Lanczos: what the
// encoders get in a real render.
var thumbs = sync.OnceValues(func() (map[int][]*image.NRGBA, error) {
	paths, _ := filepath.Glob(photoGlob)
	sort.Strings(paths)
	out := map[int][]*image.NRGBA{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		m, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, s := range sizes {
			out[s] = append(out[s], imaging.Fit(m, s, s, imaging.Lanczos))
		}
	}
	return out, nil
})

func photos(tb testing.TB, size int) []*image.NRGBA {
	tb.Helper()
	t, err := thumbs()
	if err != nil {
		tb.Fatal(err)
	}
	if len(t[size]) == 0 {
		tb.Skipf("no photos at %s (apt-get install mate-backgrounds)", photoGlob)
	}
	return t[size]
}

// match is one photo's JPEG at jpegQuality and the smallest-quality WebP
// at least as similar (SSIM) to the uncompressed thumbnail.
type match struct {
	jpegBytes, webpBytes int
	jpegSSIM, webpSSIM   float64
	webpQuality          int
}

var matches = map[int][]match{}
var matchesMu sync.Mutex

func matched(tb testing.TB, size int) []match {
	matchesMu.Lock()
	defer matchesMu.Unlock()
	if m, ok := matches[size]; ok {
		return m
	}
	var out []match
	for _, m := range photos(tb, size) {
		var jb bytes.Buffer
		if err := jpeg.Encode(&jb, opaque(m), &jpeg.Options{Quality: jpegQuality}); err != nil {
			tb.Fatal(err)
		}
		jm, _ := jpeg.Decode(bytes.NewReader(jb.Bytes()))
		mt := match{jpegBytes: jb.Len(), jpegSSIM: ssim(m, jm)}
		lo, hi := 1, 100 // the smallest q whose SSIM reaches JPEG's
		for lo < hi {
			q := (lo + hi) / 2
			n, s := webpAt(tb, m, q)
			if s >= mt.jpegSSIM {
				hi = q
				mt.webpBytes, mt.webpSSIM = n, s
			} else {
				lo = q + 1
			}
		}
		mt.webpQuality = lo
		mt.webpBytes, mt.webpSSIM = webpAt(tb, m, lo)
		out = append(out, mt)
	}
	matches[size] = out
	return out
}

// opaque views an opaque NRGBA image as RGBA, which image/jpeg encodes on
// its fast path, as thumbnail does.
func opaque(m *image.NRGBA) *image.RGBA {
	return &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
}

func webpAt(tb testing.TB, m image.Image, q int) (int, float64) {
	var b bytes.Buffer
	if err := Encode(&b, m, q); err != nil {
		tb.Fatal(err)
	}
	d, err := webp.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		tb.Fatal(err)
	}
	return b.Len(), ssim(m, webpRGB(d))
}

// TestEqualSSIM prints, per photo and size, the bytes of thumbnail's JPEG
// and of the WebP of equal SSIM, and checks that WebP reached it.
func TestEqualSSIM(t *testing.T) {
	t.Logf("webp backend: %s", backend())
	for _, size := range sizes {
		var jt, wt int
		for i, m := range matched(t, size) {
			t.Logf("%4d px photo %2d: jpeg q%d %6d B ssim %.4f | webp q%-3d %6d B ssim %.4f | %.2fx", size, i,
				jpegQuality, m.jpegBytes, m.jpegSSIM, m.webpQuality, m.webpBytes, m.webpSSIM, float64(m.webpBytes)/float64(m.jpegBytes))
			if m.webpSSIM < m.jpegSSIM {
				t.Errorf("photo %d: webp never reached jpeg's SSIM %.4f", i, m.jpegSSIM)
			}
			jt += m.jpegBytes
			wt += m.webpBytes
		}
		t.Logf("%4d px total: jpeg %d B, webp %d B at equal SSIM: %.2fx", size, jt, wt, float64(wt)/float64(jt))
	}
}

func backend() string {
	if err := webp.Dynamic(); err == nil {
		return "system libwebp via purego"
	}
	return "libwebp in WebAssembly (wazero)"
}

// BenchmarkEncode times encoding the photos' thumbnails as JPEG at
// thumbnail's default quality and as WebP at the quality of equal SSIM
// found per photo; B/img is the mean output size.
func BenchmarkEncode(b *testing.B) {
	for _, size := range sizes {
		imgs := photos(b, size)
		ms := matched(b, size)
		for _, format := range []string{"jpeg", "webp"} {
			b.Run(fmt.Sprintf("%s/%d", format, size), func(b *testing.B) {
				b.ReportAllocs()
				var buf bytes.Buffer
				var total, n int
				for b.Loop() {
					i := n % len(imgs)
					buf.Reset()
					var err error
					if format == "jpeg" {
						err = jpeg.Encode(&buf, opaque(imgs[i]), &jpeg.Options{Quality: jpegQuality})
					} else {
						err = Encode(&buf, imgs[i], ms[i].webpQuality)
					}
					if err != nil {
						b.Fatal(err)
					}
					total += buf.Len()
					n++
				}
				b.ReportMetric(float64(total)/float64(n), "B/img")
			})
		}
	}
}

// TestHandlerServesWebP: the adapter plugged into a thumbnail.Handler
// serves a decodable WebP to a browser that accepts it.
func TestHandlerServesWebP(t *testing.T) {
	dir := t.TempDir()
	var src bytes.Buffer
	jpeg.Encode(&src, imaging.New(640, 480, image.White.C), nil)
	if err := os.WriteFile(filepath.Join(dir, "cat.jpg"), src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := thumbnail.New(thumbnail.Options{
		Source: thumbnail.Dir(dir),
		Key:    bytes.Repeat([]byte("k"), 32),
		WebP:   Encode,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", h.URL("cat.jpg", thumbnail.Spec{Width: 200}), nil)
	req.Header.Set("Accept", "image/avif,image/webp,*/*")
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/webp" || resp.Header.Get("Vary") != "Accept" {
		t.Fatalf("got %d, %q, Vary %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Vary"))
	}
	cfg, err := webp.DecodeConfig(rec.Body)
	if err != nil || cfg.Width != 200 || cfg.Height != 150 {
		t.Errorf("got %dx%d, %v; want a 200x150 WebP", cfg.Width, cfg.Height, err)
	}
	t.Logf("first WebP render, runtime start included: %v", time.Since(start))
}
