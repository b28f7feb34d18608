#if canImport(ImageIO) && canImport(CoreGraphics)
import CoreGraphics
import Foundation
import ImageIO

public extension ImageNormalizer {
    /// Decodes an encoded photo upright (its EXIF orientation applied) and no larger than `decodeMaxPixelSize`:
    /// ImageIO's thumbnail path subsamples while decoding, so the full-resolution image is never in memory.
    func decode(_ data: Data) throws -> CGImage {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil) else {
            throw ImageError.decode("not an image format ImageIO reads")
        }
        let options: [CFString: Any] = [
            kCGImageSourceCreateThumbnailFromImageAlways: true,
            kCGImageSourceCreateThumbnailWithTransform: true,  // applies the EXIF orientation
            kCGImageSourceThumbnailMaxPixelSize: decodeMaxPixelSize,
            kCGImageSourceShouldCacheImmediately: true,
        ]
        guard let image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary) else {
            throw ImageError.decode("ImageIO could not decode its first image")
        }
        return image
    }

    /// Draws `image` 1:1 into RGBA (no resampling here) and normalizes it; the resize is `ImageResize`'s.
    func normalize(_ image: CGImage) throws -> [Float] {
        let (width, height) = (image.width, image.height)
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let drawn = rgba.withUnsafeMutableBytes { buffer -> Bool in
            guard let context = CGContext(
                data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8, bytesPerRow: width * 4,
                space: CGColorSpaceCreateDeviceRGB(),
                bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue | CGBitmapInfo.byteOrder32Big.rawValue
            ) else { return false }
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else { throw ImageError.pixels("cannot draw the image into \(width) x \(height) RGBA") }
        return try normalize(rgba: rgba, width: width, height: height)
    }
}
#endif
