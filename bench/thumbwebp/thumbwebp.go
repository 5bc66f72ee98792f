// Package thumbwebp gives [thumbnail.Options.WebP] an encoder: lossy WebP
// from github.com/gen2brain/webp, which runs libwebp compiled to
// WebAssembly under wazero (pure Go, no cgo), or the system's libwebp
// through purego when one is installed (build with -tags nodynamic to
// always use the WebAssembly build).
//
// The WebAssembly path instantiates a module per call, a fixed cost of
// about 0.3 s on a loaded 2-vCPU machine (25× image/jpeg at 256 px); the
// system library is 2.6× image/jpeg. At equal SSIM, WebP is 0.80× the bytes
// of thumbnail's JPEG at 256 px and 1.00× at 1024 px (README.md here).
//
// It lives in the bench module so that the thumbnail package's own
// dependencies stay lean: a program opts in by importing it. Importing it
// also registers "webp" with package image (gen2brain/webp does so in its
// init), which the thumbnail package itself never does.
//
//	thumbs, err := thumbnail.New(thumbnail.Options{
//		Source: thumbnail.Dir("uploads"),
//		Key:    key,
//		WebP:   thumbwebp.Encode,
//	})
package thumbwebp

import (
	"image"
	"io"

	"github.com/gen2brain/webp"
)

// Method is libwebp's speed/size trade-off (0 fastest … 6 smallest) used by
// Encode: 4, libwebp's own default.
const Method = 4

// Encode writes m to w as lossy WebP at quality 1–100. It has the
// signature of [thumbnail.Encoder].
func Encode(w io.Writer, m image.Image, quality int) error {
	return webp.Encode(w, m, webp.Options{Quality: quality, Method: Method})
}
