/** Pure helpers for Matrix content URIs and for sizing media on screen. */

export interface Mxc {
  serverName: string;
  mediaId: string;
}

const MXC = /^mxc:\/\/([A-Za-z0-9.:[\]-]+)\/([A-Za-z0-9_-]+)$/;

/** Splits `mxc://server/id`; anything else (http URLs included) is refused. */
export function parseMxc(uri: unknown): Mxc | null {
  if (typeof uri !== "string") return null;
  const match = MXC.exec(uri);
  if (!match?.[1] || !match[2]) return null;
  return { serverName: match[1], mediaId: match[2] };
}

const MEDIA = "/_matrix/client/v1/media";

/** The authenticated download path; these need the access token, so never go in an <img src>. */
export function downloadPath(mxc: Mxc): string {
  return `${MEDIA}/download/${encodeURIComponent(mxc.serverName)}/${encodeURIComponent(mxc.mediaId)}`;
}

export function thumbnailPath(mxc: Mxc, width: number, height: number, method: "crop" | "scale"): string {
  const params = new URLSearchParams({ width: String(width), height: String(height), method });
  return `${MEDIA}/thumbnail/${encodeURIComponent(mxc.serverName)}/${encodeURIComponent(mxc.mediaId)}?${params}`;
}

/**
 * The largest box with the media's aspect ratio that fits in max width x max height,
 * never enlarged past its natural size. Unknown or nonsense sizes get the whole box,
 * so a message from a client that sent no `info.w/h` still reserves space.
 */
export function fitBox(width: unknown, height: unknown, maxWidth: number, maxHeight: number): { width: number; height: number } {
  if (typeof width !== "number" || typeof height !== "number" || !(width > 0) || !(height > 0) || !isFinite(width) || !isFinite(height)) {
    return { width: maxWidth, height: maxHeight };
  }
  const scale = Math.min(1, maxWidth / width, maxHeight / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** File sizes as people read them: 1 decimal from KB up, powers of 1024. */
export function formatBytes(bytes: unknown): string {
  if (typeof bytes !== "number" || !(bytes >= 0) || !isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** The centred square of a w x h picture, for cropping avatars. */
export function centreSquare(width: number, height: number): { x: number; y: number; size: number } {
  const size = Math.min(width, height);
  return { x: Math.floor((width - size) / 2), y: Math.floor((height - size) / 2), size };
}

/** What to send a file as: pictures the browser can show become m.image, anything else m.file. */
export function msgtypeFor(mimetype: string): "m.image" | "m.file" {
  return /^image\/(png|jpeg|gif|webp)$/.test(mimetype) ? "m.image" : "m.file";
}
