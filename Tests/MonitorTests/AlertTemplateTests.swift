import Monitor
import Testing

@Suite struct AlertTemplateTests {
    @Test func test_render_labelsAndValue_areSubstituted() throws {
        // Given
        let template = try AlertTemplate("disk {{ $labels.mount }} at {{ $value }} on {{$labels.node}}")

        // When
        let text = template.render(labels: ["mount": "/data", "node": "a1"], value: 0.93)

        // Then
        #expect(text == "disk /data at 0.93 on a1")
    }

    @Test func test_render_unknownLabel_rendersEmpty() throws {
        #expect(try AlertTemplate("[{{ $labels.nope }}]").render(labels: [:], value: 1) == "[]")
    }

    @Test func test_render_noValue_rendersEmpty() throws {
        #expect(try AlertTemplate("value={{ $value }}").render(labels: [:], value: nil) == "value=")
    }

    @Test func test_render_wholeAndSpecialValues_likeTheExposition() throws {
        // Given
        let template = try AlertTemplate("{{ $value }}")

        // Then
        #expect(template.render(labels: [:], value: 3) == "3")
        #expect(template.render(labels: [:], value: 1e-05) == "1e-05")
        #expect(template.render(labels: [:], value: .infinity) == "+Inf")
    }

    @Test func test_render_plainTextAndLoneClosingBraces_areKept() throws {
        #expect(try AlertTemplate("no placeholders }} here").render(labels: [:], value: 1) == "no placeholders }} here")
    }

    @Test(arguments: [
        "{{ $valu }}", "{{ value }}", "{{ $labels }}", "{{ $labels.bad-name }}", "{{ }}", "{{ $value | humanize }}",
        "open {{ $value", "{{ $labels.a }} then {{",
    ])
    func test_parse_badTemplate_throws(text: String) {
        #expect(throws: TemplateError.self) { try AlertTemplate(text) }
    }
}
