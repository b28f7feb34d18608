package org.ondevice.bundle

/**
 * Decoded pixels -> the program's input, as training prepared its images (`ondevice/data.py`): 8-bit values to
 * float32 `x / 255`, resized to the manifest's `input.width x input.height` with [ImageResize] (torch's
 * antialiased bilinear), clamped to [0, 1], then `(x - mean) / std` per channel. Nothing about the size or the
 * statistics is fixed here; it all comes from the manifest's `input`.
 *
 * Input pixels are packed ARGB ints, row-major, at the decoded image's own size (Android's `Bitmap.getPixels`).
 * One-channel models get PIL's `convert("L")` luma, in PIL's integer form, before the resize, as training did.
 * The arithmetic is float32 in the order torch does it (mean and std rounded to float32 first).
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

    /** The model's input size, which images are resized to. */
    val width: Int get() = spec.width
    val height: Int get() = spec.height

    /** The `[1, C, H, W]` input for [argb] (`width * height` pixels, row-major): [resized], then normalized. */
    fun normalize(argb: IntArray, width: Int, height: Int): FloatArray = standardize(resized(argb, width, height))

    /** `[C, H, W]` values in [0, 1] at the model's input size: what training held before `(x - mean) / std`. */
    fun resized(argb: IntArray, width: Int, height: Int): FloatArray {
        require(width >= 1 && height >= 1 && argb.size == width * height) {
            "got ${argb.size} pixels for $width x $height"
        }
        val plane = width * height
        val unit = FloatArray(spec.channels * plane)
        for (i in 0 until plane) {
            val p = argb[i]
            val r = (p shr 16) and 0xff
            val g = (p shr 8) and 0xff
            val b = p and 0xff
            if (spec.channels == 1) {
                unit[i] = luma(r, g, b) / 255f
            } else {
                unit[i] = r / 255f
                unit[plane + i] = g / 255f
                unit[2 * plane + i] = b / 255f
            }
        }
        if (width == spec.width && height == spec.height) return unit // training's resize is a no-op then
        val out = ImageResize.resize(unit, spec.channels, height, width, spec.height, spec.width)
        for (i in out.indices) out[i] = out[i].coerceIn(0f, 1f)
        return out
    }

    /** `(x - mean) / std` per channel, into a new array. */
    private fun standardize(unit: FloatArray): FloatArray {
        val plane = spec.width * spec.height
        return FloatArray(unit.size) { i -> (unit[i] - mean[i / plane]) / std[i / plane] }
    }

    private companion object {
        /** PIL's ITU-R 601-2 luma: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
        fun luma(r: Int, g: Int, b: Int): Int = (r * 19595 + g * 38470 + b * 7471 + 0x8000) shr 16
    }
}
