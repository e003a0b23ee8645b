import { Marked } from "marked";
import type { Tokens } from "marked";
import { sanitizeOutgoing } from "./sanitize";

export interface MessageText {
  msgtype: "m.text" | "m.emote";
  body: string;
  format?: "org.matrix.custom.html";
  formatted_body?: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Raw HTML typed into the composer is shown as typed, never interpreted: people write
// `<b>` in chat to talk about it. Markdown is the only way to format.
const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(token.text);
    },
  },
});

/** Tags that mean the Markdown did more than wrap plain text in a paragraph. */
const FORMATTING = /<(?!\/?(?:p|br)\b)[a-z]/i;

/**
 * The message for what a person typed: `body` is their text as typed; HTML (sanitized
 * to the spec's subset) is added only when the Markdown formats something.
 */
export function composeMessage(text: string, msgtype: "m.text" | "m.emote" = "m.text"): MessageText {
  const body = text.trim();
  const message: MessageText = { msgtype, body };
  if (!body) return message;
  const html = (marked.parse(body) as string).trim();
  const paragraphs = (html.match(/<p>/g) ?? []).length;
  const single = paragraphs === 1 && html.startsWith("<p>") && html.endsWith("</p>");
  const inner = single ? html.slice(3, -4) : html;
  if (FORMATTING.test(inner) || !single || plainText(inner) !== body) {
    message.format = "org.matrix.custom.html";
    message.formatted_body = sanitizeOutgoing(inner);
  }
  return message;
}

/** The text a paragraph's HTML shows, with its line breaks, to tell escaping from formatting. */
function plainText(html: string): string {
  const doc = new DOMParser().parseFromString(html.replace(/<br>\n?/g, "\n"), "text/html");
  return doc.body.textContent ?? "";
}

/** The plain text to show for an event's HTML, e.g. in a reply preview or the room list. */
export function htmlToText(html: string): string {
  const doc = new DOMParser().parseFromString(sanitizeOutgoing(html), "text/html");
  return (doc.body.textContent ?? "").replace(/\s+/g, " ").trim();
}
