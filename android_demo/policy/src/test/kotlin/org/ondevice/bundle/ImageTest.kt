package org.ondevice.bundle

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Test

/** The resize, the decoder's sample size and EXIF orientation, on cases worked out by hand. */
class ImageTest {
    @Test
    fun `downscaling averages every input pixel under a triangle as wide as the scale`() {
        // 4 -> 2: scale 2, so each output reads 3 inputs with triangle weights 0.75, 0.75, 0.25 (/ 1.75):
        // out[0] = (3 * 1 + 3 * 0 + 1 * 0) / 7, out[1] = (1 * 0 + 3 * 0 + 3 * 0.7) / 7.
        // Plain bilinear (no antialiasing) would give 0.5 and 0.35.
        val out = ImageResize.resize(floatArrayOf(1f, 0f, 0f, 0.7f), channels = 1, height = 1, width = 4, 1, 2)
        assertArrayEquals(floatArrayOf(3f / 7f, 0.3f), out, 1e-6f)
    }

    @Test
    fun `upscaling is plain bilinear and an unchanged size is a copy`() {
        // 2 -> 4 (scale 0.5): sources at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
        val up = ImageResize.resize(floatArrayOf(0f, 1f), 1, 1, 2, 1, 4)
        assertArrayEquals(floatArrayOf(0f, 0.25f, 0.75f, 1f), up, 1e-6f)
        val planes = floatArrayOf(0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f)
        assertArrayEquals(planes, ImageResize.resize(planes, channels = 2, height = 1, width = 3, 1, 3))
        // the height alone: a column of 3 -> 1 (scale 3, centre 1.5) has weights 2/7, 3/7, 2/7
        assertArrayEquals(floatArrayOf(0.5f), ImageResize.resize(floatArrayOf(0f, 0.5f, 1f), 1, 3, 1, 1, 1), 1e-6f)
        assertThrows(IllegalArgumentException::class.java) { ImageResize.resize(planes, 1, 2, 2, 1, 1) }
    }

    @Test
    fun `the decoder subsamples by powers of two, keeping 4x the model input per side, within the memory cap`() {
        assertEquals(2, ImageDecoding.sampleSize(4032, 3024, 224, 224)) // 2016 x 1512; 1008 x 756 would be < 896
        assertEquals(1, ImageDecoding.sampleSize(1000, 800, 224, 224))
        assertEquals(1, ImageDecoding.sampleSize(100, 50, 224, 224)) // smaller than the model: the resize upscales
        assertEquals(1, ImageDecoding.sampleSize(8000, 1000, 224, 224)) // the short side decides
        assertEquals(8, ImageDecoding.sampleSize(16000, 16000, 448, 448)) // 2000 x 2000 >= 1792; 1000 would not be
        // 12000 x 9000 for a 1024 model: 2 keeps 4x, but 6000 x 4500 = 27 MP > 16 MP, so 4 (3000 x 2250)
        assertEquals(4, ImageDecoding.sampleSize(12000, 9000, 1024, 1024))
        assertThrows(IllegalArgumentException::class.java) { ImageDecoding.sampleSize(0, 10, 224, 224) }
    }

    /** [image] (rows of letters) mirrored left-right if asked, then turned clockwise: what `Matrix` does. */
    private fun apply(t: ImageTransform, image: List<String>): List<String> {
        var rows = if (t.mirror) image.map { it.reversed() } else image
        repeat(t.degrees / 90) {
            val turned = rows
            rows = turned[0].indices.map { c -> turned.indices.reversed().map { r -> turned[r][c] }.joinToString("") }
        }
        return rows
    }

    @Test
    fun `EXIF orientations turn the stored image upright`() {
        val stored = listOf("abc", "def")
        // What the EXIF spec says each orientation displays, from where the stored 0th row and column go
        val upright = mapOf(
            1 to listOf("abc", "def"),
            2 to listOf("cba", "fed"), // mirrored
            3 to listOf("fed", "cba"), // upside down
            4 to listOf("def", "abc"), // flipped top-bottom
            5 to listOf("ad", "be", "cf"), // 0th row = left side, 0th column = top: transpose
            6 to listOf("da", "eb", "fc"), // 0th row = right side, 0th column = top: turn 90 clockwise
            7 to listOf("fc", "eb", "da"), // 0th row = right side, 0th column = bottom: transverse
            8 to listOf("cf", "be", "ad"), // 0th row = left side, 0th column = bottom: turn 90 counter-clockwise
        )
        for ((orientation, expected) in upright) {
            assertEquals(expected, apply(ImageTransform.fromExif(orientation), stored), "orientation $orientation")
        }
        assertEquals(ImageTransform.IDENTITY, ImageTransform.fromExif(0)) // ORIENTATION_UNDEFINED
    }
}
