import { useEffect, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { str } from "../matrix/types";
import { localpart } from "../sync/room";
import { Avatar } from "../ui/Avatar";
import { Dialog, ErrorText } from "../ui/Dialog";
import { useMinuteClock } from "../ui/hooks";
import { FIELDS, timeIn } from "./profile";
import { TrustSection } from "./TrustSection";

/** Someone's public profile, as their server gives it. */
export function UserProfileDialog(props: { userId: string; onClose: () => void }) {
  const chat = useChat();
  const now = useMinuteClock();
  const [profile, setProfile] = useState<JsonObject | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    chat.client
      .profile(props.userId)
      .then(setProfile)
      .catch((e: unknown) => setError(describeError(e)));
  }, [props.userId]);

  const name = str(profile?.displayname) ?? localpart(props.userId);
  const zone = str(profile?.[FIELDS.timeZone]);
  const local = zone ? timeIn(zone, new Date(now)) : null;
  const pronouns = str(profile?.[FIELDS.pronouns]);
  const bio = str(profile?.[FIELDS.bio]);
  return (
    <Dialog title={`Profile of ${name}`} onClose={props.onClose}>
      <ErrorText error={error} />
      {profile ? (
        <div class="user-profile">
          <Avatar id={props.userId} name={name} url={profile.avatar_url} size="large" />
          <h3 class="profile-name">{name}</h3>
          <p class="muted small">{props.userId}</p>
          <dl class="profile-fields">
            {pronouns ? (
              <>
                <dt>Pronouns</dt>
                <dd data-field="pronouns">{pronouns}</dd>
              </>
            ) : null}
            {zone ? (
              <>
                <dt>Time zone</dt>
                <dd data-field="time-zone">
                  {zone}
                  {local ? ` (${local} there now)` : ""}
                </dd>
              </>
            ) : null}
            {bio ? (
              <>
                <dt>About</dt>
                <dd data-field="bio" class="profile-bio">
                  {bio}
                </dd>
              </>
            ) : null}
          </dl>
          <TrustSection userId={props.userId} />
        </div>
      ) : error ? null : (
        <p class="muted">Loading…</p>
      )}
    </Dialog>
  );
}
