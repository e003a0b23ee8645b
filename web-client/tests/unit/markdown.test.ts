import { describe, expect, it } from "vitest";
import { composeMessage, htmlToText } from "../../src/composer/markdown";

describe("composeMessage", () => {
  it("sends plain text without HTML", () => {
    expect(composeMessage("hello there")).toEqual({ msgtype: "m.text", body: "hello there" });
    expect(composeMessage("line one\nline two")).toEqual({ msgtype: "m.text", body: "line one\nline two" });
    expect(composeMessage("fish & chips < 5")).toEqual({ msgtype: "m.text", body: "fish & chips < 5" });
  });

  it("formats bold, italic, strikethrough and inline code", () => {
    const message = composeMessage("**bold** *italic* ~~gone~~ `x < y`");
    expect(message.body).toBe("**bold** *italic* ~~gone~~ `x < y`");
    expect(message.format).toBe("org.matrix.custom.html");
    expect(message.formatted_body).toBe("<strong>bold</strong> <em>italic</em> <del>gone</del> <code>x &lt; y</code>");
  });

  it("formats code blocks with their language, and quotes", () => {
    const code = composeMessage("```rust\nfn main() {}\n```");
    expect(code.formatted_body).toBe('<pre><code class="language-rust">fn main() {}\n</code></pre>');
    const quote = composeMessage("> wise words");
    expect(quote.formatted_body).toBe("<blockquote>\n<p>wise words</p>\n</blockquote>");
  });

  it("formats links with allowed schemes only", () => {
    expect(composeMessage("[Hearth](https://example.org/a?b=c)").formatted_body).toBe(
      '<a href="https://example.org/a?b=c">Hearth</a>',
    );
    const evil = composeMessage("[click](javascript:alert(1))");
    expect(evil.formatted_body ?? "").not.toContain("javascript:");
    const relative = composeMessage("[home](/settings)");
    expect(relative.formatted_body ?? "").not.toContain("href");
  });

  it("keeps typed HTML as text instead of interpreting it", () => {
    const message = composeMessage("<b>not bold</b> <img src=x onerror=alert(1)>");
    expect(message.body).toBe("<b>not bold</b> <img src=x onerror=alert(1)>");
    expect(message.formatted_body).toBeUndefined();
    const mixed = composeMessage("**bold** <script>alert(1)</script>");
    expect(mixed.formatted_body).toBe("<strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt;");
  });

  it("keeps several paragraphs as paragraphs", () => {
    expect(composeMessage("one\n\ntwo").formatted_body).toBe("<p>one</p>\n<p>two</p>");
  });

  it("sends emotes with the emote msgtype", () => {
    expect(composeMessage("waves", "m.emote")).toEqual({ msgtype: "m.emote", body: "waves" });
  });
});

describe("htmlToText", () => {
  it("gives the text of formatted messages without markup", () => {
    expect(htmlToText("<p><strong>bold</strong> and <em>more</em></p><script>x()</script>")).toBe("bold and more");
  });
});
