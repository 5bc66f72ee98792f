// Package thumbnail renders thumbnails on demand from signed URLs: whichever
// instance a request reaches renders the size the first time and keeps it in
// its own cache, with a bounded work queue and limits against hostile images.
//
// A [Handler] serves /{spec}/{path}?s={signature}. The spec is written like
// imageproxy's: "200x150" fits the image inside 200×150, "200x" and "x150"
// fix one side, "fill" covers the box and crops around the centre, "q1" to
// "q100" set the JPEG quality (default 82), "jpeg" or "png" choose the output
// format and "up" allows upscaling. Options come in any order; [Spec.String]
// gives the canonical form, and the signature is HMAC-SHA256 over that form
// and the path, so equivalent spellings verify alike. [Handler.URL] builds
// signed URLs for templates; named Presets are served without a signature.
// Without a Key only presets are served.
//
//	thumbs, err := thumbnail.New(thumbnail.Options{
//		Source: thumbnail.Dir("uploads"),
//		Key:    sharednothing.DeriveKey(secret, "thumbnail"),
//		Prefix: "/thumbs",
//	})
//	r.Mount("/thumbs", thumbs)                 // chi
//	mux.Handle("/thumbs/", http.StripPrefix("/thumbs", thumbs)) // net/http
//	src := thumbs.URL("cat.jpg", thumbnail.Spec{Width: 200, Height: 200})
//
// # Behaviour
//
// EXIF orientation is applied; output carries no metadata. Sources are
// recognised by their bytes, never their name: JPEG, PNG, GIF (first frame)
// and WebP. Without a format in the spec the source's format is kept, except
// that GIF becomes PNG and WebP becomes JPEG (or PNG with transparency).
//
// WebP output is not offered: Go's golang.org/x/image has a WebP decoder but
// no encoder, and the encoders that exist need cgo (libwebp) or sit outside
// this module's dependency rules. A spec asking for "webp" gets 400, and
// the response never depends on Accept, so there is no Vary: Accept.
//
// Rendered thumbnails are cached in memory per machine (a byte-bounded
// localcache, 128 MiB by default) and optionally in a directory
// (Options.CacheDir). Responses carry a strong ETag derived from the source
// version and the canonical spec, Last-Modified, and for signed URLs
// Cache-Control: public, max-age=31536000, immutable. If-None-Match and
// If-Modified-Since give 304; HEAD works.
//
// Identical concurrent requests render once. At most Options.Concurrency
// renders run at a time and at most Options.QueueSize wait, first in first
// out; beyond that, or after Options.QueueTimeout, the answer is 503 with
// Retry-After.
//
// Errors are plain text, never the original bytes: bad spec or path 400, bad
// signature 403, missing 404, more than MaxSourceBytes or MaxSourcePixels
// (checked from the header, frames × pixels for GIF) 413, not an image 415,
// corrupt or truncated 422, overloaded 503, origin timeout 504.
//
// # Speed
//
// Large JPEGs are decoded at 1/8 scale from the DC coefficients when that
// leaves at least 1.25 times the target size, which skips the inverse DCT
// and most of the memory. Other images are shrunk by an integer box filter
// on their decoded pixels (YCbCr planes for JPEG) to about twice the target
// before the final Lanczos pass, instead of resampling the full image.
package thumbnail
