import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import { str } from "../matrix/types";
import { LEVELS, type NotificationLevel } from "../notify/level";
import type { Room } from "../sync/room";
import { creatorsOf } from "../sync/room";
import { Avatar, presenceLabel } from "../ui/Avatar";
import { Dialog, ErrorText } from "../ui/Dialog";
import { can, canSendState, levelOf, outranks, parsePowerLevels, roleName, withUserLevel } from "./power";

const ROLES: Array<[string, number]> = [
  ["Admin", 100],
  ["Moderator", 50],
  ["User", 0],
];

/** Room settings: name and topic, one's notification setting, members with their roles, kicks, bans and unbans, as far as one's power level allows. */
export function RoomSettings(props: { room: Room; onClose: () => void }) {
  const chat = useChat();
  const { room } = props;
  const me = chat.userId;
  const creators = creatorsOf(room);
  const plContent = room.stateEvent("m.room.power_levels")?.content;
  const pl = parsePowerLevels(plContent, room.stateEvent("m.room.create")?.sender);
  const myLevel = levelOf(pl, me, creators);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [name, setName] = useState(str(room.stateEvent("m.room.name")?.content.name) ?? "");
  const [topic, setTopic] = useState(room.topic());
  // While a change is being saved, the radio shows the choice rather than snapping back to the stored level.
  const [choosing, setChoosing] = useState<NotificationLevel | null>(null);
  const level = choosing ?? chat.store.notificationLevel(room);

  const act = async (what: string, action: () => Promise<unknown>) => {
    setError(null);
    setStatus(null);
    try {
      await action();
      setStatus(what);
    } catch (err) {
      setError(describeError(err));
    }
  };

  const canName = canSendState(pl, me, "m.room.name", creators);
  const canTopic = canSendState(pl, me, "m.room.topic", creators);
  const canRoles = canSendState(pl, me, "m.room.power_levels", creators);
  const canEncrypt = canSendState(pl, me, "m.room.encryption", creators);
  const members = [...room.members("join"), ...room.members("invite")];
  const banned = room.members("ban");

  return (
    <Dialog title="Room settings" onClose={props.onClose} wide>
      <section aria-labelledby="settings-general">
        <h3 id="settings-general">General</h3>
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            void act("Saved.", async () => {
              if (canName && name !== (str(room.stateEvent("m.room.name")?.content.name) ?? "")) {
                await chat.client.sendState(room.roomId, "m.room.name", "", { name });
              }
              if (canTopic && topic !== room.topic()) await chat.client.sendState(room.roomId, "m.room.topic", "", { topic });
            });
          }}
        >
          <label>
            Name
            <input value={name} disabled={!canName} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Topic
            <input value={topic} disabled={!canTopic} onInput={(e) => setTopic(e.currentTarget.value)} />
          </label>
          {canName || canTopic ? (
            <div class="actions">
              <button type="submit" class="primary">
                Save
              </button>
            </div>
          ) : (
            <p class="muted small">Only moderators can change these.</p>
          )}
        </form>
      </section>
      <section aria-labelledby="settings-encryption">
        <h3 id="settings-encryption">Encryption</h3>
        {room.isEncrypted() ? (
          <p class="small">Messages here are end-to-end encrypted: only the members' devices can read them. This cannot be turned off.</p>
        ) : (
          <p class="small">
            Messages here are not end-to-end encrypted.{" "}
            {canEncrypt ? (
              <button
                type="button"
                onClick={() => {
                  if (!window.confirm("Turn on end-to-end encryption? It cannot be turned off again.")) return;
                  void act("Encryption is on.", () =>
                    chat.client.sendState(room.roomId, "m.room.encryption", "", { algorithm: "m.megolm.v1.aes-sha2" }),
                  );
                }}
              >
                Turn on encryption
              </button>
            ) : null}
          </p>
        )}
      </section>
      <section aria-labelledby="settings-notifications">
        <h3 id="settings-notifications">Notifications</h3>
        <fieldset class="notification-levels">
          <legend class="visually-hidden">Notify me of</legend>
          {LEVELS.map(([value, label]) => (
            <label key={value} class="inline">
              <input
                type="radio"
                name="notification-level"
                value={value}
                checked={level === value}
                onChange={() => {
                  setChoosing(value);
                  void act(`Notifications: ${label}.`, () => chat.setNotificationLevel(room, value)).finally(() => setChoosing(null));
                }}
              />{" "}
              {label}
            </label>
          ))}
        </fieldset>
        <p class="muted small">Only for you, kept in your push rules, so every device and app you use follows it. Muted rooms also stay out of the unread count.</p>
      </section>
      <ErrorText error={error} />
      {status ? <p role="status">{status}</p> : null}
      <section aria-labelledby="settings-members">
        <h3 id="settings-members">Members ({members.length})</h3>
        <p class="muted small">
          Your role: {roleName(myLevel)}. Admins (100) manage roles; moderators (50) remove, ban and delete messages.
        </p>
        <ul class="member-list">
          {members.map((userId) => {
            const level = levelOf(pl, userId, creators);
            const name = room.displayName(userId);
            const presence = chat.store.presence.get(userId);
            const higher = outranks(pl, me, userId, creators);
            const editable = canRoles && (higher || userId === me) && !creators.includes(userId);
            const invited = room.membershipOf(userId) === "invite";
            return (
              <li key={userId} data-user-id={userId}>
                <Avatar id={userId} name={name} url={room.avatarUrl(userId)} presence={presence} />
                <span class="member-name">
                  <button type="button" class="sender-link" onClick={() => chat.showProfile(userId)}>
                    {name}
                  </button>{" "}
                  <span class="muted small">{userId}</span>
                  <span class="visually-hidden">, {presenceLabel(presence)}</span>
                  {invited ? <span class="muted small"> (invited)</span> : null}
                </span>
                <label class="role">
                  <span class="visually-hidden">Role of {name}</span>
                  <select
                    value={String(level)}
                    disabled={!editable}
                    onChange={(e) => {
                      const next = Number(e.currentTarget.value);
                      if (userId === me && next < myLevel && !window.confirm("Lower your own role? You may not get it back.")) {
                        e.currentTarget.value = String(level);
                        return;
                      }
                      void act(`${name} is now ${roleName(next)}.`, () =>
                        chat.client.sendState(room.roomId, "m.room.power_levels", "", withUserLevel(plContent, userId, next)),
                      );
                    }}
                  >
                    {level === Number.POSITIVE_INFINITY ? <option value={String(level)}>Creator</option> : null}
                    {ROLES.some(([, l]) => l === level) || level === Number.POSITIVE_INFINITY ? null : (
                      <option value={String(level)}>{roleName(level)}</option>
                    )}
                    {ROLES.map(([label, l]) => (
                      <option key={l} value={String(l)} disabled={l > myLevel}>
                        {label}
                      </option>
                    ))}
                  </select>
                </label>
                {userId !== me && higher && can(pl, me, "kick", creators) ? (
                  <button
                    type="button"
                    onClick={() => {
                      const reason = window.prompt(`Remove ${name} from the room? Reason (optional):`);
                      if (reason === null) return;
                      void act(`${name} was removed.`, () => chat.client.kick(room.roomId, userId, reason || undefined));
                    }}
                  >
                    {invited ? "Withdraw invite" : "Remove"}
                  </button>
                ) : null}
                {userId !== me && higher && can(pl, me, "ban", creators) ? (
                  <button
                    type="button"
                    class="danger"
                    onClick={() => {
                      const reason = window.prompt(`Ban ${name}? Reason (optional):`);
                      if (reason === null) return;
                      void act(`${name} was banned.`, () => chat.client.ban(room.roomId, userId, reason || undefined));
                    }}
                  >
                    Ban
                  </button>
                ) : null}
              </li>
            );
          })}
        </ul>
      </section>
      {banned.length ? (
        <section aria-labelledby="settings-banned">
          <h3 id="settings-banned">Banned</h3>
          <ul class="member-list">
            {banned.map((userId) => (
              <li key={userId} data-user-id={userId}>
                <Avatar id={userId} name={room.displayName(userId)} url={room.avatarUrl(userId)} />
                <span class="member-name">
                  {room.displayName(userId)} <span class="muted small">{userId}</span>
                </span>
                {can(pl, me, "ban", creators) && can(pl, me, "kick", creators) ? (
                  <button type="button" onClick={() => void act(`${userId} was unbanned.`, () => chat.client.unban(room.roomId, userId))}>
                    Unban
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </Dialog>
  );
}
