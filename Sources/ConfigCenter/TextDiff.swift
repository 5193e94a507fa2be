/// Unified text diffs between two versions of a value (the `?diff=A,B` API and `gossamer kv diff`).
public enum TextDiff {
    /// Returns a unified diff (`---`/`+++` header, `@@` hunks with `context` lines around each change).
    /// Identical texts give an empty string.
    public static func unified(old: String, new: String, oldLabel: String, newLabel: String, context: Int = 3) -> String {
        let a = self.lines(old)
        let b = self.lines(new)
        let edits = self.editScript(a, b)
        guard edits.contains(where: { $0.kind != .same }) else { return "" }

        var out = "--- \(oldLabel)\n+++ \(newLabel)\n"
        var index = 0
        while index < edits.count {
            // Find the next change, then extend the hunk while changes are within 2·context lines.
            guard let firstChange = edits[index...].firstIndex(where: { $0.kind != .same }) else { break }
            let start = max(index, firstChange - context)
            var end = firstChange
            var scan = firstChange
            while scan < edits.count {
                if edits[scan].kind != .same {
                    end = scan
                    scan += 1
                } else if let next = edits[scan...].firstIndex(where: { $0.kind != .same }), next - end <= 2 * context {
                    scan = next
                } else {
                    break
                }
            }
            let stop = min(edits.count, end + context + 1)
            let hunk = edits[start..<stop]
            let oldStart = hunk.first(where: { $0.kind != .insert })?.oldLine ?? (hunk.first?.oldLine ?? 0)
            let newStart = hunk.first(where: { $0.kind != .delete })?.newLine ?? (hunk.first?.newLine ?? 0)
            let oldCount = hunk.filter { $0.kind != .insert }.count
            let newCount = hunk.filter { $0.kind != .delete }.count
            out += "@@ -\(oldCount == 0 ? oldStart : oldStart + 1),\(oldCount) +\(newCount == 0 ? newStart : newStart + 1),\(newCount) @@\n"
            for edit in hunk {
                switch edit.kind {
                case .same: out += " \(edit.text)\n"
                case .delete: out += "-\(edit.text)\n"
                case .insert: out += "+\(edit.text)\n"
                }
            }
            index = stop
        }
        return out
    }

    struct Edit {
        enum Kind { case same, delete, insert }
        var kind: Kind
        var text: Substring
        /// Zero-based line in the old text before which (or at which) this edit stands.
        var oldLine: Int
        /// Zero-based line in the new text.
        var newLine: Int
    }

    static func lines(_ text: String) -> [Substring] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// A line-level edit script from the standard library's Myers difference.
    static func editScript(_ a: [Substring], _ b: [Substring]) -> [Edit] {
        let difference = b.difference(from: a)
        var removed = Set<Int>()
        var inserted = Set<Int>()
        for change in difference {
            switch change {
            case .remove(let offset, _, _): removed.insert(offset)
            case .insert(let offset, _, _): inserted.insert(offset)
            }
        }
        var edits: [Edit] = []
        edits.reserveCapacity(a.count + inserted.count)
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            if i < a.count, removed.contains(i) {
                edits.append(Edit(kind: .delete, text: a[i], oldLine: i, newLine: j))
                i += 1
            } else if j < b.count, inserted.contains(j) {
                edits.append(Edit(kind: .insert, text: b[j], oldLine: i, newLine: j))
                j += 1
            } else if i < a.count, j < b.count {
                edits.append(Edit(kind: .same, text: a[i], oldLine: i, newLine: j))
                i += 1
                j += 1
            } else {
                break
            }
        }
        return edits
    }
}
