import { MatrixError, NetworkError } from "./errors";

/** Answers with the parsed JSON body, or throws MatrixError / NetworkError. */
export async function request<T>(
  method: string,
  path: string,
  options: { body?: unknown; token?: string | undefined; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: options.signal ?? null,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new NetworkError(e instanceof Error ? e.message : String(e));
  }
  let body: unknown = null;
  const text = await response.text().catch(() => "");
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) throw new MatrixError(response.status, body);
  return body as T;
}

export const enc = encodeURIComponent;
