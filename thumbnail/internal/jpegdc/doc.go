// Package jpegdc decodes a JPEG at 1/8 scale from the DC terms of its blocks,
// skipping the inverse DCT, colour upsampling and seven eighths of the pixel
// writes. It is Go's image/jpeg decoder (BSD licence, see LICENSE) with the
// image allocation and block reconstruction changed; Huffman decoding,
// progressive refinement and all input checks are the standard library's.
// CMYK, YCbCrK and RGB JPEGs return [ErrUnsupported].
package jpegdc
