// Package jpg decodes baseline and progressive JPEG images (ITU-T T.81,
// Huffman coding, 8-bit samples) at 1/1, 1/2, 1/4 or 1/8 scale, for
// thumbnails.
//
// A scaled decode runs an N×N inverse DCT over the low-frequency N×N
// coefficients of each block (N = 8/scale), and a progressive file decoded
// at a reduced scale skips the scans that only carry coefficients it does
// not need: at 1/8 only the DC scans are read and only DC terms are kept.
// Chroma is upsampled with a triangle (bilinear, centre-sited) filter at
// every scale, and the result is an [*image.Gray] for one-component files
// and an opaque [*image.NRGBA] otherwise (YCbCr, RGB, and Adobe CMYK/YCCK
// converted naively; embedded ICC profiles are reported in [Config] but
// not applied).
//
// The decoder is written for untrusted input: it checks the pixel limit
// before allocating, allocates only what the frame header justifies,
// refuses invalid progressions (a coefficient sent twice at the same bit
// position), caps the number of scans and the total entropy-decoding work
// relative to the image size, decodes what is there of a truncated file,
// and checks a context once per row of blocks. Arithmetic coding,
// 12-bit, lossless and hierarchical files return [ErrUnsupported].
package jpg
