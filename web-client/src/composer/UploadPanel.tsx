import { useEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { formatBytes, msgtypeFor } from "../media/mxc";
import type { Room } from "../sync/room";

/** The server's upload limit, asked once per page: it only changes with a restart. */
let uploadLimit: Promise<number | null> | null = null;

/**
 * A file about to be sent: a preview first, then the upload with its progress, then the
 * message. Nothing leaves the browser until Send.
 */
export function UploadPanel(props: { room: Room; file: File; onDone: () => void }) {
  const chat = useChat();
  const { file } = props;
  // A picture the browser cannot decode goes as a plain file rather than a broken image.
  const [unreadable, setUnreadable] = useState(false);
  const msgtype = unreadable ? "m.file" : msgtypeFor(file.type);
  const [preview, setPreview] = useState<string | null>(null);
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const abort = useRef<(() => void) | null>(null);

  useEffect(() => {
    if (msgtypeFor(file.type) !== "m.image") return;
    const url = URL.createObjectURL(file);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);
  useEffect(() => () => abort.current?.(), []);

  const send = async () => {
    setError(null);
    uploadLimit ??= chat.client
      .mediaConfig()
      .then((config) => (typeof config["m.upload.size"] === "number" ? config["m.upload.size"] : null))
      .catch(() => null);
    const limit = await uploadLimit;
    if (limit !== null && file.size > limit) {
      // Said before sending: the server would refuse it after the whole upload, or cut it off.
      setError(`${file.name} (${formatBytes(file.size)}) is larger than this server accepts: ${formatBytes(limit)} at most. (M_TOO_LARGE)`);
      return;
    }
    setProgress(0);
    const upload = chat.client.upload(file, file.name, (sent, total) => setProgress(total > 0 ? sent / total : 0));
    abort.current = upload.abort;
    try {
      const uri = await upload.done;
      const info: JsonObject = { mimetype: file.type || "application/octet-stream", size: file.size };
      if (msgtype === "m.image" && size) {
        info.w = size.w;
        info.h = size.h;
      }
      chat.sendMessage(props.room.roomId, { msgtype, body: file.name, filename: file.name, url: uri, info });
      props.onDone();
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") return;
      setError(describeError(err));
      setProgress(null);
    } finally {
      abort.current = null;
    }
  };

  const uploading = progress !== null;
  return (
    <div class="upload-panel" role="group" aria-label={`Send ${file.name}`}>
      {preview && !unreadable ? (
        <img
          class="upload-preview"
          src={preview}
          alt={`Preview of ${file.name}`}
          onLoad={(e) => setSize({ w: e.currentTarget.naturalWidth, h: e.currentTarget.naturalHeight })}
          onError={() => setUnreadable(true)}
        />
      ) : (
        <span class="upload-icon" aria-hidden="true">
          📎
        </span>
      )}
      <div class="upload-details">
        <strong class="upload-name">{file.name}</strong>
        <span class="muted small">
          {formatBytes(file.size)}
          {size ? ` · ${size.w}×${size.h}` : ""}
        </span>
        {uploading ? (
          <progress max={1} value={progress} aria-label={`Uploading ${file.name}`}>
            {Math.round(progress * 100)}%
          </progress>
        ) : null}
        {error ? (
          <p class="error small" role="alert">
            {error}
          </p>
        ) : null}
      </div>
      <div class="upload-actions">
        <button
          type="button"
          onClick={() => {
            abort.current?.();
            props.onDone();
          }}
        >
          Cancel
        </button>
        <button type="button" class="primary" disabled={uploading || (msgtype === "m.image" && !size)} onClick={() => void send()}>
          {uploading ? "Uploading…" : "Send file"}
        </button>
      </div>
    </div>
  );
}
