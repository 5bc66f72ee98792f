package jpg

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fixtures returns the JPEG files to compare against image/jpeg: Go's own
// test images (read from GOROOT, not copied here) and this package's
// testdata.
func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	goroot, _ := exec.Command("go", "env", "GOROOT").Output()
	for _, pat := range []string{filepath.Join(strings.TrimSpace(string(goroot)), "src", "image", "testdata", "*.jpeg"), "testdata/*.jpg"} {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(f)] = b
		}
	}
	if len(out) == 0 {
		t.Fatal("no JPEG fixtures found: testdata/*.jpg is part of the repository")
	}
	return out
}

// TestPlanesMatchImageJPEG decodes each fixture at full scale and compares
// the component planes with image/jpeg's: same samples within rounding of
// the two inverse DCTs.
func TestPlanesMatchImageJPEG(t *testing.T) {
	for name, data := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			want, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Skipf("image/jpeg cannot decode it (%v); TestMatchesLibjpeg compares it with libjpeg's output instead", err)
			}
			d := decoder{ctx: context.Background(), scale: 1}
			if err := d.parse(data, false); err != nil {
				t.Fatal(err)
			}
			if err := d.decode(); err != nil {
				t.Fatal(err)
			}
			var planes [][]uint8
			var strides []int
			if d.colorSpace() == YCCK {
				// image/jpeg converts YCCK to CMYK: compare RGB.
				maxd, mean := diffRGB(want, d.image())
				if maxd > 64 || mean > 2 { // chroma: we interpolate, image/jpeg repeats
					t.Errorf("RGB: max difference %d, mean %.3f", maxd, mean)
				}
				return
			}
			switch m := want.(type) {
			case *image.YCbCr:
				planes, strides = [][]uint8{m.Y, m.Cb, m.Cr}, []int{m.YStride, m.CStride, m.CStride}
			case *image.Gray:
				planes, strides = [][]uint8{m.Pix}, []int{m.Stride}
			case *image.RGBA, *image.CMYK:
				// image/jpeg upsamples by repeating samples: pixel
				// (x·fx, y·fy) holds sample (x, y) of each component.
				pix, stride := pixOf(m)
				for i := 0; i < d.ncomp; i++ {
					c := &d.comp[i]
					fx, fy := d.hmax/c.h, d.vmax/c.v
					var p []uint8
					for y := 0; y < c.ch; y++ {
						for x := 0; x < c.cw; x++ {
							v := pix[y*fy*stride+4*x*fx+i]
							if _, ok := m.(*image.CMYK); ok && d.adobe {
								v = 255 - v
							}
							p = append(p, v)
						}
					}
					planes = append(planes, p)
					strides = append(strides, c.cw)
				}
			default:
				t.Fatalf("image/jpeg returned %T", m)
			}
			if len(planes) != d.ncomp {
				t.Fatalf("got %d components, image/jpeg %d", d.ncomp, len(planes))
			}
			for i := range planes {
				c := &d.comp[i]
				w, h := c.cw, c.ch
				var maxd, sum, n int
				for y := 0; y < h; y++ {
					for x := 0; x < w; x++ {
						a, b := int(c.plane[y*c.bw*c.nx+x]), int(planes[i][y*strides[i]+x])
						dd := max(a-b, b-a)
						maxd = max(maxd, dd)
						sum += dd
						n++
					}
				}
				if maxd > 2 || float64(sum)/float64(n) > 0.1 {
					t.Errorf("component %d: max difference %d, mean %.3f", i, maxd, float64(sum)/float64(n))
				}
			}
		})
	}
}

func pixOf(m image.Image) ([]uint8, int) {
	switch m := m.(type) {
	case *image.RGBA:
		return m.Pix, m.Stride
	case *image.CMYK:
		return m.Pix, m.Stride
	}
	return nil, 0
}
