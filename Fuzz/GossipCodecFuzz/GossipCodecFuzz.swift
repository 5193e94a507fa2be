// libFuzzer entry point for the GossipCore wire codec. Build and run: see README.md.
// The codec files are compiled into this executable directly (no package, no Logging).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGossipCodec(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start, count >= 0 else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    // Datagram path: must return or throw a DecodeError, never trap.
    if let packet = try? SWIM.Codec.decode(bytes) {
        // Whatever decodes must re-encode and decode to the same packet.
        let again = try? SWIM.Codec.decode(SWIM.Codec.encode(packet, checksum: false))
        if again != packet { fatalError("re-encoding changed the packet: \(packet)") }
    }
    // Stream path (push-pull, stream ping).
    _ = try? SWIM.Codec.decodeStream(bytes, maxSize: 1 << 20)
    return 0
}
