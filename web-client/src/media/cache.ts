import type { MatrixClient } from "../matrix/client";

/** How many blob: URLs to keep; the oldest is revoked past this, freeing its memory. */
const LIMIT = 300;

/**
 * Media fetched with the access token and handed to the page as blob: URLs, once per
 * path: a busy timeline asks for the same avatar many times.
 */
export class MediaCache {
  private readonly entries = new Map<string, Promise<string>>();

  constructor(private readonly client: MatrixClient) {}

  url(path: string): Promise<string> {
    const cached = this.entries.get(path);
    if (cached) {
      // Most recently used last, so eviction takes the stalest.
      this.entries.delete(path);
      this.entries.set(path, cached);
      return cached;
    }
    const loading = this.client.mediaBlob(path).then((blob) => URL.createObjectURL(blob));
    // A failure is not cached: the next render may try again.
    loading.catch(() => this.entries.delete(path));
    this.entries.set(path, loading);
    while (this.entries.size > LIMIT) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      const entry = this.entries.get(oldest);
      this.entries.delete(oldest);
      void entry?.then((url) => URL.revokeObjectURL(url)).catch(() => undefined);
    }
    return loading;
  }

  clear(): void {
    for (const entry of this.entries.values()) void entry.then((url) => URL.revokeObjectURL(url)).catch(() => undefined);
    this.entries.clear();
  }
}
