import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { isObject, str } from "../matrix/types";
import { downloadPath, fitBox, formatBytes, parseMxc, thumbnailPath } from "../media/mxc";
import { useMedia } from "../media/useMedia";
import { Dialog } from "../ui/Dialog";

/** The timeline's picture box; thumbnails are asked for at twice this for high-DPI screens. */
const BOX = { width: 320, height: 240 };

function info(content: JsonObject): JsonObject {
  return isObject(content.info) ? content.info : {};
}

function FullImage(props: { path: string; name: string; onClose: () => void }) {
  const { url, error } = useMedia(props.path);
  return (
    <Dialog title={props.name} onClose={props.onClose} wide>
      {url ? <img class="full-image" src={url} alt={props.name} /> : <p class={error ? "error" : "muted"}>{error ?? "Loading…"}</p>}
    </Dialog>
  );
}

function ImageBody(props: { content: JsonObject }) {
  const { content } = props;
  const mxc = parseMxc(content.url);
  const meta = info(content);
  const name = str(content.body) ?? "image";
  const box = fitBox(meta.w, meta.h, BOX.width, BOX.height);
  // Small pictures are shown as they are; the server would answer with the original anyway.
  const small = typeof meta.w === "number" && typeof meta.h === "number" && meta.w <= BOX.width && meta.h <= BOX.height;
  const path = mxc ? (small ? downloadPath(mxc) : thumbnailPath(mxc, BOX.width * 2, BOX.height * 2, "scale")) : null;
  const { url, error } = useMedia(path);
  const [open, setOpen] = useState(false);
  if (!mxc) return <div class="body attachment muted">🖼 {name} (no picture was attached)</div>;
  return (
    <div class="body media">
      <button
        type="button"
        class="image-button"
        style={{ width: `${box.width}px`, height: `${box.height}px` }}
        aria-label={`Open ${name} at full size`}
        onClick={() => setOpen(true)}
      >
        {url ? <img class="thumbnail" src={url} alt={name} width={box.width} height={box.height} /> : <span class={error ? "error small" : "muted small"}>{error ?? "Loading…"}</span>}
      </button>
      {open ? <FullImage path={downloadPath(mxc)} name={name} onClose={() => setOpen(false)} /> : null}
    </div>
  );
}

/** Other people's files are fetched only when asked for: they may be large. */
function FileBody(props: { content: JsonObject }) {
  const chat = useChat();
  const { content } = props;
  const mxc = parseMxc(content.url);
  const name = str(content.filename) ?? str(content.body) ?? "file";
  const size = formatBytes(info(content).size);
  const [state, setState] = useState<string | null>(null);
  if (!mxc) return <div class="body attachment muted">📎 {name} (no file was attached)</div>;
  const download = async (e: Event) => {
    e.preventDefault();
    setState("Downloading…");
    try {
      const blob = await chat.client.mediaBlob(downloadPath(mxc));
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      a.click();
      // The browser has taken its copy once the click has been handled.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setState(null);
    } catch (err) {
      setState(describeError(err));
    }
  };
  return (
    <div class="body attachment file">
      📎{" "}
      <a href="#" class="file-download" onClick={(e) => void download(e)} download={name}>
        {name}
      </a>
      {size ? <span class="muted small"> ({size})</span> : null}
      {state ? <span class="muted small" role="status"> {state}</span> : null}
    </div>
  );
}

/** m.image as a thumbnail that opens full size; m.file, m.audio and m.video as downloads. */
export function MediaBody(props: { content: JsonObject }) {
  return str(props.content.msgtype) === "m.image" ? <ImageBody content={props.content} /> : <FileBody content={props.content} />;
}
