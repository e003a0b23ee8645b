import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { Composer } from "../composer/Composer";
import { describeError } from "../matrix/errors";
import { str } from "../matrix/types";
import { RoomSettings } from "../moderation/RoomSettings";
import { can, parsePowerLevels } from "../moderation/power";
import type { Room } from "../sync/room";
import { creatorsOf } from "../sync/room";
import type { ComposerTarget } from "../timeline/EventTile";
import { Timeline, TypingLine } from "../timeline/Timeline";
import { Avatar, PresenceDot, presenceLabel } from "../ui/Avatar";
import { ErrorText } from "../ui/Dialog";
import { Icon } from "../ui/icons";
import { useTrust } from "../account/trust";
import { InviteDialog } from "./dialogs";

function InviteView(props: { room: Room; onLeft: () => void }) {
  const chat = useChat();
  const [error, setError] = useState<string | null>(null);
  const me = props.room.member(chat.userId);
  const inviter = props.room.stateEvent("m.room.member", chat.userId)?.sender;
  const run = (action: () => Promise<unknown>, after?: () => void) =>
    action()
      .then(() => after?.())
      .catch((e: unknown) => setError(describeError(e)));
  return (
    <div class="invite-view">
      <Avatar id={props.room.roomId} name={props.room.name(chat.userId)} url={props.room.avatar(undefined)} size="large" />
      <h2>{props.room.name(chat.userId)}</h2>
      <p>
        {inviter ? props.room.displayName(inviter) : "Someone"} invited you{me?.is_direct === true ? " to a direct chat" : ""}.
      </p>
      <ErrorText error={error} />
      <div class="actions">
        <button type="button" onClick={() => void run(() => chat.client.leave(props.room.roomId), props.onLeft)}>
          Decline
        </button>
        <button type="button" class="primary" onClick={() => void run(() => chat.client.join(props.room.roomId))}>
          Accept
        </button>
      </div>
    </div>
  );
}

/** One open room: header with its actions, the timeline, who is typing, and the composer. */
export function RoomView(props: { room: Room; onBack: () => void; onLeft: () => void }) {
  const chat = useChat();
  const { room } = props;
  const [target, setTarget] = useState<ComposerTarget | null>(null);
  const [attachment, setAttachment] = useState<File | null>(null);
  const [dropping, setDropping] = useState(false);
  const [dialog, setDialog] = useState<"invite" | "settings" | null>(null);
  const [error, setError] = useState<string | null>(null);
  const name = room.name(chat.userId);
  const partner = chat.store.isDirect(room) ? chat.store.directPartner(room) : undefined;
  const partnerPresence = partner ? chat.store.presence.get(partner) : undefined;
  const pl = parsePowerLevels(room.stateEvent("m.room.power_levels")?.content, room.stateEvent("m.room.create")?.sender);
  const canInvite = can(pl, chat.userId, "invite", creatorsOf(room));
  const partnerTrust = useTrust(room.membership === "join" ? partner : undefined);

  if (room.membership === "invite") return <InviteView room={room} onLeft={props.onLeft} />;
  if (room.membership === "leave") {
    const own = room.stateEvent("m.room.member", chat.userId);
    const by = own && own.sender !== chat.userId ? room.displayName(own.sender) : null;
    const reason = str(own?.content.reason);
    const how = str(own?.content.membership) === "ban" ? "banned" : "removed";
    return (
      <div class="invite-view">
        <h2>{name}</h2>
        <p>
          You are no longer in this room{by ? `: ${by} ${how} you` : ""}
          {reason ? ` (${reason})` : ""}.
        </p>
        <button type="button" onClick={props.onLeft}>
          Close
        </button>
      </div>
    );
  }

  const leave = () => {
    if (!window.confirm(`Leave ${name}?`)) return;
    chat.client
      .leave(room.roomId)
      .then(props.onLeft)
      .catch((e: unknown) => setError(describeError(e)));
  };

  return (
    <section
      class={dropping ? "room-view dropping" : "room-view"}
      aria-label={name}
      onDragOver={(e) => {
        if (!e.dataTransfer?.types.includes("Files") || room.membership !== "join") return;
        e.preventDefault();
        setDropping(true);
      }}
      onDragLeave={(e) => {
        // Leaving for a child element is not leaving the room view.
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setDropping(false);
      }}
      onDrop={(e) => {
        setDropping(false);
        const file = e.dataTransfer?.files[0];
        if (!file || room.membership !== "join") return;
        e.preventDefault();
        setAttachment(file);
      }}
    >
      <header class="room-header">
        <button type="button" class="icon-button back" aria-label="Back to rooms" onClick={props.onBack}>
          <Icon name="back" />
        </button>
        <Avatar id={room.roomId} name={name} url={room.avatar(partner)} presence={partnerPresence} />
        <div class="room-title">
          <h2>
            {name}
            {room.isEncrypted() ? (
              <span class="room-encrypted" title="Messages here are end-to-end encrypted" aria-label="End-to-end encrypted" role="img">
                <Icon name="lock" />
              </span>
            ) : null}
          </h2>
          <p class="muted small">
            {partner ? (
              <span class="partner-presence" data-presence={presenceLabel(partnerPresence)}>
                <PresenceDot presence={partnerPresence} /> {presenceLabel(partnerPresence)}
              </span>
            ) : (
              `${room.members("join").length} members`
            )}
            {room.topic() ? ` · ${room.topic()}` : ""}
            {partner && partnerTrust?.hasIdentity ? (
              <span class="partner-trust" data-verified={String(partnerTrust.verified)}>
                {" · "}
                {partnerTrust.verified ? "Verified" : "Not verified"}
              </span>
            ) : null}
          </p>
        </div>
        <div class="room-actions">
          {partner && partnerTrust?.hasIdentity && !partnerTrust.verified ? (
            <button
              type="button"
              onClick={() => chat.verifier?.startWithUser(partner, room.roomId).catch((e: unknown) => setError(describeError(e)))}
            >
              Verify
            </button>
          ) : null}
          {canInvite ? (
            <button type="button" onClick={() => setDialog("invite")}>
              Invite
            </button>
          ) : null}
          <button type="button" onClick={() => setDialog("settings")}>
            Settings
          </button>
          <button type="button" onClick={leave}>
            Leave
          </button>
        </div>
      </header>
      <ErrorText error={error} />
      <Timeline key={room.roomId} room={room} onCompose={setTarget} />
      <TypingLine room={room} />
      <Composer room={room} target={target} onTarget={setTarget} attachment={attachment} onAttachment={setAttachment} />
      {dialog === "invite" ? <InviteDialog roomId={room.roomId} onClose={() => setDialog(null)} /> : null}
      {dialog === "settings" ? <RoomSettings room={room} onClose={() => setDialog(null)} /> : null}
    </section>
  );
}
