import { useEffect, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { str } from "../matrix/types";
import { centreSquare, formatBytes } from "../media/mxc";
import { localpart } from "../sync/room";
import { Avatar } from "../ui/Avatar";
import { Dialog, ErrorText } from "../ui/Dialog";
import type { EditableField } from "./profile";
import { FIELDS, knownTimeZones, profileChanges } from "./profile";

/** Avatars are stored square at this size: enough for any place the client shows one. */
const AVATAR_EDGE = 256;

/** The centre square of a picture, scaled to AVATAR_EDGE, as PNG. */
async function squareAvatar(file: File): Promise<Blob> {
  const bitmap = await createImageBitmap(file);
  const { x, y, size } = centreSquare(bitmap.width, bitmap.height);
  const canvas = document.createElement("canvas");
  const edge = Math.min(AVATAR_EDGE, size);
  canvas.width = edge;
  canvas.height = edge;
  const context = canvas.getContext("2d");
  if (!context) throw new Error("This browser cannot draw the picture.");
  context.drawImage(bitmap, x, y, size, size, 0, 0, edge, edge);
  bitmap.close();
  return new Promise((resolve, reject) => canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("Could not encode the picture."))), "image/png"));
}

function formOf(profile: JsonObject): Record<EditableField, string> {
  const form = {} as Record<EditableField, string>;
  for (const key of Object.values(FIELDS)) form[key] = str(profile[key]) ?? "";
  return form;
}

/** One's own profile: name, picture, time zone, pronouns and a few words. */
export function ProfileDialog(props: { onClose: () => void }) {
  const chat = useChat();
  const me = chat.userId;
  const [profile, setProfile] = useState<JsonObject | null>(null);
  const [form, setForm] = useState<Record<EditableField, string>>(formOf({}));
  const [avatar, setAvatar] = useState<{ blob: Blob; preview: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const zones = knownTimeZones();

  useEffect(() => {
    chat.client
      .profile(me)
      .then((answer) => {
        setProfile(answer);
        setForm(formOf(answer));
      })
      .catch((e: unknown) => setError(describeError(e)));
  }, []);
  useEffect(() => () => (avatar ? URL.revokeObjectURL(avatar.preview) : undefined), [avatar]);

  const field = (key: EditableField) => ({
    value: form[key],
    onInput: (e: { currentTarget: HTMLInputElement | HTMLTextAreaElement }) => setForm({ ...form, [key]: e.currentTarget.value }),
  });

  const pick = async (file: File | undefined) => {
    if (!file) return;
    setError(null);
    try {
      const blob = await squareAvatar(file);
      setAvatar({ blob, preview: URL.createObjectURL(blob) });
    } catch (e) {
      setError(`That picture could not be read: ${describeError(e)}`);
    }
  };

  const save = async (e: Event) => {
    e.preventDefault();
    if (!profile) return;
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      if (avatar) {
        setStatus(`Uploading the picture (${formatBytes(avatar.blob.size)})…`);
        const uri = await chat.client.upload(avatar.blob, "avatar.png", () => undefined).done;
        await chat.client.setProfileField("avatar_url", uri);
        setAvatar(null);
      }
      const { set, remove } = profileChanges(profile, form);
      for (const [key, value] of set) await chat.client.setProfileField(key, value);
      for (const key of remove) await chat.client.deleteProfileField(key);
      const fresh = await chat.client.profile(me);
      setProfile(fresh);
      setForm(formOf(fresh));
      chat.ownProfile = fresh;
      chat.store.changed();
      setStatus("Profile saved.");
    } catch (err) {
      setStatus(null);
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const removeAvatar = async () => {
    setBusy(true);
    setError(null);
    try {
      await chat.client.deleteProfileField("avatar_url");
      const fresh = await chat.client.profile(me);
      setProfile(fresh);
      chat.ownProfile = fresh;
      chat.store.changed();
      setStatus("Picture removed.");
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const name = form.displayname || localpart(me);
  return (
    <Dialog title="Profile" onClose={props.onClose}>
      {profile ? (
        <form class="form profile-form" onSubmit={(e) => void save(e)}>
          <div class="profile-avatar-row">
            {avatar ? (
              <span class="avatar large">
                <img src={avatar.preview} alt="New picture" />
              </span>
            ) : (
              <Avatar id={me} name={name} url={profile.avatar_url} size="large" />
            )}
            <div class="profile-avatar-actions">
              <label class="button-like">
                Choose a picture
                <input type="file" accept="image/png,image/jpeg,image/gif,image/webp" class="visually-hidden" onChange={(e) => void pick(e.currentTarget.files?.[0])} />
              </label>
              {profile.avatar_url && !avatar ? (
                <button type="button" disabled={busy} onClick={() => void removeAvatar()}>
                  Remove picture
                </button>
              ) : null}
              <span class="muted small">Cropped to the centre square.</span>
            </div>
          </div>
          <label>
            Display name
            <input {...field(FIELDS.displayname)} maxLength={256} placeholder={localpart(me)} />
          </label>
          <label>
            Pronouns
            <input {...field(FIELDS.pronouns)} maxLength={64} placeholder="e.g. she/her" />
          </label>
          <label>
            Time zone
            <input {...field(FIELDS.timeZone)} list="time-zones" placeholder={Intl.DateTimeFormat().resolvedOptions().timeZone} />
          </label>
          <datalist id="time-zones">
            {zones.map((zone) => (
              <option key={zone} value={zone} />
            ))}
          </datalist>
          <label>
            About you
            <textarea {...field(FIELDS.bio)} rows={3} maxLength={1000} />
          </label>
          <ErrorText error={error} />
          {status ? <p role="status">{status}</p> : null}
          <div class="actions">
            <button type="button" onClick={props.onClose}>
              Close
            </button>
            <button type="submit" class="primary" disabled={busy}>
              Save
            </button>
          </div>
        </form>
      ) : (
        <>
          <ErrorText error={error} />
          {error ? null : <p class="muted">Loading…</p>}
        </>
      )}
    </Dialog>
  );
}
