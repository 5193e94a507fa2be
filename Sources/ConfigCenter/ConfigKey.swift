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
        for scalar in key.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7F {
            throw .badKey("key contains the control character U+\(String(scalar.value, radix: 16, uppercase: true))")
        }
        for segment in key.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { throw .badKey("key '\(key)' has an empty segment ('//')") }
            if segment == "." || segment == ".." { throw .badKey("key '\(key)' has a '\(segment)' segment") }
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
