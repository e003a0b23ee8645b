//! `PUT /_matrix/federation/v1/send/{txnId}`: a transaction body from another server.

use hearth::api::extract::parse_json_body;
use hearth::event::{RoomVersion, event_id};
use hearth::service::federation::transactions::{MAX_TXN_EDUS, MAX_TXN_PDUS, Transaction};
use hearth::service::rooms::{check_signatures, parse_pdu};
use ruma::RoomId;
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
