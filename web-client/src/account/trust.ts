import { useEffect, useState } from "preact/hooks";
import { useChat } from "../app/context";
import type { UserTrust } from "../crypto/crossSigning";
import type { Room } from "../sync/room";
import type { ClientStore } from "../sync/store";

/**
 * Whether a person and each of their devices is verified, asked again whenever their
 * keys change or a verification moves on; null while unknown or without encryption.
 */
export function useTrust(userId: string | undefined): UserTrust | null {
  const chat = useChat();
  const crypto = chat.cryptoNow;
  const epoch = crypto?.trustEpoch ?? -1;
  const phase = chat.verifier?.state?.phase;
  const [trust, setTrust] = useState<UserTrust | null>(null);
  useEffect(() => {
    if (!crypto || !userId) {
      setTrust(null);
      return;
    }
    let live = true;
    (async () => {
      await crypto.crossSigning.track(userId);
      await crypto.processOutgoing();
      const answer = await crypto.crossSigning.trustOf(userId);
      if (live) setTrust(answer);
    })().catch((error: unknown) => console.warn("hearth: could not tell whether someone is verified", error));
    return () => {
      live = false;
    };
  }, [crypto, userId, epoch, phase]);
  return trust;
}

/**
 * A joined room with only the person in it besides us, where a verification can run:
 * one listed as a direct chat first.
 */
export function directChatWith(store: ClientStore, userId: string): Room | undefined {
  const fits = [...store.rooms.values()].filter((room) => room.membership === "join" && store.directPartner(room) === userId);
  return fits.find((room) => store.isDirect(room)) ?? fits[0];
}
