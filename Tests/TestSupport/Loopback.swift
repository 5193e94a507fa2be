#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `body` with `127.0.0.1:port` as a socket address, for the raw `connect`, `bind` and `sendto` calls of tests
/// that must put bytes on the wire themselves (garbage requests, pipelining, malformed datagrams).
public func withLoopbackAddress<T>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// A TCP socket connected to `127.0.0.1:port`, or nil when the connection failed. The caller closes it.
public func connectLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    guard withLoopbackAddress(port: port, { connect(fd, $0, $1) }) == 0 else {
        close(fd)
        return nil
    }
    return fd
}
