import CLZ4

/// Streaming LZ4 frame-format compression (liblz4's `lz4frame`): `begin`, then `update` per
/// chunk, then `end`; each returns the bytes to send. Output reads with `lz4 -d` or `lz4.frame`.
final class LZ4FrameEncoder {
    private var context: OpaquePointer?
    private var preferences = LZ4F_preferences_t()

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init() throws {
        var ctx: OpaquePointer?
        let code = LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(code) == 0, let ctx else { throw Failure(description: "LZ4F_createCompressionContext failed") }
        context = ctx
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.frameInfo.blockSizeID = LZ4F_max256KB
    }

    deinit { LZ4F_freeCompressionContext(context) }

    /// The frame header.
    func begin() throws -> [UInt8] {
        try produce(capacity: Int(LZ4F_HEADER_SIZE_MAX)) { out, capacity in
            LZ4F_compressBegin(context, out, capacity, &preferences)
        }
    }

    /// Compressed bytes for `input` (possibly empty while blocks fill up).
    func update(_ input: [UInt8]) throws -> [UInt8] {
        let bound = LZ4F_compressBound(input.count, &preferences)
        return try input.withUnsafeBytes { source in
            try produce(capacity: bound) { out, capacity in
                LZ4F_compressUpdate(context, out, capacity, source.baseAddress, source.count, nil)
            }
        }
    }

    /// The last block and the frame footer.
    func end() throws -> [UInt8] {
        try produce(capacity: LZ4F_compressBound(0, &preferences)) { out, capacity in
            LZ4F_compressEnd(context, out, capacity, nil)
        }
    }

    private func produce(capacity: Int, _ body: (UnsafeMutableRawPointer?, Int) -> Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: capacity)
        let written = output.withUnsafeMutableBytes { body($0.baseAddress, capacity) }
        guard LZ4F_isError(written) == 0 else {
            throw Failure(description: String(cString: LZ4F_getErrorName(written)))
        }
        output.removeLast(capacity - written)
        return output
    }
}
