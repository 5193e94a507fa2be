import Testing
@Test func test_placeholder_builds() { #expect(Bool(true)) }
