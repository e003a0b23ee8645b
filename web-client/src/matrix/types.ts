// The slices of the Matrix client API this client reads. Everything coming from the
// network is checked where it is used: these types describe, they do not promise.

import type { E2eeMark } from "../crypto/events";

export type JsonObject = { [key: string]: unknown };

export interface MatrixEvent {
  event_id: string;
  type: string;
  sender: string;
  origin_server_ts: number;
  content: JsonObject;
  state_key?: string;
  redacts?: string;
  /** Local only: whether this client decrypted it, or why it could not. */
  e2ee?: E2eeMark;
  unsigned?: {
    transaction_id?: string;
    redacted_because?: MatrixEvent;
    "m.relations"?: {
      "m.replace"?: MatrixEvent;
    };
    prev_content?: JsonObject;
  };
}

export interface StrippedState {
  type: string;
  state_key: string;
  sender: string;
  content: JsonObject;
}

export interface Timeline {
  events?: MatrixEvent[];
  limited?: boolean;
  prev_batch?: string;
}

export interface JoinedRoomUpdate {
  state?: { events?: MatrixEvent[] };
  timeline?: Timeline;
  ephemeral?: { events?: { type: string; content: JsonObject }[] };
  account_data?: { events?: { type: string; content: JsonObject }[] };
  unread_notifications?: { notification_count?: number; highlight_count?: number };
  summary?: {
    "m.heroes"?: string[];
    "m.joined_member_count"?: number;
    "m.invited_member_count"?: number;
  };
}

export interface InvitedRoomUpdate {
  invite_state?: { events?: StrippedState[] };
}

export interface LeftRoomUpdate {
  timeline?: Timeline;
  state?: { events?: MatrixEvent[] };
}

export interface SyncResponse {
  next_batch: string;
  rooms?: {
    join?: Record<string, JoinedRoomUpdate>;
    invite?: Record<string, InvitedRoomUpdate>;
    leave?: Record<string, LeftRoomUpdate>;
    knock?: Record<string, unknown>;
  };
  presence?: { events?: { type: string; sender: string; content: JsonObject }[] };
  account_data?: { events?: { type: string; content: JsonObject }[] };
}

export interface MessagesResponse {
  chunk: MatrixEvent[];
  start: string;
  end?: string;
  state?: MatrixEvent[];
}

export interface PublicRoom {
  room_id: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule?: string;
}

export interface PublicRoomsResponse {
  chunk: PublicRoom[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate?: number;
}

export interface LoginResponse {
  user_id: string;
  access_token: string;
  device_id: string;
}

export interface Device {
  device_id: string;
  display_name?: string;
  last_seen_ip?: string;
  last_seen_ts?: number;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}
