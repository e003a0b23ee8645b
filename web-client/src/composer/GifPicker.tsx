import { useEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import "../styles/gifs.css";
import type { GifResult } from "./gifs";
import { gifMessage, gifPreview, importGif, searchGifs } from "./gifs";

function GifTile(props: { gif: GifResult; onPick: () => void; disabled: boolean }) {
  const chat = useChat();
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    let url: string | null = null;
    gifPreview(chat.client, props.gif.id, abort.signal).then(
      (u) => {
        url = u;
        setSrc(u);
      },
      () => undefined,
    );
    return () => {
      abort.abort();
      if (url) URL.revokeObjectURL(url);
    };
  }, [props.gif.id]);
  const label = props.gif.title || "GIF";
  return (
    <button type="button" class="gif-tile" aria-label={label} title={label} disabled={props.disabled} onClick={props.onPick}>
      {src ? <img src={src} alt="" width={props.gif.width ?? undefined} height={props.gif.height ?? undefined} /> : <span class="muted">…</span>}
    </button>
  );
}

/** Search box and a grid of previews; a picked GIF is imported by the server, then sent. */
export function GifPicker(props: { roomId: string; onClose: () => void }) {
  const chat = useChat();
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<GifResult[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [status, setStatus] = useState("");
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  const search = useRef<AbortController | null>(null);

  useEffect(() => {
    ref.current?.querySelector("input")?.focus();
    const close = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) props.onClose();
    };
    document.addEventListener("mousedown", close);
    return () => {
      document.removeEventListener("mousedown", close);
      search.current?.abort();
    };
  }, []);

  const run = (q: string, offset: number) => {
    search.current?.abort();
    const abort = new AbortController();
    search.current = abort;
    setStatus("Searching…");
    searchGifs(chat.client, q, offset, abort.signal).then(
      (page) => {
        setResults(offset === 0 ? page.results : [...results, ...page.results]);
        setNext(page.nextOffset);
        setStatus(offset === 0 && !page.results.length ? "No GIFs found." : "");
      },
      (error: unknown) => {
        if (!abort.signal.aborted) setStatus(describeError(error));
      },
    );
  };

  // Search as the person types, once they pause.
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setResults([]);
      setNext(null);
      setStatus("");
      return;
    }
    const timer = setTimeout(() => run(q, 0), 350);
    return () => clearTimeout(timer);
  }, [query]);

  const pick = (gif: GifResult) => {
    setBusy(true);
    setStatus("Sending…");
    importGif(chat.client, gif.id).then(
      (imported) => {
        chat.sendMessage(props.roomId, gifMessage(imported));
        props.onClose();
      },
      (error: unknown) => {
        setBusy(false);
        setStatus(describeError(error));
      },
    );
  };

  return (
    <div
      class="gif-picker"
      role="dialog"
      aria-label="Send a GIF"
      ref={ref}
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.stopPropagation();
          props.onClose();
        }
      }}
    >
      <input type="search" placeholder="Search GIFs" aria-label="Search GIFs" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
      <div class="gif-grid">
        {results.map((gif) => (
          <GifTile key={gif.id} gif={gif} disabled={busy} onPick={() => pick(gif)} />
        ))}
      </div>
      {next !== null && results.length ? (
        <button type="button" class="gif-more" disabled={busy} onClick={() => run(query.trim(), next)}>
          More
        </button>
      ) : null}
      <p class="gif-status muted" role="status">
        {status}
      </p>
    </div>
  );
}
