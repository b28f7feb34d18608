import CoreGraphics
import Foundation

/// Pixels -> the model input: NCHW float32 in [0, 1], then `(x - mean) / std` per channel, from the manifest's
/// `input` (nothing about size or statistics is fixed here). The same arithmetic as the Android app and as torch:
/// `x / 255`, `- mean`, `/ std` in Float, mean and std rounded to Float first. One-channel models get PIL's
/// `convert("L")` luma, in PIL's integer form.
public struct ImageNormalizer: Sendable {
    public let input: BundleManifest.Input
    private let mean: [Float]
    private let std: [Float]

    public init(input: BundleManifest.Input) throws {
        guard input.channels == 1 || input.channels == 3 else {
            throw BundleError.invalid("input has \(input.channels) channels; this app feeds 1 (gray) or 3 (RGB)")
        }
        for values in [input.mean, input.std] where values.count != input.channels && values.count != 1 {
            throw BundleError.invalid("input mean/std have \(values.count) values for \(input.channels) channels")
        }
        self.input = input
        mean = (0..<input.channels).map { Float(input.mean[input.mean.count == 1 ? 0 : $0]) }
        std = (0..<input.channels).map { Float(input.std[input.std.count == 1 ? 0 : $0]) }
    }

    /// Draws `image` into `width x height` RGBA (resizing with Core Graphics' interpolation) and normalizes it.
    public func normalize(_ image: CGImage) throws -> [Float] {
        let (width, height) = (input.width, input.height)
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let drawn = rgba.withUnsafeMutableBytes { buffer -> Bool in
            guard let context = CGContext(
                data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8, bytesPerRow: width * 4,
                space: CGColorSpaceCreateDeviceRGB(),
                bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue | CGBitmapInfo.byteOrder32Big.rawValue
            ) else { return false }
            context.interpolationQuality = .high
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else { throw BundleError.invalid("cannot draw the image into \(width) x \(height) RGBA") }
        return normalize(rgba: rgba)
    }

    /// Normalizes `width * height` RGBA pixels, row-major (the layout `normalize(_:)` draws into).
    public func normalize(rgba: [UInt8]) -> [Float] {
        let plane = input.width * input.height
        precondition(rgba.count == plane * 4, "got \(rgba.count / 4) pixels; the model takes \(plane)")
        var out = [Float](repeating: 0, count: input.channels * plane)
        for i in 0..<plane {
            let r = Int(rgba[4 * i]), g = Int(rgba[4 * i + 1]), b = Int(rgba[4 * i + 2])
            if input.channels == 1 {
                out[i] = scale((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16, channel: 0)
            } else {
                out[i] = scale(r, channel: 0)
                out[plane + i] = scale(g, channel: 1)
                out[2 * plane + i] = scale(b, channel: 2)
            }
        }
        return out
    }

    private func scale(_ value: Int, channel: Int) -> Float {
        (Float(value) / 255 - mean[channel]) / std[channel]
    }
}
