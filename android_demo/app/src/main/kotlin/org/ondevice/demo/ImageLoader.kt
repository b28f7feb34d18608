package org.ondevice.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.net.Uri
import android.os.Build
import androidx.annotation.RequiresApi
import androidx.exifinterface.media.ExifInterface
import java.io.FileNotFoundException
import java.io.IOException
import java.io.InputStream
import org.ondevice.bundle.ImageDecoding
import org.ondevice.bundle.ImageTransform

/**
 * Decodes a picked image upright and subsampled for a `targetWidth x targetHeight` model input
 * ([ImageDecoding.sampleSize]); the antialiased resize in `ImageNormalizer` does the rest. Blocking: call it on
 * `Dispatchers.IO`. API 28+ uses `ImageDecoder`, which applies the EXIF orientation itself; API 26-27 use
 * `BitmapFactory` and turn the bitmap by the EXIF `Orientation` tag.
 */
object ImageLoader {
    fun decode(resolver: ContentResolver, uri: Uri, targetWidth: Int, targetHeight: Int): Bitmap =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            decodeWithImageDecoder(resolver, uri, targetWidth, targetHeight)
        } else {
            decodeWithBitmapFactory(resolver, uri, targetWidth, targetHeight)
        }

    /** The pixels as packed ARGB ints, row-major, at the bitmap's own size. */
    fun argb(bitmap: Bitmap): IntArray {
        val (width, height) = bitmap.width to bitmap.height
        return IntArray(width * height).also { bitmap.getPixels(it, 0, width, 0, 0, width, height) }
    }

    @RequiresApi(Build.VERSION_CODES.P)
    private fun decodeWithImageDecoder(resolver: ContentResolver, uri: Uri, targetWidth: Int, targetHeight: Int) =
        ImageDecoder.decodeBitmap(ImageDecoder.createSource(resolver, uri)) { decoder, info, _ ->
            decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE // getPixels needs a software bitmap
            decoder.setTargetSampleSize(
                ImageDecoding.sampleSize(info.size.width, info.size.height, targetWidth, targetHeight),
            )
        }

    private fun decodeWithBitmapFactory(
        resolver: ContentResolver,
        uri: Uri,
        targetWidth: Int,
        targetHeight: Int,
    ): Bitmap {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.open(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IOException("$uri is not an image this phone decodes")
        val options = BitmapFactory.Options().apply {
            inSampleSize = ImageDecoding.sampleSize(bounds.outWidth, bounds.outHeight, targetWidth, targetHeight)
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bitmap = resolver.open(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IOException("cannot decode $uri")
        val orientation = resolver.open(uri).use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        return upright(bitmap, ImageTransform.fromExif(orientation))
    }

    private fun upright(bitmap: Bitmap, transform: ImageTransform): Bitmap {
        if (transform == ImageTransform.IDENTITY) return bitmap
        val matrix = Matrix().apply {
            if (transform.mirror) postScale(-1f, 1f)
            postRotate(transform.degrees.toFloat())
        }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, true)
    }

    private fun ContentResolver.open(uri: Uri): InputStream =
        openInputStream(uri) ?: throw FileNotFoundException("cannot open $uri")
}
