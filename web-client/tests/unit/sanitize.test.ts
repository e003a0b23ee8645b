import { describe, expect, it } from "vitest";
import { sanitizeIncoming, sanitizeOutgoing } from "../../src/composer/sanitize";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("sanitizeIncoming", () => {
  it("removes scripts, event handlers and javascript: links", () => {
    const html = sanitizeIncoming(
      '<p onclick="steal()">hi<script>window.pwned=1</script></p>' +
        '<img src="x" onerror="window.pwned=1">' +
        '<a href="javascript:alert(1)">click</a>' +
        '<a href=" JaVaScRiPt:alert(1)">again</a>' +
        '<svg onload="alert(1)"><circle/></svg>' +
        '<iframe src="https://evil.example"></iframe>' +
        '<style>body{display:none}</style>' +
        '<a href="data:text/html,<script>alert(1)</script>">data</a>',
    );
    expect(html).not.toMatch(/script|onerror|onclick|onload|javascript|iframe|svg|style|data:/i);
    const root = dom(html);
    for (const a of root.querySelectorAll("a")) expect(a.hasAttribute("href")).toBe(false);
    expect(root.textContent).toContain("hi");
  });

  it("keeps the spec's tags and opens links safely in a new tab", () => {
    const html = sanitizeIncoming(
      '<strong>b</strong><em>i</em><del>s</del><code class="language-js">x</code>' +
        '<blockquote>q</blockquote><ol start="3"><li>three</li></ol>' +
        '<a href="https://example.org/" title="t" rel="opener">link</a>',
    );
    const root = dom(html);
    expect(root.querySelector("strong")?.textContent).toBe("b");
    expect(root.querySelector("del")).not.toBeNull();
    expect(root.querySelector("code")?.getAttribute("class")).toBe("language-js");
    expect(root.querySelector("ol")?.getAttribute("start")).toBe("3");
    const a = root.querySelector("a")!;
    expect(a.getAttribute("href")).toBe("https://example.org/");
    expect(a.getAttribute("rel")).toBe("noopener noreferrer");
    expect(a.getAttribute("target")).toBe("_blank");
    expect(a.hasAttribute("title")).toBe(false);
  });

  it("allows attributes only on the tags the spec lists them for", () => {
    const root = dom(
      sanitizeIncoming(
        '<code class="evil">a</code><p class="language-x" data-mx-color="#ff0000">b</p>' +
          '<span data-mx-color="#00ff00" data-mx-bg-color="red" style="position:fixed" id="x">c</span>' +
          '<a href="/relative">rel</a><a href="mailto:a@example.org">mail</a>',
      ),
    );
    expect(root.querySelector("code")?.hasAttribute("class")).toBe(false);
    expect(root.querySelector("p")?.attributes.length).toBe(0);
    const span = root.querySelector("span")!;
    expect(span.getAttribute("data-mx-color")).toBe("#00ff00");
    expect(span.hasAttribute("data-mx-bg-color")).toBe(false);
    expect(span.hasAttribute("style")).toBe(false);
    expect(span.hasAttribute("id")).toBe(false);
    const [relative, mail] = [...root.querySelectorAll("a")];
    expect(relative?.hasAttribute("href")).toBe(false);
    expect(mail?.getAttribute("href")).toBe("mailto:a@example.org");
  });

  it("drops reply fallbacks with their content", () => {
    const html = sanitizeIncoming("<mx-reply><blockquote>old quote</blockquote></mx-reply>the answer");
    expect(html).toBe("the answer");
  });

  it("shows images as their text until media is served", () => {
    expect(sanitizeIncoming('<img src="mxc://example.org/abc" alt="cat">')).toBe("[cat]");
    expect(sanitizeIncoming('<img src="https://tracker.example/pixel.gif">')).toBe("[image]");
  });

  it("marks spoilers so they can be hidden", () => {
    const span = dom(sanitizeIncoming('<span data-mx-spoiler="plot">he lives</span>')).querySelector("span")!;
    expect(span.getAttribute("class")).toBe("spoiler");
  });
});

describe("sanitizeOutgoing", () => {
  it("keeps the subset without adding display attributes", () => {
    expect(sanitizeOutgoing('<a href="https://example.org">x</a><b onclick="x()">y</b>')).toBe(
      '<a href="https://example.org">x</a><b>y</b>',
    );
  });
});
