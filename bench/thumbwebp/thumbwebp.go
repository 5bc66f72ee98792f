// Package thumbwebp gives [thumbnail.Options.WebP] an encoder: lossy WebP
// from github.com/gen2brain/webp, which runs libwebp compiled to
// WebAssembly under wazero (pure Go, no cgo), or the system's libwebp
// through purego when one is installed (build with -tags nodynamic to
// always use the WebAssembly build).
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
