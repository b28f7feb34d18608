package org.ondevice.bundle

/**
 * How the app decodes a picked photo before [ImageNormalizer]: the decoder subsamples by a power of two (cheap,
 * bounded memory), and the antialiased resize does the rest. Decoding a 12 MP photo at full size for a 224 x 224
 * model would cost 48 MB and seconds for nothing.
 */
object ImageDecoding {
    /** The decoded image keeps at least this many pixels per model pixel on each side, so the resize averages. */
    const val MIN_SCALE = 4

    /** At most this many decoded pixels (64 MB as ARGB), whatever the model's size. */
    const val MAX_PIXELS = 16_000_000L

    /**
     * The decoder's sample size for a `width x height` image and a `targetWidth x targetHeight` model input: the
     * largest power of two that keeps both sides at least [minScale] times the target, raised further (if needed)
     * until the decoded image has at most [maxPixels] pixels. 1 = decode at full size.
     */
    fun sampleSize(
        width: Int,
        height: Int,
        targetWidth: Int,
        targetHeight: Int,
        minScale: Int = MIN_SCALE,
        maxPixels: Long = MAX_PIXELS,
    ): Int {
        require(width >= 1 && height >= 1 && targetWidth >= 1 && targetHeight >= 1 && minScale >= 1 && maxPixels >= 1) {
            "sizes must be >= 1: $width x $height -> $targetWidth x $targetHeight (min scale $minScale)"
        }
        var size = 1
        while (width / (2 * size) >= minScale * targetWidth && height / (2 * size) >= minScale * targetHeight) size *= 2
        while (ceilDiv(width, size) * ceilDiv(height, size) > maxPixels) size *= 2
        return size
    }

    private fun ceilDiv(a: Int, b: Int): Long = ((a + b - 1L) / b)
}

/**
 * What to do to a stored image so that it shows upright: mirror it left-right first (if [mirror]), then rotate it
 * clockwise by [degrees] (0, 90, 180 or 270). Matches `android.graphics.Matrix` `postScale(-1, 1)` then
 * `postRotate(degrees)`.
 */
data class ImageTransform(val mirror: Boolean, val degrees: Int) {
    companion object {
        val IDENTITY = ImageTransform(mirror = false, degrees = 0)

        /**
         * From the EXIF `Orientation` tag (1..8, as ExifInterface reads it): 2 mirror, 3 rotate 180, 4 flip
         * top-bottom, 5 transpose, 6 rotate 90, 7 transverse, 8 rotate 270. Anything else (0 undefined, 1) is upright.
         */
        fun fromExif(orientation: Int): ImageTransform = when (orientation) {
            2 -> ImageTransform(mirror = true, degrees = 0)
            3 -> ImageTransform(mirror = false, degrees = 180)
            4 -> ImageTransform(mirror = true, degrees = 180)
            5 -> ImageTransform(mirror = true, degrees = 270)
            6 -> ImageTransform(mirror = false, degrees = 90)
            7 -> ImageTransform(mirror = true, degrees = 90)
            8 -> ImageTransform(mirror = false, degrees = 270)
            else -> IDENTITY
        }
    }
}
