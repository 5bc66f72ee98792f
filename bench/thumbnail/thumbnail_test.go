// Package thumbnail_test compares thumbnail renders with libvips (through
// govips and cgo) and with the imaging reference (imaging.Decode, then
// Fit with Lanczos), side by side in one process on the same files.
//
// The images come from images.sh (real photographs from Debian's
// wallpaper packages and cases derived from one); set THUMB_BENCH_DIR to
// its output directory (default /tmp/thumbnail-bench). Without them every
// benchmark and test here is skipped with a message.
package thumbnail_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/disintegration/imaging"

	sharednothing "github.com/sharednothing/sharednothing"
	"github.com/sharednothing/sharednothing/thumbnail"
)

// cases are the files of the table.
var cases = []struct{ name, file string }{
	{"12MP-420", "p12.420.jpg"},
	{"12MP-444", "p12.444.jpg"},
	{"24MP-420", "p24.420.jpg"},
	{"12MP-progressive", "p12.prog.jpg"},
	{"12MP-CMYK", "p12.cmyk.jpg"},
	{"real-2560x1600", "real.2560.jpg"},
}

var sizes = []int{256, 1024}

func benchDir(tb testing.TB) string {
	dir := os.Getenv("THUMB_BENCH_DIR")
	if dir == "" {
		dir = "/tmp/thumbnail-bench"
	}
	if _, err := os.Stat(filepath.Join(dir, cases[0].file)); err != nil {
		tb.Skipf("no benchmark images in %s: run bench/thumbnail/images.sh %s first", dir, dir)
	}
	return dir
}

var vipsOnce sync.Once

func startVips() {
	vipsOnce.Do(func() {
		vips.LoggingSettings(nil, vips.LogLevelError)
		vips.Startup(&vips.Config{ConcurrencyLevel: 1})
	})
}

// memSource serves one file's bytes under a new version on every call, so
// the handler's cache never answers and each request renders.
type memSource struct {
	data []byte
	n    atomic.Int64
}

func (s *memSource) info() thumbnail.Info {
	return thumbnail.Info{Version: strconv.FormatInt(s.n.Add(1), 10), Size: int64(len(s.data))}
}
func (s *memSource) Stat(context.Context, string) (thumbnail.Info, error) { return s.info(), nil }
func (s *memSource) Open(context.Context, string) (io.ReadCloser, thumbnail.Info, error) {
	return io.NopCloser(bytes.NewReader(s.data)), s.info(), nil
}

type contender func(tb testing.TB, data []byte, size int, format thumbnail.Format) []byte

// ours renders through a real Handler, as a server would.
func ours() contender {
	key := sharednothing.DeriveKey([]byte("bench secret, not a real one......"), "thumbnail")
	return func(tb testing.TB, data []byte, size int, format thumbnail.Format) []byte {
		src := &memSource{data: data}
		h, err := thumbnail.New(thumbnail.Options{Source: src, Key: key, CacheBytes: 1, RenderTimeout: time.Minute, QueueTimeout: time.Minute})
		if err != nil {
			tb.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", h.URL("img.jpg", thumbnail.Spec{Width: size, Height: size, Format: format, Quality: 85}), nil))
		if rec.Code != 200 {
			tb.Fatalf("ours: status %d: %s", rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
}

// libvips is vips_thumbnail_buffer (shrink-on-load, then Lanczos3), the
// engine of imgproxy.
func libvips(tb testing.TB, data []byte, size int, format thumbnail.Format) []byte {
	startVips()
	img, err := vips.NewThumbnailFromBuffer(data, size, size, vips.InterestingNone)
	if err != nil {
		tb.Fatal(err)
	}
	defer img.Close()
	var out []byte
	if format == thumbnail.PNG {
		out, _, err = img.ExportPng(vips.NewPngExportParams())
	} else {
		p := vips.NewJpegExportParams()
		p.Quality = 85
		p.StripMetadata = true
		out, _, err = img.ExportJpeg(p)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// reference decodes in full and resizes with Lanczos (imageproxy's way).
func reference(tb testing.TB, data []byte, size int, format thumbnail.Format) []byte {
	m := referenceImage(tb, data, size)
	var buf bytes.Buffer
	var err error
	if format == thumbnail.PNG {
		err = png.Encode(&buf, m)
	} else {
		err = jpeg.Encode(&buf, m, &jpeg.Options{Quality: 85})
	}
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func referenceImage(tb testing.TB, data []byte, size int) *image.NRGBA {
	img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		tb.Fatal(err)
	}
	return imaging.Fit(img, size, size, imaging.Lanczos)
}

var contenders = []struct {
	name string
	fn   func() contender
}{
	{"ours", ours},
	{"libvips", func() contender { return libvips }},
	{"imaging", func() contender { return reference }},
}

// BenchmarkThumbnail renders each case to JPEG at each size with each
// contender, one after the other in the same process.
func BenchmarkThumbnail(b *testing.B) {
	dir := benchDir(b)
	for _, c := range cases {
		data, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			b.Fatal(err)
		}
		for _, size := range sizes {
			for _, ct := range contenders {
				if ct.name == "imaging" && testing.Short() {
					continue
				}
				fn := ct.fn()
				b.Run(fmt.Sprintf("%s/%d/%s", c.name, size, ct.name), func(b *testing.B) {
					b.ReportAllocs()
					cpu0 := cpuTime()
					for b.Loop() {
						fn(b, data, size, thumbnail.JPEG)
					}
					b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
				})
			}
		}
	}
}

// cpuTime is the process's user+system CPU time, all threads (libvips'
// included). On a shared, loaded machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestQuality prints PSNR and SSIM (on luma) of ours and libvips against
// the full-decode Lanczos reference, before compression (PNG output), and
// the mean per-channel error (bias) of each.
func TestQuality(t *testing.T) {
	dir := benchDir(t)
	t.Logf("%-18s %5s  %-28s %-28s", "case", "size", "ours PSNR/SSIM/bias", "libvips PSNR/SSIM/bias")
	for _, c := range append(cases, struct{ name, file string }{"real-webp", "real.webp"}) {
		data, err := os.ReadFile(filepath.Join(dir, c.file))
		if os.IsNotExist(err) && c.file == "real.webp" {
			data = makeWebP(t, filepath.Join(dir, "real.2560.jpg"))
		} else if err != nil {
			t.Fatal(err)
		}
		for _, size := range sizes {
			full := fullDecode(t, data)
			var cols []string
			for _, fn := range []contender{ours(), libvips} {
				m, err := png.Decode(bytes.NewReader(fn(t, data, size, thumbnail.PNG)))
				if err != nil {
					t.Fatal(err)
				}
				got := imaging.Clone(m)
				// The reference at exactly the contender's size (rounding of
				// the other side differs by a pixel on some cases).
				ref := imaging.Resize(full, got.Rect.Dx(), got.Rect.Dy(), imaging.Lanczos)
				p, bias := psnr(ref, got)
				cols = append(cols, fmt.Sprintf("%.2f dB / %.4f / %+.2f", p, ssim(ref, got), bias))
			}
			t.Logf("%-18s %5d  %-28s %-28s", c.name, size, cols[0], cols[1])
		}
	}
}

// fullDecode decodes a source at full size for the reference: with
// imaging (image/jpeg) for JPEG, with libvips (libwebp) for WebP, since
// image.Decode's WebP result would be converted as full-range YCbCr.
func fullDecode(t *testing.T, data []byte) image.Image {
	if bytes.HasPrefix(data, []byte("RIFF")) {
		startVips()
		img, err := vips.NewImageFromBuffer(data)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		b, _, err := img.ExportPng(vips.NewPngExportParams())
		if err != nil {
			t.Fatal(err)
		}
		m, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// makeWebP encodes a lossy WebP (quality 90) of a JPEG with libvips.
func makeWebP(t *testing.T, jpegPath string) []byte {
	startVips()
	img, err := vips.NewImageFromFile(jpegPath)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	p := vips.NewWebpExportParams()
	p.Quality = 90
	b, _, err := img.ExportWebp(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// psnr over R, G and B, and the largest mean signed error of a channel.
func psnr(a, b *image.NRGBA) (float64, float64) {
	var se float64
	var sum [3]float64
	n := 0
	for y := 0; y < a.Rect.Dy(); y++ {
		for x := 0; x < a.Rect.Dx(); x++ {
			pa, pb := a.Pix[y*a.Stride+4*x:], b.Pix[y*b.Stride+4*x:]
			for c := 0; c < 3; c++ {
				d := float64(pb[c]) - float64(pa[c])
				se += d * d
				sum[c] += d
			}
			n++
		}
	}
	bias := 0.0
	for _, s := range sum {
		if math.Abs(s/float64(n)) > math.Abs(bias) {
			bias = s / float64(n)
		}
	}
	return 10 * math.Log10(255*255/(se/float64(3*n))), bias
}

// ssim is the mean SSIM of luma over 8×8 windows (stride 4).
func ssim(a, b *image.NRGBA) float64 {
	luma := func(m *image.NRGBA, x, y int) float64 {
		p := m.Pix[y*m.Stride+4*x:]
		return 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
	}
	const c1, c2 = (0.01 * 255) * (0.01 * 255), (0.03 * 255) * (0.03 * 255)
	var total float64
	var n int
	for y := 0; y+8 <= a.Rect.Dy(); y += 4 {
		for x := 0; x+8 <= a.Rect.Dx(); x += 4 {
			var ma, mb, va, vb, cov float64
			for j := 0; j < 8; j++ {
				for i := 0; i < 8; i++ {
					ma += luma(a, x+i, y+j)
					mb += luma(b, x+i, y+j)
				}
			}
			ma, mb = ma/64, mb/64
			for j := 0; j < 8; j++ {
				for i := 0; i < 8; i++ {
					da, db := luma(a, x+i, y+j)-ma, luma(b, x+i, y+j)-mb
					va += da * da
					vb += db * db
					cov += da * db
				}
			}
			va, vb, cov = va/63, vb/63, cov/63
			total += (2*ma*mb + c1) * (2*cov + c2) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			n++
		}
	}
	return total / float64(n)
}
