// The recovery key format Element shows and accepts (spec: "Key representation" under
// secret storage): 0x8B 0x01, the 32 key bytes, a parity byte (the XOR of all before
// it), in Bitcoin's base58, in groups of four. Pure: an encoding, no cryptography.

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const PREFIX = [0x8b, 0x01];
const KEY_LENGTH = 32;

function base58Encode(bytes: Uint8Array): string {
  let value = 0n;
  for (const byte of bytes) value = value * 256n + BigInt(byte);
  let out = "";
  while (value > 0n) {
    out = ALPHABET[Number(value % 58n)] + out;
    value /= 58n;
  }
  for (const byte of bytes) {
    if (byte !== 0) break;
    out = `1${out}`;
  }
  return out;
}

function base58Decode(text: string): Uint8Array {
  let value = 0n;
  for (const char of text) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) throw new Error(`"${char}" is not in a recovery key`);
    value = value * 58n + BigInt(digit);
  }
  const bytes: number[] = [];
  while (value > 0n) {
    bytes.unshift(Number(value % 256n));
    value /= 256n;
  }
  for (const char of text) {
    if (char !== "1") break;
    bytes.unshift(0);
  }
  return Uint8Array.from(bytes);
}

/** The key as people write it down. */
export function encodeRecoveryKey(key: Uint8Array): string {
  if (key.length !== KEY_LENGTH) throw new Error("a recovery key holds 32 bytes");
  const bytes = [...PREFIX, ...key];
  bytes.push(bytes.reduce((parity, byte) => parity ^ byte, 0));
  return base58Encode(Uint8Array.from(bytes)).match(/.{1,4}/g)?.join(" ") ?? "";
}

/** The key's 32 bytes; throws with a reason a person can act on when it is mistyped. */
export function decodeRecoveryKey(text: string): Uint8Array {
  const bytes = base58Decode(text.replace(/\s+/g, ""));
  if (bytes.length !== PREFIX.length + KEY_LENGTH + 1 || bytes[0] !== PREFIX[0] || bytes[1] !== PREFIX[1]) {
    throw new Error("That is not a recovery key.");
  }
  if (bytes.reduce((parity, byte) => parity ^ byte, 0) !== 0) throw new Error("The recovery key has a typo in it.");
  return bytes.slice(PREFIX.length, PREFIX.length + KEY_LENGTH);
}

export function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/=+$/, "");
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}
