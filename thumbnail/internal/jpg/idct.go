package jpg

import "math"

// unzig maps a zigzag index to the natural (row*8+column) index.
var unzig = func() (t [64]uint8) {
	i := 0
	for s := 0; s < 15; s++ { // s = row + column, one anti-diagonal at a time
		if s%2 == 0 {
			for r := min(s, 7); r >= max(0, s-7); r-- {
				t[i] = uint8(r*8 + s - r)
				i++
			}
		} else {
			for r := max(0, s-7); r <= min(s, 7); r++ {
				t[i] = uint8(r*8 + s - r)
				i++
			}
		}
	}
	return t
}()

// keepFor is how many zigzag coefficients an nx×ny inverse DCT reads: one
// past the last zigzag index with column below nx and row below ny.
func keepFor(nx, ny int) int {
	k := 0
	for i, z := range unzig {
		if int(z)/8 < ny && int(z)%8 < nx {
			k = i + 1
		}
	}
	return k
}

// idctBits is the fixed-point precision of the transform constants.
const idctBits = 13

// idctTab[n][x][u] = C(u)/2 · cos((2x+1)uπ/2n) · 2^13: the 8-point IDCT
// evaluated at the centres of n equal parts of the block, so an n×n
// transform of the low n×n coefficients gives the block at 1/(8/n) scale
// with the same DC gain.
var idctTab = func() (t [9][8][8]int64) {
	for n := 1; n <= 8; n++ {
		for x := 0; x < n; x++ {
			for u := 0; u < n; u++ {
				c := 1.0
				if u == 0 {
					c = 1 / math.Sqrt2
				}
				t[n][x][u] = int64(math.Round(c / 2 * math.Cos(float64((2*x+1)*u)*math.Pi/float64(2*n)) * (1 << idctBits)))
			}
		}
	}
	return t
}()

func clamp8(v int64) uint8 {
	if uint64(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// idct writes the nx×ny inverse DCT of the dequantised coefficients in
// blk (natural order) to dst, level-shifted by 128. last is the highest
// zigzag index that may be non-zero.
func idct(blk *[64]int32, nx, ny, last int, dst []uint8, stride int) {
	if last == 0 { // flat block
		v := clamp8((int64(blk[0]) + 4 + 1024) >> 3)
		for y := 0; y < ny; y++ {
			row := dst[y*stride : y*stride+nx]
			for x := range row {
				row[x] = v
			}
		}
		return
	}
	if nx == 2 && ny == 2 {
		// Every basis value of the 2×2 transform is ±1/8.
		a, b, c, e := int64(blk[0]), int64(blk[1]), int64(blk[8]), int64(blk[9])
		const r = 4 + 1024 // rounding and the level shift, before >> 3
		dst[0] = clamp8((a + b + c + e + r) >> 3)
		dst[1] = clamp8((a - b + c - e + r) >> 3)
		dst[stride] = clamp8((a + b - c - e + r) >> 3)
		dst[stride+1] = clamp8((a - b - c + e + r) >> 3)
		return
	}
	tx, ty := &idctTab[nx], &idctTab[ny]
	// Rows: tmp[v][x] = Σu blk[v][u]·T[x][u], kept with 3 fraction bits.
	// T[n-1-x][u] = (-1)^u T[x][u], so each pair of outputs x, n-1-x
	// shares the even and odd half-sums.
	var tmp [8][8]int64
	rows := 0
	for v := 0; v < ny; v++ {
		in := blk[v*8 : v*8+nx]
		zero := true
		for _, c := range in {
			if c != 0 {
				zero = false
				break
			}
		}
		if zero {
			continue
		}
		rows = v + 1
		out := &tmp[v]
		for x := 0; x < (nx+1)/2; x++ {
			t := &tx[x]
			var even, odd int64
			for u := 0; u < nx; u += 2 {
				even += int64(in[u]) * t[u]
			}
			for u := 1; u < nx; u += 2 {
				odd += int64(in[u]) * t[u]
			}
			out[x] = (even + odd + 1<<(idctBits-4)) >> (idctBits - 3)
			out[nx-1-x] = (even - odd + 1<<(idctBits-4)) >> (idctBits - 3)
		}
	}
	// Columns, with rounding and the level shift folded in, the same way.
	const bias = 128<<(idctBits+3) + 1<<(idctBits+2)
	for y := 0; y < (ny+1)/2; y++ {
		top := dst[y*stride : y*stride+nx]
		bot := dst[(ny-1-y)*stride : (ny-1-y)*stride+nx]
		t := &ty[y]
		for x := range top {
			var even, odd int64
			for v := 0; v < rows; v += 2 {
				even += tmp[v][x] * t[v]
			}
			for v := 1; v < rows; v += 2 {
				odd += tmp[v][x] * t[v]
			}
			top[x] = clamp8((bias + even + odd) >> (idctBits + 3))
			bot[x] = clamp8((bias + even - odd) >> (idctBits + 3))
		}
	}
}
