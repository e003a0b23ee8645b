import type { JsonObject, MatrixEvent, StrippedState } from "../matrix/types";
import { isObject, str } from "../matrix/types";

export type Membership = "join" | "invite" | "leave";

export interface Receipt {
  eventId: string;
  ts: number;
}

/** Who reacted with what to one event: key → sender → the reaction's event ID. */
export type ReactionMap = Map<string, Map<string, string>>;

/** The relation an event declares in `m.relates_to`, if any. */
export function relation(event: MatrixEvent): { relType: string; eventId: string; key?: string } | null {
  const rel = event.content["m.relates_to"];
  if (!isObject(rel)) return null;
  const relType = str(rel.rel_type);
  const eventId = str(rel.event_id);
  if (!relType || !eventId) return null;
  const key = str(rel.key);
  return key === undefined ? { relType, eventId } : { relType, eventId, key };
}

export function replyTo(content: JsonObject): string | undefined {
  const rel = content["m.relates_to"];
  if (!isObject(rel)) return undefined;
  const reply = rel["m.in_reply_to"];
  return isObject(reply) ? str(reply.event_id) : undefined;
}

/** Room v11 moved `redacts` into content; older rooms keep it at the top level. */
export function redactedId(event: MatrixEvent): string | undefined {
  return event.redacts ?? str(event.content.redacts);
}

/** One room as this client knows it: state, the loaded stretch of timeline, and what hangs off it. */
export class Room {
  membership: Membership = "join";
  readonly state = new Map<string, MatrixEvent | StrippedState>();
  timeline: MatrixEvent[] = [];
  private readonly ids = new Set<string>();
  /** Token to load older events with; null once the room's start is reached. */
  prevBatch: string | null = null;
  /** Set once older events were loaded, so an empty timeline is not mistaken for a new room. */
  paginated = false;
  /** Original event ID → editor → their latest edit; only the original sender's counts. */
  readonly edits = new Map<string, Map<string, MatrixEvent>>();
  readonly reactions = new Map<string, ReactionMap>();
  /** Reaction event ID → what it reacts to, so redacting a reaction can undo it. */
  private readonly reactionTargets = new Map<string, { target: string; key: string; sender: string }>();
  readonly receipts = new Map<string, Receipt>();
  typing: string[] = [];
  notificationCount = 0;
  highlightCount = 0;
  fullyRead: string | undefined;
  /** Room account data by type, as sync last delivered it. */
  readonly accountData = new Map<string, JsonObject>();
  heroes: string[] = [];
  lastActivity = 0;
  /** Bumped on every change, so views can tell the room changed. */
  version = 0;

  constructor(readonly roomId: string) {}

  stateEvent(type: string, stateKey = ""): MatrixEvent | StrippedState | undefined {
    return this.state.get(`${type}\u0000${stateKey}`);
  }

  setState(event: MatrixEvent | StrippedState): void {
    if (event.state_key === undefined) return;
    this.state.set(`${event.type}\u0000${event.state_key}`, event);
  }

  has(eventId: string): boolean {
    return this.ids.has(eventId);
  }

  event(eventId: string): MatrixEvent | undefined {
    return this.timeline.find((e) => e.event_id === eventId);
  }

  /** Forgets the loaded timeline: after a gap the old stretch no longer joins up. */
  resetTimeline(prevBatch: string | null): void {
    this.timeline = [];
    this.ids.clear();
    this.prevBatch = prevBatch;
    this.paginated = false;
  }

  /** Adds newer events at the end (live), or older ones at the start (back-pagination). */
  addEvents(events: MatrixEvent[], where: "end" | "start"): void {
    const shown: MatrixEvent[] = [];
    for (const event of events) {
      if (!event.event_id || this.ids.has(event.event_id)) continue;
      this.ids.add(event.event_id);
      if (where === "end" && event.state_key !== undefined) {
        // Servers may leave out unsigned.prev_content; live, we know what it replaced.
        const previous = this.stateEvent(event.type, event.state_key);
        if (previous && !event.unsigned?.prev_content) {
          event.unsigned = { ...event.unsigned, prev_content: previous.content };
        }
        this.setState(event);
      }
      if (where === "end") this.lastActivity = Math.max(this.lastActivity, event.origin_server_ts);
      const bundled = event.unsigned?.["m.relations"]?.["m.replace"];
      if (bundled) this.noteEdit(event.event_id, bundled);
      if (this.absorb(event)) continue;
      shown.push(event);
    }
    if (where === "start") this.paginated = true;
    this.timeline = where === "end" ? [...this.timeline, ...shown] : [...shown, ...this.timeline];
    if (where === "start" && this.lastActivity === 0) {
      this.lastActivity = this.timeline.at(-1)?.origin_server_ts ?? 0;
    }
    this.version++;
  }

  /**
   * An event that could not be decrypted when it came, now decrypted: it takes its
   * place, or, if it turns out to be an edit or a reaction, applies to its target.
   */
  replaceDecrypted(event: MatrixEvent): void {
    const index = this.timeline.findIndex((e) => e.event_id === event.event_id);
    if (index < 0) return;
    const absorbed = this.absorb(event);
    this.timeline = absorbed
      ? this.timeline.filter((_, i) => i !== index)
      : this.timeline.map((e, i) => (i === index ? event : e));
    this.version++;
  }

  /** Whether messages here are end-to-end encrypted; once on, it cannot be turned off. */
  isEncrypted(): boolean {
    return this.stateEvent("m.room.encryption") !== undefined;
  }

  /** Reactions, edits and redactions change other events instead of showing themselves. */
  private absorb(event: MatrixEvent): boolean {
    if (event.type === "m.room.redaction") {
      const target = redactedId(event);
      if (target) this.applyRedaction(target, event);
      return true;
    }
    // One not decrypted (yet) shows as such, even if its clear relation says it is an edit.
    if (event.type === "m.room.encrypted") return false;
    if (event.unsigned?.redacted_because) {
      // A redacted reaction or edit no longer means anything.
      return event.type === "m.reaction" || relation(event)?.relType === "m.replace";
    }
    const rel = relation(event);
    if (event.type === "m.reaction" && rel?.relType === "m.annotation" && rel.key !== undefined) {
      const byKey = this.reactions.get(rel.eventId) ?? new Map<string, Map<string, string>>();
      const senders = byKey.get(rel.key) ?? new Map<string, string>();
      senders.set(event.sender, event.event_id);
      byKey.set(rel.key, senders);
      this.reactions.set(rel.eventId, byKey);
      this.reactionTargets.set(event.event_id, { target: rel.eventId, key: rel.key, sender: event.sender });
      return true;
    }
    if (event.type === "m.reaction") return true;
    if (rel?.relType === "m.replace") {
      this.noteEdit(rel.eventId, event);
      return true;
    }
    return false;
  }

  /**
   * Keeps each editor's latest edit. Which one counts is decided when shown, by the
   * original's sender, since an edit can arrive before the event it edits.
   */
  private noteEdit(targetId: string, edit: MatrixEvent): void {
    const byEditor = this.edits.get(targetId) ?? new Map<string, MatrixEvent>();
    const current = byEditor.get(edit.sender);
    if (!current || current.origin_server_ts <= edit.origin_server_ts) byEditor.set(edit.sender, edit);
    this.edits.set(targetId, byEditor);
  }

  private applyRedaction(targetId: string, redaction: MatrixEvent): void {
    const reaction = this.reactionTargets.get(targetId);
    if (reaction) {
      const senders = this.reactions.get(reaction.target)?.get(reaction.key);
      if (senders?.get(reaction.sender) === targetId) senders.delete(reaction.sender);
      if (senders?.size === 0) this.reactions.get(reaction.target)?.delete(reaction.key);
      this.reactionTargets.delete(targetId);
    }
    this.edits.delete(targetId);
    for (const byEditor of this.edits.values()) {
      for (const [editor, edit] of byEditor) if (edit.event_id === targetId) byEditor.delete(editor);
    }
    this.timeline = this.timeline.map((event) =>
      event.event_id === targetId
        ? { ...event, content: {}, unsigned: { ...event.unsigned, redacted_because: redaction } }
        : event,
    );
  }

  /** What an event says now: the latest edit's new content, or its own. */
  displayContent(event: MatrixEvent): { content: JsonObject; edited: boolean } {
    // Anyone else's "edit" is ignored, as the spec says.
    const edit = this.edits.get(event.event_id)?.get(event.sender);
    const newContent = edit?.content["m.new_content"];
    if (edit && isObject(newContent) && !event.unsigned?.redacted_because) return { content: newContent, edited: true };
    return { content: event.content, edited: false };
  }

  applyReceipts(content: JsonObject): void {
    for (const [eventId, byType] of Object.entries(content)) {
      if (!isObject(byType)) continue;
      const read = byType["m.read"];
      if (!isObject(read)) continue;
      for (const [userId, info] of Object.entries(read)) {
        const ts = isObject(info) && typeof info.ts === "number" ? info.ts : 0;
        const current = this.receipts.get(userId);
        if (!current || current.ts <= ts) this.receipts.set(userId, { eventId, ts });
      }
    }
    this.version++;
  }

  member(userId: string): JsonObject | undefined {
    return this.stateEvent("m.room.member", userId)?.content;
  }

  membershipOf(userId: string): string | undefined {
    return str(this.member(userId)?.membership);
  }

  displayName(userId: string): string {
    const name = str(this.member(userId)?.displayname);
    return name && name.trim() ? name : localpart(userId);
  }

  /** The member's avatar as an mxc:// URI, as their member event carries it. */
  avatarUrl(userId: string): string | undefined {
    return str(this.member(userId)?.avatar_url);
  }

  /** The room's own picture, else, in a direct chat, the other person's (as Element does). */
  avatar(directPartner: string | undefined): string | undefined {
    const own = str(this.stateEvent("m.room.avatar")?.content.url);
    if (own) return own;
    return directPartner ? this.avatarUrl(directPartner) : undefined;
  }

  members(membership = "join"): string[] {
    const out: string[] = [];
    for (const event of this.state.values()) {
      if (event.type === "m.room.member" && event.state_key && str(event.content.membership) === membership) {
        out.push(event.state_key);
      }
    }
    return out.sort();
  }

  name(me: string): string {
    const name = str(this.stateEvent("m.room.name")?.content.name);
    if (name?.trim()) return name;
    const alias = str(this.stateEvent("m.room.canonical_alias")?.content.alias);
    if (alias) return alias;
    const others = (this.heroes.length ? this.heroes : [...this.members("join"), ...this.members("invite")]).filter((u) => u !== me);
    if (others.length) return others.slice(0, 3).map((u) => this.displayName(u)).join(", ");
    return "Empty room";
  }

  topic(): string {
    return str(this.stateEvent("m.room.topic")?.content.topic) ?? "";
  }

  isPublic(): boolean {
    return str(this.stateEvent("m.room.join_rules")?.content.join_rule) === "public";
  }
}

export function localpart(userId: string): string {
  return userId.startsWith("@") ? userId.slice(1).split(":")[0] ?? userId : userId;
}

/** Room version 12 makes the creators outrank every power level. */
export function creatorsOf(room: Room): string[] {
  const create = room.stateEvent("m.room.create");
  if (!create || str(create.content.room_version) !== "12") return [];
  const extra = Array.isArray(create.content.additional_creators)
    ? create.content.additional_creators.filter((u): u is string => typeof u === "string")
    : [];
  return [create.sender, ...extra];
}
