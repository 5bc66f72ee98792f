// Package thumbnail renders thumbnails on demand from signed URLs: whichever
// instance a request reaches renders the size the first time and keeps it in
// its own cache, with a render queue and limits that hostile images and
// floods of them cannot exhaust.
//
// A [Handler] serves /{spec}/{path}?s={signature}. The spec is written like
// imageproxy's: "200x150" fits the image inside 200×150, "200x" and "x150"
// fix one side, "fill" covers the box and crops around the centre, "q1" to
// "q100" set the quality (default 82), "jpeg", "png" or "webp" choose the
// output format and "up" allows upscaling. Options come in any order;
// [Spec.String] gives the canonical form, and the signature is an
// HMAC-SHA256 over that form and the path (with the toolkit's signer, which
// accepts Options.PreviousKeys during a key rotation), so equivalent
// spellings verify alike. [Handler.URL] builds signed URLs for templates;
// named Presets are served without a signature. Without a Key only presets
// are served.
//
//	thumbs, err := thumbnail.New(thumbnail.Options{
//		Source: thumbnail.Dir("uploads"),
//		Key:    sharednothing.DeriveKey(secret, "thumbnail"),
//		Prefix: "/thumbs",
//	})
//	r.Mount("/thumbs", thumbs)                                  // chi
//	mux.Handle("/thumbs/", http.StripPrefix("/thumbs", thumbs)) // net/http
//	src := thumbs.URL("cat.jpg", thumbnail.Spec{Width: 200, Height: 200})
//
// # Behaviour
//
// EXIF orientation is applied; output carries no metadata. Sources are
// recognised by their bytes, never their name: JPEG, PNG, GIF (first frame)
// and WebP. Importing the package registers with package image only the
// formats of the standard and golang.org/x/image packages it reads those
// with, never BMP or TIFF. Without a format in the spec the source's format is kept, except
// that GIF becomes PNG and WebP becomes JPEG (or PNG with transparency).
//
// # WebP output
//
// The package has no WebP encoder of its own, so that its dependencies stay
// lean: set Options.WebP to one (an [Encoder]; the repository's bench module
// has an adapter for github.com/gen2brain/webp, libwebp in WebAssembly, no
// cgo). Then "webp" specs are served, and a spec that leaves the format to
// the source is negotiated: WebP when the request's Accept header names
// image/webp, the source's format otherwise, each with its own ETag and
// with Vary: Accept. Responses whose format is fixed by the spec carry no
// Vary. Without Options.WebP, "webp" gets 400 and nothing depends on Accept.
//
// # Caching
//
// Rendered thumbnails are cached in memory per machine (a byte-bounded
// localcache, 128 MiB by default) and optionally in a directory
// (Options.CacheDir). Responses carry a strong ETag derived from the source
// version and the canonical spec, Last-Modified, and for signed URLs
// Cache-Control: public, max-age=31536000, immutable. If-None-Match and
// If-Modified-Since give 304; HEAD works.
//
// # Abuse resistance
//
// Identical concurrent requests render once, and a render is cancelled as
// soon as every request waiting for it has gone, or when it has run for
// Options.RenderTimeout (10 s; then 422), the source read included. A
// source version that failed to render (413, 415, 422) is remembered, so
// asking again, for any size, costs one Stat and no read.
//
// Before a render waits for one of the Options.Concurrency slots, the
// handler reads the source's header and prices the render by the pixels it
// will decode (a JPEG by the DCT scale it can decode at). The line of
// waiting renders, at most Options.QueueSize long, is served cheapest
// first; renders of more than 8 megapixels never take the last free slot
// and fill at most half of the line; one source has at most 8 places and
// renders one at a time. So a flood of expensive or failing uploads slows
// other expensive renders, not everyone's thumbnails. A render finding no
// room, or no slot within Options.QueueTimeout, gets 503 with Retry-After.
//
// # Errors
//
// Failures go to Options.ErrorHandler (by default: logged with log/slog and
// answered with the status text alone, so no origin URL, file path or
// decoder message reaches a client): bad spec or path 400, bad signature
// 403, missing 404, more than MaxSourceBytes or MaxSourcePixels (checked
// from the header, frames × pixels for GIF) 413, not an image 415, corrupt,
// truncated or too slow to render 422, overloaded 503, origin timeout 504,
// other origin failures 502. [Origin] follows redirects only to its own
// host and the hosts it is given. [Handler.Stats] counts renders, cache
// hits, coalesced requests, queue rejections, failures by status,
// remembered failures and cancelled renders.
//
// # Speed
//
// Large JPEGs are decoded at a reduced DCT scale when that still leaves
// enough pixels for the target size. Other images are shrunk by an integer
// box filter on their decoded pixels to about twice the target before the
// final Lanczos pass, instead of resampling the full image.
package thumbnail
