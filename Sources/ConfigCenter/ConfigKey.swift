/// Validation of configuration key paths.
///
/// A key is a slash path such as `prod/payments/db.yaml`: UTF-8, 1…512 bytes, no empty segment
/// (so no leading, trailing or doubled slash), no `.` or `..` segment and no control characters.
/// A *prefix* (used by `recurse`, watches and recursive deletes) may be empty or end with `/`.
public enum ConfigKey {
    /// Longest key accepted, in UTF-8 bytes.
    public static let maxBytes = 512

    /// Throws `ConfigStoreError.badKey` naming the problem when `key` is not a valid key.
    public static func validate(_ key: String) throws(ConfigStoreError) {
        guard !key.isEmpty else { throw .badKey("the key is empty") }
        guard !key.hasSuffix("/") else { throw .badKey("key '\(key)' ends with '/': only prefixes may (use ?recurse)") }
        try self.checkCommon(key)
    }

    /// Throws `ConfigStoreError.badKey` when `prefix` is not a valid prefix. The empty prefix means every key.
    public static func validatePrefix(_ prefix: String) throws(ConfigStoreError) {
        guard !prefix.isEmpty else { return }
        try self.checkCommon(prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix)
    }

    private static func checkCommon(_ key: String) throws(ConfigStoreError) {
        guard key.utf8.count <= self.maxBytes else {
            throw .badKey("key is \(key.utf8.count) bytes; the limit is \(self.maxBytes)")
        }
        if key.hasPrefix("/") { throw .badKey("key '\(key)' starts with '/'; write it without the leading slash") }
        // Byte scans, not `split`: every request names a key, and the checks should not allocate. (A control
        // character is one byte in UTF-8: every byte of a multi-byte scalar is 0x80 or above.)
        for byte in key.utf8 where byte < 0x20 || byte == 0x7F {
            throw .badKey("key contains the control character U+\(String(byte, radix: 16, uppercase: true))")
        }
        var length = 0
        var dots = 0
        for byte in key.utf8 {
            if byte == UInt8(ascii: "/") {
                try self.checkSegment(length: length, dots: dots, key: key)
                length = 0
                dots = 0
            } else {
                length += 1
                if byte == UInt8(ascii: ".") { dots += 1 }
            }
        }
        try self.checkSegment(length: length, dots: dots, key: key)
    }

    /// A segment of `length` bytes, `dots` of them '.': refused when empty, `.` or `..`.
    private static func checkSegment(length: Int, dots: Int, key: String) throws(ConfigStoreError) {
        if length == 0 { throw .badKey("key '\(key)' has an empty segment ('//')") }
        if length == dots, length <= 2 {
            throw .badKey("key '\(key)' has a '\(String(repeating: ".", count: length))' segment")
        }
    }

    /// The smallest string greater than every string starting with `prefix` (nil: no upper bound).
    /// UTF-8 byte order equals code-point order, so `[prefix, upperBound)` is exactly the prefix range in SQLite.
    static func upperBound(ofPrefix prefix: String) -> String? {
        var scalars = Array(prefix.unicodeScalars)
        while let last = scalars.popLast() {
            var next = last.value + 1
            if next == 0xD800 { next = 0xE000 }
            if let scalar = Unicode.Scalar(next) {
                scalars.append(scalar)
                var result = ""
                result.unicodeScalars.append(contentsOf: scalars)
                return result
            }
        }
        return nil
    }
}
