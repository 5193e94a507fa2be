import NIOCore

/// TCP messages are framed by a 4-byte big-endian length.
enum StreamFraming {
    static func frame(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(4 + bytes.count)
        buffer.writeInteger(UInt32(truncatingIfNeeded: bytes.count), endianness: .big)
        buffer.writeBytes(bytes)
        return buffer
    }

    struct FrameTooLarge: Error {}

    /// Reads one frame from `inbound`; nil if the stream ends first. Throws for frames over `limit`.
    static func readFrame<S: AsyncSequence>(from inbound: S, limit: Int) async throws -> [UInt8]? where S.Element == ByteBuffer {
        var pending = ByteBuffer()
        for try await var chunk in inbound {
            pending.writeBuffer(&chunk)
            guard let length = pending.getInteger(at: pending.readerIndex, endianness: .big, as: UInt32.self) else { continue }
            guard Int(length) <= limit else { throw FrameTooLarge() }
            if pending.readableBytes >= 4 + Int(length) {
                pending.moveReaderIndex(forwardBy: 4)
                return pending.readBytes(length: Int(length))
            }
        }
        return nil
    }
}
