import { useEffect, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { JsonObject, PublicRoom } from "../matrix/types";
import { Avatar } from "../ui/Avatar";
import { Dialog, ErrorText } from "../ui/Dialog";

/** Turns on Megolm encryption in a new room's first state. */
const ENCRYPTION_STATE = { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } };

function serverName(userId: string): string {
  return userId.slice(userId.indexOf(":") + 1);
}

/** Runs an action, keeping a busy flag and the error to show. */
function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}

export function CreateRoomDialog(props: { onClose: () => void; onCreated: (roomId: string) => void }) {
  const chat = useChat();
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const [isPublic, setPublic] = useState(false);
  const [alias, setAlias] = useState("");
  // On for private rooms unless switched off; a public room's messages are for anyone anyway.
  const [encrypted, setEncrypted] = useState<boolean | null>(null);
  const encrypt = encrypted ?? !isPublic;
  const { busy, error, run } = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const body: JsonObject = {
        name: name.trim(),
        preset: isPublic ? "public_chat" : "private_chat",
        visibility: isPublic ? "public" : "private",
      };
      if (topic.trim()) body.topic = topic.trim();
      if (alias.trim()) body.room_alias_name = alias.trim().replace(/^#/, "").split(":")[0];
      if (encrypt) body.initial_state = [ENCRYPTION_STATE];
      const { room_id } = await chat.client.createRoom(body);
      props.onCreated(room_id);
    });
  };
  return (
    <Dialog title="Create a room" onClose={props.onClose}>
      <form class="form" onSubmit={submit}>
        <label>
          Name
          <input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Topic <span class="muted">(optional)</span>
          <input name="topic" value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
        </label>
        <fieldset>
          <legend>Who can join</legend>
          <label class="inline">
            <input type="radio" name="visibility" checked={!isPublic} onChange={() => setPublic(false)} /> Private: by invitation
          </label>
          <label class="inline">
            <input type="radio" name="visibility" checked={isPublic} onChange={() => setPublic(true)} /> Public: anyone, listed in the
            directory
          </label>
        </fieldset>
        <label class="inline">
          <input type="checkbox" name="encrypted" checked={encrypt} onChange={(e) => setEncrypted(e.currentTarget.checked)} /> End-to-end
          encrypted <span class="muted">(cannot be turned off later)</span>
        </label>
        <label>
          Address <span class="muted">(optional)</span>
          <span class="alias-input">
            <span aria-hidden="true">#</span>
            <input name="alias" value={alias} onInput={(e) => setAlias(e.currentTarget.value)} placeholder="my-room" />
            <span aria-hidden="true">:{serverName(chat.userId)}</span>
          </span>
        </label>
        <ErrorText error={error} />
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Create room
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function JoinDialog(props: { onClose: () => void; onJoined: (roomId: string) => void }) {
  const chat = useChat();
  const [target, setTarget] = useState("");
  const { busy, error, run } = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const { room_id } = await chat.client.join(target.trim());
      props.onJoined(room_id);
    });
  };
  return (
    <Dialog title="Join a room" onClose={props.onClose}>
      <form class="form" onSubmit={submit}>
        <label>
          Room address or ID
          <input
            name="room"
            required
            value={target}
            onInput={(e) => setTarget(e.currentTarget.value)}
            placeholder={`#room:${serverName(chat.userId)} or !id:${serverName(chat.userId)}`}
            pattern="[#!].+:.+"
            title="A room address (#name:server) or ID (!id:server)"
          />
        </label>
        <ErrorText error={error} />
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Join
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function DirectoryDialog(props: { onClose: () => void; onJoined: (roomId: string) => void }) {
  const chat = useChat();
  const [search, setSearch] = useState("");
  const [rooms, setRooms] = useState<PublicRoom[]>([]);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const { busy, error, run } = useAction();

  const load = async (term: string, since?: string) => {
    setLoading(true);
    await run(async () => {
      const page = await chat.client.publicRooms(term, since);
      setRooms((old) => (since ? [...old, ...page.chunk] : page.chunk));
      setNext(page.next_batch);
    });
    setLoading(false);
  };
  useEffect(() => {
    const timer = setTimeout(() => void load(search.trim()), search ? 250 : 0);
    return () => clearTimeout(timer);
  }, [search]);

  return (
    <Dialog title="Explore public rooms" onClose={props.onClose} wide>
      <label class="search">
        <span class="visually-hidden">Search rooms</span>
        <input type="search" placeholder="Search by name or topic" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
      </label>
      <ErrorText error={error} />
      <ul class="directory" aria-busy={loading}>
        {rooms.map((room) => {
          const joined = chat.store.rooms.get(room.room_id)?.membership === "join";
          return (
            <li key={room.room_id}>
              <div>
                <strong>{room.name ?? room.canonical_alias ?? room.room_id}</strong>
                {room.canonical_alias ? <span class="muted"> {room.canonical_alias}</span> : null}
                {room.topic ? <p class="muted">{room.topic}</p> : null}
                <span class="muted small">{room.num_joined_members} members</span>
              </div>
              <button
                type="button"
                class={joined ? "" : "primary"}
                disabled={busy}
                onClick={() =>
                  joined
                    ? props.onJoined(room.room_id)
                    : void run(async () => {
                        const { room_id } = await chat.client.join(room.room_id);
                        props.onJoined(room_id);
                      })
                }
              >
                {joined ? "Open" : "Join"}
              </button>
            </li>
          );
        })}
      </ul>
      {!loading && rooms.length === 0 ? <p class="muted">No public rooms found.</p> : null}
      {next ? (
        <button type="button" onClick={() => void load(search.trim(), next)} disabled={loading}>
          Load more
        </button>
      ) : null}
    </Dialog>
  );
}

const USER_ID = /^@[^:\s]+:\S+$/;

function normaliseUserId(input: string, me: string): string {
  const value = input.trim();
  if (value.startsWith("@")) return value;
  return `@${value}:${serverName(me)}`;
}

export function StartDmDialog(props: { onClose: () => void; onStarted: (roomId: string) => void }) {
  const chat = useChat();
  const [user, setUser] = useState("");
  const [found, setFound] = useState<{ user_id: string; display_name?: string; avatar_url?: string }[]>([]);
  const { busy, error, run } = useAction();

  // The user directory, as the person types: people who share a room or are public.
  useEffect(() => {
    const term = user.trim();
    if (term.length < 2) {
      setFound([]);
      return;
    }
    const timer = setTimeout(() => {
      chat.client
        .searchUsers(term)
        .then((answer) => setFound(answer.results.filter((r) => r.user_id !== chat.userId)))
        .catch(() => setFound([]));
    }, 200);
    return () => clearTimeout(timer);
  }, [user]);

  const start = (userId: string) =>
    void run(async () => {
      if (userId === chat.userId) throw new Error("That is you.");
      // Hearth hands back the existing direct chat with this person, if there is one.
      // Direct chats are end-to-end encrypted from the start, as in Element.
      const { room_id } = await chat.client.createRoom({
        is_direct: true,
        invite: [userId],
        preset: "trusted_private_chat",
        initial_state: [ENCRYPTION_STATE],
      });
      props.onStarted(room_id);
    });
  const submit = (e: Event) => {
    e.preventDefault();
    const userId = normaliseUserId(user, chat.userId);
    if (USER_ID.test(userId)) start(userId);
  };
  return (
    <Dialog title="Start a direct chat" onClose={props.onClose}>
      <form class="form" onSubmit={submit}>
        <label>
          User ID or name
          <input name="user" required value={user} onInput={(e) => setUser(e.currentTarget.value)} placeholder={`@bob:${serverName(chat.userId)} or bob`} />
        </label>
        {found.length ? (
          <ul class="member-list" aria-label="People found">
            {found.map((person) => (
              <li key={person.user_id}>
                <Avatar id={person.user_id} name={person.display_name ?? person.user_id} url={person.avatar_url} />
                <span class="member-name">
                  {person.display_name ?? person.user_id} <span class="muted small">{person.user_id}</span>
                </span>
                <button type="button" disabled={busy} onClick={() => start(person.user_id)} aria-label={`Message ${person.display_name ?? person.user_id}`}>
                  Message
                </button>
              </li>
            ))}
          </ul>
        ) : null}
        <ErrorText error={error} />
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Start chat
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function InviteDialog(props: { roomId: string; onClose: () => void }) {
  const chat = useChat();
  const [user, setUser] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    const userId = normaliseUserId(user, chat.userId);
    void run(async () => {
      await chat.client.invite(props.roomId, userId);
      setDone(`Invited ${userId}.`);
      setUser("");
    });
  };
  return (
    <Dialog title="Invite to this room" onClose={props.onClose}>
      <form class="form" onSubmit={submit}>
        <label>
          User ID
          <input name="user" required value={user} onInput={(e) => setUser(e.currentTarget.value)} placeholder={`@bob:${serverName(chat.userId)}`} />
        </label>
        <ErrorText error={error} />
        {done ? <p role="status">{done}</p> : null}
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Done
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Invite
          </button>
        </div>
      </form>
    </Dialog>
  );
}
