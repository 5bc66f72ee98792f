package thumbnail_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImportRegistersNoExtraFormats: importing thumbnail must not make a
// program's own image.DecodeConfig upload check accept BMP or TIFF, so the
// package must not link the decoders that register them. (The test binary
// itself links imaging for reference renders, so this asks the go command
// about the package alone.)
func TestImportRegistersNoExtraFormats(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go command not found")
		}
		t.Skip("go command not found")
	}
	out, err := exec.Command(gocmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "golang.org/x/image/bmp", "golang.org/x/image/tiff", "github.com/disintegration/imaging":
			t.Errorf("thumbnail links %s, which registers image formats on import", pkg)
		}
	}
}
