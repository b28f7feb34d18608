import Foundation

/// Pixels -> the model input, as training prepares images: one-channel models take PIL's `convert("L")` luma (in
/// PIL's integer form), pixels become floats in [0, 1] (`x / 255`), are resized to the manifest's input size with
/// `ImageResize` (antialiased bilinear), clamped to [0, 1], then normalized `(x - mean) / std` per channel in Float
/// (mean and std rounded to Float first). Nothing about size or statistics is fixed here: all comes from `input`.
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

    /// The longest side to decode a photo at: 4x the model input, so that the antialiased resize, not the
    /// decoder's subsampling, makes the model's pixels, while a 48-megapixel photo never lands in memory whole.
    public var decodeMaxPixelSize: Int { 4 * max(input.width, input.height) }

    /// Normalizes `width * height` RGBA pixels (row-major, any size) into the model input `[1, C, H, W]`.
    public func normalize(rgba: [UInt8], width: Int, height: Int) throws -> [Float] {
        guard width > 0, height > 0, rgba.count == width * height * 4 else {
            throw ImageError.pixels("got \(rgba.count) bytes for a \(width) x \(height) RGBA image")
        }
        let plane = width * height
        var pixels = [Float](repeating: 0, count: input.channels * plane)
        for i in 0..<plane {
            let r = Int(rgba[4 * i]), g = Int(rgba[4 * i + 1]), b = Int(rgba[4 * i + 2])
            if input.channels == 1 {
                pixels[i] = Float((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) / 255
            } else {
                pixels[i] = Float(r) / 255
                pixels[plane + i] = Float(g) / 255
                pixels[2 * plane + i] = Float(b) / 255
            }
        }
        let resized = ImageResize.resize(
            pixels, channels: input.channels, height: height, width: width, toHeight: input.height,
            toWidth: input.width)
        let size = input.width * input.height
        return resized.indices.map { i in
            let c = i / size
            return (min(max(resized[i], 0), 1) - mean[c]) / std[c]
        }
    }
}

/// An image the app cannot turn into the model input; the description says why.
public enum ImageError: Error, CustomStringConvertible {
    case pixels(String)
    case decode(String)

    public var description: String {
        switch self {
        case .pixels(let detail): return "image pixels: \(detail)"
        case .decode(let detail): return "cannot decode the image: \(detail)"
        }
    }
}
