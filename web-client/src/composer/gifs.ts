import type { MatrixClient } from "../matrix/client";
import { MatrixError } from "../matrix/errors";
import { enc, request } from "../matrix/http";
import type { JsonObject } from "../matrix/types";
import { isObject, str } from "../matrix/types";

/**
 * Hearth's GIF search. The server talks to Giphy for us, so the browser never reaches
 * Giphy (the page's CSP would not let it, and Giphy would learn who searches and reads).
 */
const BASE = "/_hearth/client/v1/gifs";

export interface GifResult {
  id: string;
  title: string;
  width: number | null;
  height: number | null;
}

export interface GifPage {
  results: GifResult[];
  nextOffset: number | null;
}

export interface ImportedGif {
  content_uri: string;
  title?: string;
  info: { mimetype: string; w: number; h: number; size: number };
}

const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);

/** Keeps only well-formed results: the answer is read as untrusted input. */
export function parseGifPage(body: unknown): GifPage {
  const results: GifResult[] = [];
  const raw = isObject(body) && Array.isArray(body.results) ? body.results : [];
  for (const item of raw) {
    if (!isObject(item)) continue;
    const id = str(item.id);
    if (!id || !/^[A-Za-z0-9]+$/.test(id)) continue;
    results.push({ id, title: str(item.title) ?? "", width: num(item.width), height: num(item.height) });
  }
  const nextOffset = isObject(body) ? num(body.next_offset) : null;
  return { results, nextOffset };
}

/** An ordinary `m.image` for an imported GIF: readers fetch it from the homeserver. */
export function gifMessage(gif: ImportedGif): JsonObject {
  const title = gif.title?.trim();
  return {
    msgtype: "m.image",
    body: title ? title : "GIF",
    url: gif.content_uri,
    info: { mimetype: gif.info.mimetype, w: gif.info.w, h: gif.info.h, size: gif.info.size },
  };
}

let available: Promise<boolean> | null = null;

/**
 * Whether the server offers GIF search. A search without `q` costs no call to Giphy: a
 * server without a key answers M_UNRECOGNIZED, one with a key M_MISSING_PARAM.
 */
export function gifsAvailable(client: MatrixClient): Promise<boolean> {
  available ??= request("GET", `${BASE}/search`, { token: client.session.accessToken }).then(
    () => true,
    (error: unknown) => {
      if (error instanceof MatrixError && error.errcode === "M_UNRECOGNIZED") return false;
      if (error instanceof MatrixError && error.errcode === "M_MISSING_PARAM") return true;
      // Unknown (offline, say): ask again next time.
      available = null;
      return false;
    },
  );
  return available;
}

export async function searchGifs(client: MatrixClient, q: string, offset: number, signal: AbortSignal): Promise<GifPage> {
  const params = new URLSearchParams({ q, limit: "24", offset: String(offset) });
  const body = await request<unknown>("GET", `${BASE}/search?${params}`, { token: client.session.accessToken, signal });
  return parseGifPage(body);
}

/** A `blob:` URL of the preview (fetched with the token: an `<img>` cannot send one). */
export async function gifPreview(client: MatrixClient, id: string, signal: AbortSignal): Promise<string> {
  const response = await fetch(`${BASE}/${enc(id)}/preview`, {
    headers: { Authorization: `Bearer ${client.session.accessToken}` },
    signal,
  });
  if (!response.ok) throw new MatrixError(response.status, await response.json().catch(() => null));
  return URL.createObjectURL(await response.blob());
}

export function importGif(client: MatrixClient, id: string): Promise<ImportedGif> {
  return request<ImportedGif>("POST", `${BASE}/${enc(id)}/import`, { token: client.session.accessToken, body: {} });
}
