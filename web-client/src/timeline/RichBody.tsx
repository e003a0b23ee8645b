import type { ComponentChildren } from "preact";
import { sanitizeIncoming } from "../composer/sanitize";
import type { JsonObject } from "../matrix/types";
import { str } from "../matrix/types";
import { MediaBody } from "./MediaBody";

const URL = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]'}]/g;

/** Plain text with its web addresses made into links, built as elements, never as HTML. */
function linkify(text: string): ComponentChildren[] {
  const parts: ComponentChildren[] = [];
  let last = 0;
  for (const match of text.matchAll(URL)) {
    const index = match.index ?? 0;
    if (index > last) parts.push(text.slice(last, index));
    parts.push(
      <a href={match[0]} target="_blank" rel="noopener noreferrer">
        {match[0]}
      </a>,
    );
    last = index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** A message body: other people's HTML only ever through the sanitizer. */
export function RichBody(props: { content: JsonObject }) {
  const { content } = props;
  const msgtype = str(content.msgtype);
  const body = str(content.body) ?? "";
  const html = str(content.format) === "org.matrix.custom.html" ? str(content.formatted_body) : undefined;
  if (msgtype && ["m.image", "m.file", "m.audio", "m.video"].includes(msgtype)) return <MediaBody content={content} />;
  if (html !== undefined) {
    return <div class="body html" dangerouslySetInnerHTML={{ __html: sanitizeIncoming(html) }} />;
  }
  return <div class="body text">{linkify(body)}</div>;
}
