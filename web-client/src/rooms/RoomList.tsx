import { useChat } from "../app/context";
import { Avatar } from "../ui/Avatar";
import { Icon } from "../ui/icons";
import { lastMessagePreview } from "./summary";

/** Joined rooms and invitations, most recent activity first, with unread and mention badges. */
export function RoomList(props: { selected: string | null; onSelect: (roomId: string) => void }) {
  const chat = useChat();
  const rooms = chat.store.sortedRooms();
  if (!rooms.length) {
    return <p class="muted empty-list">No rooms yet. Create one, join one from the directory, or start a direct chat.</p>;
  }
  return (
    <ul class="room-list" aria-label="Rooms">
      {rooms.map((room) => {
        const name = room.name(chat.userId);
        const direct = chat.store.isDirect(room);
        const partner = direct ? chat.store.directPartner(room) : undefined;
        const unread = room.membership === "join" ? room.notificationCount : 0;
        const mentions = room.membership === "join" ? room.highlightCount : 0;
        const label = [name, room.membership === "invite" ? "invitation" : "", unread ? `${unread} unread` : "", mentions ? `${mentions} mentions` : ""]
          .filter(Boolean)
          .join(", ");
        return (
          <li key={room.roomId}>
            <button
              type="button"
              class={`room-item ${props.selected === room.roomId ? "selected" : ""} ${unread ? "unread" : ""}`}
              aria-current={props.selected === room.roomId ? "page" : undefined}
              aria-label={label}
              data-room-id={room.roomId}
              onClick={() => props.onSelect(room.roomId)}
            >
              <Avatar id={room.roomId} name={name} url={room.avatar(partner)} presence={partner ? chat.store.presence.get(partner) : undefined} />
              <span class="room-item-text">
                <span class="room-item-name">
                  {name}
                  {room.isEncrypted() ? (
                    <span class="room-encrypted" title="End-to-end encrypted">
                      <Icon name="lock" />
                    </span>
                  ) : null}
                </span>
                <span class="room-item-preview">
                  {room.membership === "invite" ? "Invitation" : lastMessagePreview(room, chat.userId)}
                </span>
              </span>
              {mentions > 0 ? (
                <span class="badge mention" title={`${mentions} mentions`}>
                  @{mentions}
                </span>
              ) : unread > 0 ? (
                <span class="badge" title={`${unread} unread`}>
                  {unread}
                </span>
              ) : room.membership === "invite" ? (
                <span class="badge invite">new</span>
              ) : null}
            </button>
          </li>
        );
      })}
    </ul>
  );
}
