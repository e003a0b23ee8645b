import createDOMPurify from "dompurify";
import type { Config, DOMPurify } from "dompurify";

// The spec's suggested HTML subset (CS §m.room.message msgtypes) and, per tag, the
// attributes it permits. Everything else is removed; `mx-reply` goes with its content.
const TAGS = [
  "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
  "sup", "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div",
  "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "img",
  "details", "summary",
];

const ATTRS_BY_TAG: Record<string, string[]> = {
  font: ["data-mx-bg-color", "data-mx-color", "color"],
  span: ["data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"],
  a: ["target", "href"],
  img: ["width", "height", "alt", "title", "src"],
  ol: ["start"],
  code: ["class"],
  div: ["data-mx-maths"],
};

const ALL_ATTRS = [...new Set(Object.values(ATTRS_BY_TAG).flat())];

/** Link schemes the spec allows; no relative links. Images must be mxc://. */
const LINK = /^(?:https?|ftp|mailto|magnet):/i;
const MXC = /^mxc:\/\/[^/]+\/[^/]+$/i;
const COLOR = /^#[0-9a-f]{6}$/i;

const CONFIG: Config = {
  ALLOWED_TAGS: TAGS,
  ALLOWED_ATTR: ALL_ATTRS,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ADD_FORBID_CONTENTS: ["mx-reply"],
  KEEP_CONTENT: true,
};

function attributeFilter(purify: DOMPurify): void {
  purify.addHook("uponSanitizeAttribute", (node, data) => {
    const tag = node.nodeName.toLowerCase();
    const allowed = ATTRS_BY_TAG[tag] ?? [];
    const name = data.attrName;
    let keep = allowed.includes(name);
    const value = data.attrValue.trim();
    if (keep && name === "href") keep = LINK.test(value);
    if (keep && name === "src") keep = MXC.test(value);
    if (keep && name === "class") keep = /^language-[\w+#-]+$/.test(value);
    if (keep && (name === "data-mx-color" || name === "data-mx-bg-color" || name === "color")) keep = COLOR.test(value);
    if (keep && name === "start") keep = /^-?\d{1,9}$/.test(value);
    if (keep && (name === "width" || name === "height")) keep = /^\d{1,5}$/.test(value);
    if (!keep) data.keepAttr = false;
  });
}

let sending: DOMPurify | null = null;
let display: DOMPurify | null = null;

function sendingPurifier(): DOMPurify {
  if (!sending) {
    sending = createDOMPurify(window);
    attributeFilter(sending);
  }
  return sending;
}

function displayPurifier(): DOMPurify {
  if (!display) {
    const purify = createDOMPurify(window);
    attributeFilter(purify);
    purify.addHook("afterSanitizeAttributes", (node) => {
      if (node.nodeName === "A") {
        if (node.hasAttribute("href")) {
          node.setAttribute("target", "_blank");
          node.setAttribute("rel", "noopener noreferrer");
        } else {
          node.removeAttribute("target");
        }
      }
      if (node.nodeName === "SPAN" && node.hasAttribute("data-mx-spoiler")) {
        node.setAttribute("class", "spoiler");
        node.setAttribute("tabindex", "0");
        node.setAttribute("title", "Spoiler: click to reveal");
      }
    });
    purify.addHook("afterSanitizeElements", (node) => {
      // Media is not served to this client yet, so an inline image shows as its text.
      if (node.nodeName === "IMG" && node.parentNode) {
        const element = node as Element;
        const label = element.getAttribute("alt") || element.getAttribute("title") || "image";
        node.parentNode.replaceChild(node.ownerDocument!.createTextNode(`[${label}]`), node);
      }
    });
    display = purify;
  }
  return display;
}

/**
 * Sanitizing is pure per input, and a timeline re-renders the same messages often:
 * remember recent answers rather than parse each body again on every render.
 */
function memo(sanitize: (html: string) => string): (html: string) => string {
  const cache = new Map<string, string>();
  return (html) => {
    const known = cache.get(html);
    if (known !== undefined) return known;
    const clean = sanitize(html);
    if (cache.size >= 1000) cache.delete(cache.keys().next().value as string);
    cache.set(html, clean);
    return clean;
  };
}

const outgoing = memo((html) => sendingPurifier().sanitize(html, CONFIG) as unknown as string);
const incoming = memo((html) => displayPurifier().sanitize(html, CONFIG) as unknown as string);

/** For HTML this client puts into events: only the spec's tags and attributes. */
export function sanitizeOutgoing(html: string): string {
  return outgoing(html);
}

/**
 * For HTML from other people, right before it is shown: the same subset, links that
 * open in a new tab without a reference back to us, spoilers marked.
 */
export function sanitizeIncoming(html: string): string {
  return incoming(html);
}
