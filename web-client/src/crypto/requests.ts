// What the crypto machine asks the server for, as HTTP requests. Pure: the machine's
// outgoing requests are described by plain fields here, so this is tested without it.

const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;

/** The machine's request kinds (the wasm's `RequestType` numbering). */
export const RequestKind = {
  KeysUpload: 0,
  KeysQuery: 1,
  KeysClaim: 2,
  ToDevice: 3,
  SignatureUpload: 4,
  RoomMessage: 5,
  KeysBackup: 6,
} as const;

/** The fields an outgoing request carries; which ones depends on its kind. */
export interface OutgoingShape {
  type: number;
  body: string;
  event_type?: string;
  txn_id?: string;
  room_id?: string;
  version?: string;
}

export interface HttpCall {
  method: "POST" | "PUT";
  path: string;
  body: unknown;
}

/** The client-server call for one outgoing request; null for kinds this client does not send. */
export function httpFor(request: OutgoingShape): HttpCall | null {
  const body: unknown = JSON.parse(request.body);
  switch (request.type) {
    case RequestKind.KeysUpload:
      return { method: "POST", path: `${V3}/keys/upload`, body };
    case RequestKind.KeysQuery:
      return { method: "POST", path: `${V3}/keys/query`, body };
    case RequestKind.KeysClaim:
      return { method: "POST", path: `${V3}/keys/claim`, body };
    case RequestKind.SignatureUpload:
      return { method: "POST", path: `${V3}/keys/signatures/upload`, body };
    case RequestKind.ToDevice:
      if (!request.event_type || !request.txn_id) return null;
      return { method: "PUT", path: `${V3}/sendToDevice/${enc(request.event_type)}/${enc(request.txn_id)}`, body };
    case RequestKind.RoomMessage:
      if (!request.room_id || !request.event_type || !request.txn_id) return null;
      return {
        method: "PUT",
        path: `${V3}/rooms/${enc(request.room_id)}/send/${enc(request.event_type)}/${enc(request.txn_id)}`,
        body,
      };
    case RequestKind.KeysBackup:
      if (!request.version) return null;
      return { method: "PUT", path: `${V3}/room_keys/keys?${new URLSearchParams({ version: request.version })}`, body };
    default:
      return null;
  }
}
