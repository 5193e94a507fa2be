import Foundation
import Testing

@testable import ConfigCenter

@Suite struct TextDiffTests {
    @Test func test_unified_oneLineChanged_hunkWithContext() {
        let old = "a\nb\nc\nd\ne\n"
        let new = "a\nb\nC\nd\ne\n"
        let diff = TextDiff.unified(old: old, new: new, oldLabel: "k@1", newLabel: "k@2")
        #expect(diff == "--- k@1\n+++ k@2\n@@ -1,5 +1,5 @@\n a\n b\n-c\n+C\n d\n e\n")
    }

    @Test func test_unified_identical_isEmpty() {
        #expect(TextDiff.unified(old: "x\ny", new: "x\ny", oldLabel: "a", newLabel: "b").isEmpty)
    }

    @Test func test_unified_farApartChanges_twoHunks() {
        let old = (1...20).map { "line\($0)" }.joined(separator: "\n")
        var lines = (1...20).map { "line\($0)" }
        lines[1] = "changed2"
        lines[18] = "changed19"
        let diff = TextDiff.unified(old: old, new: lines.joined(separator: "\n"), oldLabel: "a", newLabel: "b")
        #expect(diff.components(separatedBy: "@@ -").count - 1 == 2)
        #expect(diff.contains("-line2\n+changed2\n"))
        #expect(diff.contains("-line19\n+changed19\n"))
    }

    @Test func test_unified_fromEmpty_allInsertions() {
        let diff = TextDiff.unified(old: "", new: "x\ny\n", oldLabel: "a", newLabel: "b")
        #expect(diff == "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n")
    }
}

@Suite struct ValueValidatorTests {
    @Test func test_json_broken_refusedWithPosition() {
        #expect {
            try ValueValidator.validate(Data("{\"a\": \n tru }".utf8), contentType: "json")
        } throws: { error in
            let error = error as? ConfigStoreError
            return error?.code == .badValue && error?.message.contains("line") == true
        }
    }

    @Test func test_yaml_broken_refusedWithLineAndColumn() {
        #expect {
            try ValueValidator.validate(Data("a: [1,\n b".utf8), contentType: "yaml")
        } throws: { error in
            let error = error as? ConfigStoreError
            return error?.code == .badValue && error?.message.contains("line 1, column 4") == true
        }
    }

    @Test(arguments: [("json", "{\"a\": [1, 2]}"), ("yaml", "a:\n  - 1\n  - 2\n"), ("properties", "not: [parsed"), ("text", "{")])
    func test_valid_orUnparsedTypes_pass(_ type: String, _ value: String) throws {
        try ValueValidator.validate(Data(value.utf8), contentType: type)
    }

    @Test(arguments: ["JSON", "", "a b", String(repeating: "x", count: 33)])
    func test_badTypeName_isBadRequest(_ type: String) {
        #expect(throws: ConfigStoreError.self) { try ValueValidator.validate(Data(), contentType: type) }
    }
}
