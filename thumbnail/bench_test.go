package thumbnail

import (
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/disintegration/imaging"
)

var (
	bigOnce sync.Once
	bigJPEG []byte
)

// big12MP is a 4000×3000 camera-like JPEG (quality 90), made once.
func big12MP(tb testing.TB) []byte {
	bigOnce.Do(func() { bigJPEG = encodeJPEG(tb, photo(4000, 3000), 90) })
	return bigJPEG
}

// reference is imageproxy's pipeline: imaging.Decode, then imaging.Fit (or
// Fill) with Lanczos, then encode.
func reference(data []byte, sp Spec) (*image.NRGBA, []byte, error) {
	img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		return nil, nil, err
	}
	var m *image.NRGBA
	switch {
	case sp.Mode == Fill:
		m = imaging.Fill(img, sp.Width, sp.Height, imaging.Center, imaging.Lanczos)
	case sp.Width == 0 || sp.Height == 0:
		m = imaging.Resize(img, sp.Width, sp.Height, imaging.Lanczos)
	default:
		m = imaging.Fit(img, sp.Width, sp.Height, imaging.Lanczos)
	}
	var buf bytes.Buffer
	err = jpeg.Encode(&buf, m, &jpeg.Options{Quality: sp.quality()})
	return m, buf.Bytes(), err
}

// ours is this package's resampling, before encoding, for PSNR.
func ours(tb testing.TB, data []byte, sp Spec) *image.NRGBA {
	d, err := decode(data, sp, 50_000_000, 4096)
	if err != nil {
		tb.Fatal(err)
	}
	return thumb(d.img, d.plan, d.orientation)
}

// psnr compares two images of the same size over R, G and B.
func psnr(tb testing.TB, a, b *image.NRGBA) float64 {
	if a.Rect.Size() != b.Rect.Size() {
		tb.Fatalf("sizes differ: %v vs %v", a.Rect.Size(), b.Rect.Size())
	}
	var se float64
	var n int
	for y := 0; y < a.Rect.Dy(); y++ {
		for x := 0; x < a.Rect.Dx(); x++ {
			pa, pb := a.Pix[y*a.Stride+4*x:], b.Pix[y*b.Stride+4*x:]
			for c := 0; c < 3; c++ {
				d := float64(pa[c]) - float64(pb[c])
				se += d * d
				n++
			}
		}
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

// TestPSNRAgainstReference checks that the fast paths (box pre-shrink,
// 1/8-scale DC decode) stay within 35 dB of imageproxy's direct Lanczos on
// camera-like images.
func TestPSNRAgainstReference(t *testing.T) {
	// Sizes are small enough for the race detector; each source is at least
	// twice its targets (box path) or ten times (DC path).
	jpeg4x3 := encodeJPEG(t, photo(1000, 750), 90)
	tests := []struct {
		name  string
		data  []byte
		specs []Spec
	}{
		{"jpeg 640x480 box", encodeJPEG(t, photo(640, 480), 90), []Spec{{Width: 120, Height: 120}, {Width: 120, Height: 120, Mode: Fill}, {Width: 100}, {Width: 164, Height: 164}}},
		{"jpeg 1000x750 dc", jpeg4x3, []Spec{{Width: 64, Height: 64}, {Width: 64, Height: 64, Mode: Fill}, {Height: 50}}},
		{"jpeg 803x601 odd", encodeJPEG(t, photo(803, 601), 90), []Spec{{Width: 40, Height: 120, Mode: Fill}, {Width: 80}}},
		{"jpeg exif 6", withEXIF(jpeg4x3, 6), []Spec{{Width: 64, Height: 64}, {Width: 100, Height: 60, Mode: Fill}}},
		{"png 600x420", encodePNG(t, photo(600, 420)), []Spec{{Width: 150, Height: 150}, {Width: 40, Height: 120, Mode: Fill}}},
		{"gif 400x300", gifOf(t, photo(400, 300)), []Spec{{Width: 64, Height: 64}}},
	}
	for _, tt := range tests {
		for _, sp := range tt.specs {
			t.Run(fmt.Sprintf("%s/%s", tt.name, sp), func(t *testing.T) {
				ref, _, err := reference(tt.data, sp)
				if err != nil {
					t.Fatal(err)
				}
				got := ours(t, tt.data, sp)
				if p := psnr(t, got, ref); p < 35 {
					t.Errorf("PSNR %.1f dB, want ≥ 35", p)
				} else {
					t.Logf("PSNR %.1f dB", p)
				}
			})
		}
	}
}

// progressive7000 is a 7000×7000 progressive JPEG (49 MP), made with
// jpegtran from a smooth image, or nil without jpegtran.
func progressive7000(tb testing.TB) []byte {
	path, err := exec.LookPath("jpegtran")
	if err != nil {
		tb.Log("no jpegtran: skipping the progressive 7000×7000 case")
		return nil
	}
	m := image.NewGray(image.Rect(0, 0, 7000, 7000))
	for y := 0; y < 7000; y++ {
		for x := 0; x < 7000; x++ {
			m.Pix[y*m.Stride+x] = uint8((x/30 + y/50) % 256)
		}
	}
	cmd := exec.Command(path, "-progressive")
	cmd.Stdin = bytes.NewReader(encodeJPEG(tb, photoColour(m), 75))
	out, err := cmd.Output()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// photoColour turns a gray image into YCbCr 4:2:0 with a chroma gradient.
func photoColour(g *image.Gray) *image.YCbCr {
	r := g.Rect
	m := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
	copy(m.Y, g.Pix)
	for i := range m.Cb {
		m.Cb[i] = uint8(100 + i%40)
		m.Cr[i] = uint8(150 - i%30)
	}
	return m
}

// BenchmarkRender12MP compares this package's render of a 12 MP JPEG to a
// 256 px thumbnail (fit and fill) against the reference pipeline.
func BenchmarkRender12MP(b *testing.B) {
	data := big12MP(b)
	for _, sp := range []Spec{{Width: 256, Height: 256}, {Width: 256, Height: 256, Mode: Fill}, {Width: 1024, Height: 1024}} {
		mode := "fit"
		if sp.Mode == Fill {
			mode = "fill"
		}
		if sp.Width != 256 {
			mode += strconv.Itoa(sp.Width)
		}
		b.Run(mode+"/ours", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := renderBytes(data, sp, 50_000_000, 4096); err != nil {
					b.Fatal(err)
				}
			}
			ref, _, _ := reference(data, sp)
			b.ReportMetric(psnr(b, ours(b, data, sp), ref), "dB-PSNR")
		})
		b.Run(mode+"/reference", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := reference(data, sp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode12MP is the floor both pipelines share: image/jpeg.
func BenchmarkDecode12MP(b *testing.B) {
	data := big12MP(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheHit serves a thumbnail from the memory cache through the
// whole handler, including the source Stat that versions it.
func BenchmarkCacheHit(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.jpg"), big12MP(b), 0o644); err != nil {
		b.Fatal(err)
	}
	h := newHandler(b, Options{Source: Dir(dir)})
	u := h.URL("big.jpg", Spec{Width: 256, Height: 256})
	if r := get(h, "GET", u); r.StatusCode != 200 {
		b.Fatal(r.Status)
	}
	req := httptest.NewRequest("GET", u, nil)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
	if n := h.renders.Load(); n != 1 {
		b.Fatalf("%d renders, want 1", n)
	}
}

// BenchmarkPeakHeap32 sends 32 concurrent requests for distinct thumbnails
// of a 12 MP JPEG (so nothing coalesces or hits the cache) and reports the
// peak heap in use, sampled every millisecond. At 256 px renders take the
// 1/8-scale DC decode; at 1024 px they decode the full image.
func BenchmarkPeakHeap32(b *testing.B) {
	dir := b.TempDir()
	// 32 copies: the queue renders one source at a time, and this measures
	// 32 renders at once.
	big := big12MP(b)
	prog := progressive7000(b)
	for i := range 32 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("big-%d.jpg", i)), big, 0o644); err != nil {
			b.Fatal(err)
		}
		if prog != nil {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("prog-%d.jpg", i)), prog, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		size int
	}{{"big", 256}, {"big", 1024}, {"prog", 256}} {
		size := tc.size
		if tc.name == "prog" && prog == nil {
			continue
		}
		b.Run(fmt.Sprintf("%s/%dpx", tc.name, size), func(b *testing.B) {
			// A long QueueTimeout: this measures memory, not the 503 path.
			h := noMemoryCache(newHandler(b, Options{Source: Dir(dir), QueueTimeout: 10 * time.Minute}))
			runtime.GC()
			var peak uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var ms runtime.MemStats
				t := time.NewTicker(time.Millisecond)
				defer t.Stop()
				for {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
					select {
					case <-stop:
						return
					case <-t.C:
					}
				}
			}()
			n := 0
			for b.Loop() {
				var wg sync.WaitGroup
				for i := 0; i < 32; i++ {
					u := h.URL(fmt.Sprintf("%s-%d.jpg", tc.name, i), Spec{Width: size + n})
					wg.Go(func() {
						if r := get(h, "GET", u); r.StatusCode != 200 {
							b.Error(r.Status)
						}
					})
				}
				wg.Wait()
				n++
			}
			close(stop)
			<-sampled
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}

// discardWriter is a ResponseWriter that keeps the status and drops the
// body, so the benchmark measures the handler rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func gifOf(t testing.TB, m image.Image) []byte {
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
