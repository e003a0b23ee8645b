import { useEffect, useMemo, useState } from "preact/hooks";
import { AccountDialog } from "../account/AccountDialog";
import { VerificationDialog } from "../account/VerificationDialog";
import { ProfileDialog } from "../account/ProfileDialog";
import { UserProfileDialog } from "../account/UserProfileDialog";
import type { Session } from "../matrix/client";
import { describeError } from "../matrix/errors";
import { CreateRoomDialog, DirectoryDialog, JoinDialog, StartDmDialog } from "../rooms/dialogs";
import { NotificationBanner } from "../notify/NotificationPermission";
import { forgetWebPush, listenToWorker } from "../notify/webpush";
import { RoomList } from "../rooms/RoomList";
import { RoomView } from "../rooms/RoomView";
import { localpart } from "../sync/room";
import { Avatar } from "../ui/Avatar";
import { Icon } from "../ui/icons";
import { useSubscription } from "../ui/hooks";
import type { Theme } from "../ui/theme";
import { applyTheme, loadTheme, nextTheme } from "../ui/theme";
import { Chat } from "./chat";
import { ChatContext } from "./context";

type DialogName = "create" | "join" | "directory" | "dm" | "account" | "profile" | null;

function roomFromHash(): string | null {
  const match = /^#\/room\/(.+)$/.exec(location.hash);
  return match?.[1] ? decodeURIComponent(match[1]) : null;
}

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Connected",
  polling: "Connected (long-polling)",
  offline: "Offline: reconnecting…",
} as const;

export function ChatView(props: { session: Session; onSignedOut: (notice: string | null) => void }) {
  const chat = useMemo(() => new Chat(props.session, () => props.onSignedOut("Your session has ended. Please sign in again.")), [props.session]);
  useSubscription(chat.store.subscribe.bind(chat.store));
  const [selected, setSelected] = useState<string | null>(roomFromHash());
  const [dialog, setDialog] = useState<DialogName>(null);
  const [theme, setTheme] = useState<Theme>(loadTheme());
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    chat.start();
    return () => chat.stop();
  }, [chat]);

  useEffect(() => {
    const onHash = () => setSelected(roomFromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  chat.notifier.openRoom = selected;
  // The notification offer waits for someone to open a room here, rather than greet the page load.
  const [roomOpened, setRoomOpened] = useState(false);

  const unread = chat.store.totalUnread();
  useEffect(() => {
    document.title = unread ? `(${unread}) Hearth` : "Hearth";
  }, [unread]);

  const open = (roomId: string | null) => {
    setDialog(null);
    if (roomId) setRoomOpened(true);
    if (roomId) location.hash = `#/room/${encodeURIComponent(roomId)}`;
    else history.pushState(null, "", location.pathname);
    setSelected(roomId);
  };

  useEffect(() => listenToWorker(chat.client, (roomId) => open(roomId)), [chat]);

  const signOut = async () => {
    await forgetWebPush().catch(() => undefined);
    try {
      await chat.client.logout();
    } catch (err) {
      // The session is dropped here either way; an expired token cannot log out.
      setError(describeError(err));
    }
    chat.stop();
    props.onSignedOut(null);
  };

  const room = selected ? chat.store.rooms.get(selected) : undefined;
  const me = chat.userId;
  const myName = typeof chat.ownProfile.displayname === "string" ? chat.ownProfile.displayname : localpart(me);
  return (
    <ChatContext.Provider value={chat}>
      <div class={`app ${selected ? "room-open" : ""}`}>
        <aside class="sidebar" aria-label="Navigation">
          <header class="me" data-crypto={chat.cryptoState}>
            <button type="button" class="icon-button me-avatar" aria-label="Edit your profile" title="Edit your profile" onClick={() => setDialog("profile")}>
              <Avatar id={me} name={myName} url={chat.ownProfile.avatar_url} presence={chat.store.presence.get(me)} />
            </button>
            <span class="me-name" title={me}>
              <button type="button" class="link me-link" aria-label={`Account settings for ${me}`} onClick={() => setDialog("account")}>
                {myName}
              </button>
              <span class={`connection ${chat.store.connection}`} role="status" data-connection={chat.store.connection}>
                {CONNECTION_TEXT[chat.store.connection]}
              </span>
              {chat.cryptoState === "unavailable" ? (
                <span class="connection offline" title={`Encrypted rooms can be neither read nor written here: ${chat.cryptoProblem ?? "unknown problem"}`}>
                  Encryption unavailable
                </span>
              ) : null}
            </span>
            <button
              type="button"
              class="icon-button"
              aria-label={`Theme: ${theme}. Switch to ${nextTheme(theme)}`}
              title={`Theme: ${theme}`}
              onClick={() => {
                const next = nextTheme(theme);
                applyTheme(next);
                setTheme(next);
              }}
            >
              <Icon name={theme === "dark" ? "moon" : theme === "light" ? "sun" : "system"} />
            </button>
            <button type="button" class="icon-button" aria-label="Sign out" title="Sign out" onClick={() => void signOut()}>
              <Icon name="signOut" />
            </button>
          </header>
          {error ? <p class="error small">{error}</p> : null}
          {roomOpened ? <NotificationBanner /> : null}
          <nav class="sidebar-actions" aria-label="Room actions">
            <button type="button" onClick={() => setDialog("create")}>
              New room
            </button>
            <button type="button" onClick={() => setDialog("dm")}>
              Direct chat
            </button>
            <button type="button" onClick={() => setDialog("join")}>
              Join
            </button>
            <button type="button" onClick={() => setDialog("directory")}>
              Explore
            </button>
          </nav>
          {chat.store.synced ? (
            <RoomList selected={selected} onSelect={open} />
          ) : (
            <p class="muted empty-list" role="status">
              Loading your rooms…
            </p>
          )}
        </aside>
        <main class="main">
          {room ? (
            <RoomView room={room} onBack={() => open(null)} onLeft={() => open(null)} />
          ) : (
            <div class="welcome">
              <h2>Welcome, {myName}</h2>
              <p class="muted">
                {selected && chat.store.synced ? "That room is not in your list. " : ""}
                Pick a room on the left, or start something new.
              </p>
            </div>
          )}
        </main>
        {dialog === "create" ? <CreateRoomDialog onClose={() => setDialog(null)} onCreated={open} /> : null}
        {dialog === "join" ? <JoinDialog onClose={() => setDialog(null)} onJoined={open} /> : null}
        {dialog === "directory" ? <DirectoryDialog onClose={() => setDialog(null)} onJoined={open} /> : null}
        {dialog === "dm" ? <StartDmDialog onClose={() => setDialog(null)} onStarted={open} /> : null}
        {dialog === "account" ? <AccountDialog onClose={() => setDialog(null)} /> : null}
        <VerificationDialog />
        {dialog === "profile" ? <ProfileDialog onClose={() => setDialog(null)} /> : null}
        {chat.profileShown ? <UserProfileDialog key={chat.profileShown} userId={chat.profileShown} onClose={() => chat.showProfile(null)} /> : null}
      </div>
    </ChatContext.Provider>
  );
}
