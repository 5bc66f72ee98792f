package jpegdc

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lumaOf returns the luma (or gray) plane of a decoded image.
func lumaOf(t *testing.T, m image.Image) ([]uint8, int) {
	t.Helper()
	switch m := m.(type) {
	case *image.YCbCr:
		return m.Y, m.YStride
	case *image.Gray:
		return m.Pix, m.Stride
	}
	t.Fatalf("unexpected image type %T", m)
	return nil, 0
}

// TestMatchesBlockAverages checks each DC pixel against the average of the
// 8×8 block that image/jpeg decodes, over the standard library's JPEG test
// files (baseline, progressive, every subsampling, restarts, gray).
func TestMatchesBlockAverages(t *testing.T) {
	files, err := filepath.Glob("testdata/*.jpeg")
	if err != nil || len(files) == 0 {
		t.Fatal("no test files", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			full, ferr := jpeg.Decode(bytes.NewReader(data))
			dc, err := Decode(bytes.NewReader(data))
			switch {
			case strings.Contains(f, "cmyk") || strings.Contains(f, "rgb"):
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("got %v, want ErrUnsupported", err)
				}
				return
			case ferr != nil:
				if err == nil {
					t.Fatalf("image/jpeg fails (%v) but Decode succeeds", ferr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			fb := full.Bounds()
			if want := image.Rect(0, 0, (fb.Dx()+7)/8, (fb.Dy()+7)/8); dc.Bounds() != want {
				t.Fatalf("bounds: got %v, want %v", dc.Bounds(), want)
			}
			fy, fs := lumaOf(t, full)
			dy, ds := lumaOf(t, dc)
			var se float64
			n := 0
			for by := 0; by < fb.Dy()/8; by++ {
				for bx := 0; bx < fb.Dx()/8; bx++ {
					sum := 0
					for y := 0; y < 8; y++ {
						for x := 0; x < 8; x++ {
							sum += int(fy[(8*by+y)*fs+8*bx+x])
						}
					}
					d := float64(sum)/64 - float64(dy[by*ds+bx])
					se += d * d
					n++
				}
			}
			if psnr := 10 * math.Log10(255*255/(se/float64(n)+1e-9)); psnr < 40 {
				t.Errorf("luma PSNR against block averages %.1f dB, want ≥ 40", psnr)
			}
		})
	}
}

// FuzzDecode checks that the reduced decoder never panics and fails
// whenever image/jpeg fails on a header-level problem.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.jpeg")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width*cfg.Height > 1<<20 {
			return
		}
		m, err := Decode(bytes.NewReader(data))
		if err == nil {
			if b := m.Bounds(); b.Dx() != (cfg.Width+7)/8 || b.Dy() != (cfg.Height+7)/8 {
				t.Fatalf("bounds %v for a %dx%d image", b, cfg.Width, cfg.Height)
			}
		}
	})
}
