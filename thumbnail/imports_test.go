package thumbnail_test

import (
	"bytes"
	"errors"
	"image"
	"testing"

	_ "github.com/sharednothing/sharednothing/thumbnail"
)

// TestImportRegistersNoExtraFormats: importing thumbnail must not make a
// program's own image.DecodeConfig upload check accept BMP or TIFF.
func TestImportRegistersNoExtraFormats(t *testing.T) {
	// Known to fail today: resize.go imports github.com/disintegration/imaging,
	// whose io.go imports golang.org/x/image/bmp and /tiff, which register
	// themselves. Remove this skip once resizing no longer links imaging.
	t.Skip("issue 17.4: disintegration/imaging registers BMP and TIFF on import")
	for name, header := range map[string]string{
		"bmp":       "BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x18\x00",
		"tiff (le)": "II\x2a\x00\x08\x00\x00\x00",
		"tiff (be)": "MM\x00\x2a\x00\x00\x00\x08",
	} {
		if _, format, err := image.DecodeConfig(bytes.NewReader([]byte(header))); !errors.Is(err, image.ErrFormat) {
			t.Errorf("%s: image.DecodeConfig got format %q, err %v; want image.ErrFormat", name, format, err)
		}
	}
}
