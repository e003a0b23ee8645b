// The parts of a /sync response the crypto machine needs, read defensively: anything
// of the wrong shape is left out rather than trusted. Pure, so tested without the wasm.

import type { JsonObject, SyncResponse } from "../matrix/types";
import { isObject } from "../matrix/types";

export interface CryptoSyncParts {
  toDevice: JsonObject[];
  changed: string[];
  left: string[];
  oneTimeKeyCounts: Map<string, number>;
  /** Null when the server did not say (the machine then leaves its fallback key alone). */
  unusedFallbackKeys: Set<string> | null;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

export function cryptoParts(sync: SyncResponse): CryptoSyncParts {
  const raw = sync as unknown as JsonObject;
  const toDeviceEvents = isObject(raw.to_device) ? raw.to_device.events : undefined;
  const toDevice = Array.isArray(toDeviceEvents) ? toDeviceEvents.filter(isObject) : [];
  const lists = isObject(raw.device_lists) ? raw.device_lists : {};
  const counts = new Map<string, number>();
  const rawCounts = raw.device_one_time_keys_count;
  if (isObject(rawCounts)) {
    for (const [algorithm, count] of Object.entries(rawCounts)) {
      if (typeof count === "number" && Number.isInteger(count) && count >= 0) counts.set(algorithm, count);
    }
  }
  // The stable name, else the one servers used before it was stable.
  const fallback = raw.device_unused_fallback_key_types ?? raw["org.matrix.msc2732.device_unused_fallback_key_types"];
  return {
    toDevice,
    changed: strings(lists.changed),
    left: strings(lists.left),
    oneTimeKeyCounts: counts,
    unusedFallbackKeys: Array.isArray(fallback) ? new Set(strings(fallback)) : null,
  };
}
