import { useContext, useEffect, useState } from "preact/hooks";
import { ChatContext } from "../app/context";
import { describeError } from "../matrix/errors";

export type MediaState = { url: string | null; error: string | null };

/** A blob: URL for an authenticated media path, or null while it loads (or with no path). */
export function useMedia(path: string | null): MediaState {
  const chat = useContext(ChatContext);
  const [state, setState] = useState<MediaState>({ url: null, error: null });
  useEffect(() => {
    if (!path || !chat) {
      setState({ url: null, error: null });
      return;
    }
    let live = true;
    setState({ url: null, error: null });
    chat.media
      .url(path)
      .then((url) => live && setState({ url, error: null }))
      .catch((e: unknown) => live && setState({ url: null, error: describeError(e) }));
    return () => {
      live = false;
    };
  }, [path, chat]);
  return state;
}
