/// Resizes float image planes the way training does: torch's
/// `F.interpolate(x, size, mode="bilinear", antialias=True, align_corners=False)`, a separable triangle filter
/// whose support widens with the scale when shrinking (so every source pixel counts) and plain bilinear when
/// growing. Width first, then height, as torch does; weights in Double, pixels in Float.
public enum ImageResize {
    /// `planes`: `channels` planes of `height x width` floats, row-major; returns `channels` planes of
    /// `toHeight x toWidth`. Equal sizes return the input unchanged.
    public static func resize(
        _ planes: [Float], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int
    ) -> [Float] {
        precondition(planes.count == channels * height * width && toHeight > 0 && toWidth > 0, "bad resize shape")
        var out = planes
        if toWidth != width {
            out = pass(out, count: channels * height, inner: 1, from: width, taps: Taps(from: width, to: toWidth))
        }
        if toHeight != height {
            out = pass(out, count: channels, inner: toWidth, from: height, taps: Taps(from: height, to: toHeight))
        }
        return out
    }

    /// Resamples `count` blocks of `from x inner` values along their outer axis (inner 1: along a row).
    private static func pass(_ x: [Float], count: Int, inner: Int, from: Int, taps: Taps) -> [Float] {
        let to = taps.start.count
        var out = [Float](repeating: 0, count: count * to * inner)
        for block in 0..<count {
            let src = block * from * inner
            let dst = block * to * inner
            for o in 0..<to {
                let weights = taps.weights[o]
                for k in 0..<inner {
                    var sum: Float = 0
                    for (j, weight) in weights.enumerated() {
                        sum += x[src + (taps.start[o] + j) * inner + k] * weight
                    }
                    out[dst + o * inner + k] = sum
                }
            }
        }
        return out
    }

    /// For each output index: the first source index and the normalized weights of the source run it reads.
    struct Taps {
        var start: [Int] = []
        var weights: [[Float]] = []

        init(from input: Int, to output: Int) {
            let scale = Double(input) / Double(output)
            let support = scale >= 1 ? scale : 1
            let invScale = scale >= 1 ? 1 / scale : 1
            for i in 0..<output {
                let center = scale * (Double(i) + 0.5)
                let lo = max(Int(center - support + 0.5), 0)  // Int() truncates toward zero, as torch's cast does
                let hi = min(Int(center + support + 0.5), input)
                let raw = (lo..<hi).map { j in max(0, 1 - abs((Double(j) - center + 0.5) * invScale)) }
                let total = raw.reduce(0, +)
                start.append(lo)
                weights.append(raw.map { Float(total == 0 ? 0 : $0 / total) })
            }
        }
    }
}
