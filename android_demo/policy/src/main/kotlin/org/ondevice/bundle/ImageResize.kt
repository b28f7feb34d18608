package org.ondevice.bundle

/**
 * Training's resize, in float32: torch `F.interpolate(x, size, mode="bilinear", antialias=True,
 * align_corners=False)` on `[C, H, W]` planes. It is separable: the width first, then the height, and a dimension
 * whose size does not change is left alone, as torch does. Each output pixel is a normalized triangle-filter
 * average of the input pixels under it (PIL's and torch's antialiased bilinear): when downscaling by `s` the
 * triangle is `s` input pixels wide on each side, so every input pixel counts; when upscaling it is plain bilinear.
 * `tests/resize_vectors.json` (written from torch) holds the expected values.
 */
object ImageResize {
    /** [planes] (`channels` planes of `height x width`, row-major) resized to `outHeight x outWidth` per plane. */
    fun resize(planes: FloatArray, channels: Int, height: Int, width: Int, outHeight: Int, outWidth: Int): FloatArray {
        require(channels >= 1 && height >= 1 && width >= 1 && outHeight >= 1 && outWidth >= 1) {
            "sizes must be >= 1: $channels x $height x $width -> $outHeight x $outWidth"
        }
        require(planes.size == channels * height * width) {
            "got ${planes.size} values for $channels x $height x $width"
        }
        val wide = if (outWidth == width) planes else pass(planes, channels * height, width, outWidth, 1, 1)
        return if (outHeight == height) wide else pass(wide, channels, height, outHeight, outWidth, outWidth)
    }

    /**
     * Resamples one axis of length [size] to [outSize]. The data is `lines` blocks of `size x inner` values
     * (`inner` = 1 for rows, the row width for columns); [stride] is the distance between neighbours on the axis.
     */
    private fun pass(src: FloatArray, lines: Int, size: Int, outSize: Int, inner: Int, stride: Int): FloatArray {
        val taps = Taps(size, outSize)
        val out = FloatArray(lines * outSize * inner)
        for (line in 0 until lines) {
            val inBase = line * size * inner
            val outBase = line * outSize * inner
            for (o in 0 until outSize) {
                val first = taps.first[o]
                val weights = taps.weights[o]
                for (k in 0 until inner) {
                    var sum = 0f
                    for (j in weights.indices) sum += src[inBase + (first + j) * stride + k] * weights[j]
                    out[outBase + o * inner + k] = sum
                }
            }
        }
        return out
    }

    /** Per output index: the first input index it reads and the normalized weights of the inputs from there on. */
    private class Taps(size: Int, outSize: Int) {
        val first = IntArray(outSize)
        val weights: Array<FloatArray>

        init {
            val scale = size.toFloat() / outSize
            val downscale = scale >= 1f
            val support = if (downscale) scale else 1f // the triangle's half-width, in input pixels
            val invScale = if (downscale) 1f / scale else 1f
            weights = Array(outSize) { o ->
                val center = (scale * (o + 0.5)).toFloat()
                val lo = maxOf((center - support + 0.5).toInt(), 0)
                val hi = minOf((center + support + 0.5).toInt(), size)
                first[o] = lo
                val w = FloatArray(hi - lo) { j -> triangle(((lo + j - center + 0.5) * invScale).toFloat()) }
                val total = w.sum()
                if (total != 0f) for (j in w.indices) w[j] /= total
                w
            }
        }

        private fun triangle(x: Float): Float = if (x < 0f) maxOf(1f + x, 0f) else maxOf(1f - x, 0f)
    }
}
