package org.ondevice.bundle

/**
 * Pixels -> the program's input: NCHW float32 in [0, 1], then `(x - mean) / std` per channel, all from the
 * manifest's `input` (nothing about the size or the statistics is fixed here).
 *
 * Input pixels are packed ARGB ints, row-major, already resized to `input.width x input.height` (Android's
 * `Bitmap.getPixels` gives exactly that). One-channel models get PIL's `convert("L")` luma, in PIL's integer form,
 * so a grayscale model sees the values it was trained on. The arithmetic is float32 in the order torch does it
 * (`x / 255`, then `- mean`, then `/ std`, with mean and std rounded to float32 first).
 */
class ImageNormalizer(private val spec: InputSpec) {
    private val mean = FloatArray(spec.channels) { c -> spec.mean[if (spec.mean.size == 1) 0 else c].toFloat() }
    private val std = FloatArray(spec.channels) { c -> spec.std[if (spec.std.size == 1) 0 else c].toFloat() }

    init {
        require(spec.channels == 1 || spec.channels == 3) {
            "input has ${spec.channels} channels; this app feeds 1 (grayscale) or 3 (RGB)"
        }
    }

    /** Shape of the tensor [normalize] fills: `input.shape`. */
    val shape: LongArray get() = LongArray(spec.shape.size) { spec.shape[it].toLong() }

    /** Fills a new `[1, C, H, W]` float array from [argb] (`width * height` pixels, row-major). */
    fun normalize(argb: IntArray): FloatArray {
        val plane = spec.width * spec.height
        require(argb.size == plane) {
            "got ${argb.size} pixels; the model takes ${spec.width} x ${spec.height} = $plane (resize first)"
        }
        val out = FloatArray(spec.channels * plane)
        for (i in 0 until plane) {
            val p = argb[i]
            val r = (p shr 16) and 0xff
            val g = (p shr 8) and 0xff
            val b = p and 0xff
            if (spec.channels == 1) {
                out[i] = scale(luma(r, g, b), 0)
            } else {
                out[i] = scale(r, 0)
                out[plane + i] = scale(g, 1)
                out[2 * plane + i] = scale(b, 2)
            }
        }
        return out
    }

    private fun scale(value: Int, channel: Int): Float = (value.toFloat() / 255f - mean[channel]) / std[channel]

    private companion object {
        /** PIL's ITU-R 601-2 luma: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
        fun luma(r: Int, g: Int, b: Int): Int = (r * 19595 + g * 38470 + b * 7471 + 0x8000) shr 16
    }
}
