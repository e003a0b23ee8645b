//! `PUT /_matrix/federation/v1/send/{txnId}`: a transaction body from another server.

use hearth::api::extract::parse_json_body;
use hearth::event::{RoomVersion, event_id};
use hearth::service::federation::edus;
use hearth::service::federation::transactions::{MAX_TXN_EDUS, MAX_TXN_PDUS, Transaction};
use hearth::service::rooms::{check_signatures, parse_pdu};
use ruma::{RoomId, ServerName};
use serde_json::Value;

use super::public_keys;

/// The body parsed as the endpoint's extractor does, then each PDU as the transaction
/// handler reads it (its room, its event ID for the room's version) and through the receive
/// path's format and signature checks; the room's version is taken from the PDU's
/// position, as the room is unknown here.
pub fn federation_txn(data: &[u8]) -> bool {
    let Ok(txn) = parse_json_body::<Transaction>(data) else {
        return false;
    };
    if txn.pdus.len() > MAX_TXN_PDUS || txn.edus.len() > MAX_TXN_EDUS {
        return true;
    }
    for (i, mut pdu) in txn.pdus.into_iter().enumerate() {
        let version = RoomVersion::ALL[i % RoomVersion::ALL.len()];
        let Some(_room_id) = pdu
            .get("room_id")
            .and_then(Value::as_str)
            .and_then(|r| RoomId::parse(r).ok())
        else {
            continue;
        };
        if event_id(&pdu, version).is_err() {
            continue;
        }
        if let Ok(parsed) = parse_pdu(&mut pdu, version) {
            let _ = check_signatures(parsed, pdu, public_keys(), version);
        }
    }
    true
}

/// One EDU of a transaction (`{"edu_type", "content"}`) from `hs1.test` to `hs2.test`,
/// read as the services read it (`service::federation::edus`): by its type, or, for a
/// type the server does not handle, by every reader (a mutated type should not keep a
/// mutated content from them). What a reader lets through must concern the origin's
/// users (and, for to-device messages, only this server's), and a presence within
/// its limits.
pub fn federation_edu(data: &[u8]) -> bool {
    let Ok(edu) = parse_json_body::<hearth::service::federation::transactions::Edu>(data) else {
        return false;
    };
    let (origin, local) = (
        ServerName::parse("hs1.test").expect("a server name"),
        ServerName::parse("hs2.test").expect("a server name"),
    );
    let (origin, local): (&ServerName, &ServerName) = (&origin, &local);
    let content = &edu.content;
    let all = !matches!(
        edu.edu_type.as_str(),
        "m.typing"
            | "m.receipt"
            | "m.presence"
            | "m.direct_to_device"
            | "m.device_list_update"
            | "m.signing_key_update"
    );
    let is = |t: &str| all || edu.edu_type == t;
    if is("m.typing")
        && let Ok(t) = edus::typing(origin, content)
    {
        assert_eq!(t.user_id.server_name(), origin);
    }
    if is("m.receipt")
        && let Ok(receipts) = edus::receipts(origin, content)
    {
        assert!(receipts.iter().all(|r| r.user_id.server_name() == origin));
    }
    if is("m.presence")
        && let Ok(updates) = edus::presence(origin, content)
    {
        for update in updates {
            assert_eq!(update.user_id.server_name(), origin);
            assert!(
                update
                    .status_msg
                    .is_none_or(|m| m.len() <= hearth::service::presence::MAX_STATUS_MSG)
            );
        }
    }
    if is("m.direct_to_device")
        && let Ok(edu) = edus::direct_to_device(origin, local, content)
    {
        assert_eq!(edu.sender.server_name(), origin);
        assert!(edu.messages.keys().all(|u| u.server_name() == local));
    }
    if is("m.device_list_update")
        && let Ok(update) = edus::device_list_update(origin, content)
    {
        assert_eq!(update.user_id.server_name(), origin);
    }
    if is("m.signing_key_update")
        && let Ok(update) = edus::signing_key_update(origin, content)
    {
        assert_eq!(update.user_id.server_name(), origin);
    }
    true
}
