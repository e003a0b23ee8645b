//! Server notices at Synapse's paths: `POST /_synapse/admin/v1/send_server_notice` and
//! its idempotent `PUT .../send_server_notice/{txnId}` form.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{post, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path};
use crate::error::Result;
use crate::service::admin::{ServerNotice, parse_user_id};

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::POST,
            "/_synapse/admin/v1/send_server_notice",
            post(send),
        ),
        (
            Method::PUT,
            "/_synapse/admin/v1/send_server_notice/{txn_id}",
            put(send_with_txn),
        ),
    ]
}

#[derive(Deserialize)]
struct NoticeBody {
    user_id: String,
    content: Map<String, Value>,
    #[serde(rename = "type", default = "message_type")]
    event_type: String,
    state_key: Option<String>,
}

fn message_type() -> String {
    "m.room.message".into()
}

async fn send(
    State(state): State<AppState>,
    admin: Admin,
    MatrixJson(body): MatrixJson<NoticeBody>,
) -> Result<Json<Value>> {
    send_notice(state, admin, body, None).await
}

async fn send_with_txn(
    State(state): State<AppState>,
    admin: Admin,
    Path(txn_id): Path<String>,
    MatrixJson(body): MatrixJson<NoticeBody>,
) -> Result<Json<Value>> {
    send_notice(state, admin, body, Some(txn_id)).await
}

async fn send_notice(
    state: AppState,
    Admin(admin): Admin,
    body: NoticeBody,
    txn_id: Option<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&body.user_id, &state)?;
    let event_id = state
        .admin_send_server_notice(
            &admin.user_id,
            &user_id,
            ServerNotice {
                event_type: body.event_type,
                state_key: body.state_key,
                content: Value::Object(body.content),
                txn_id,
            },
        )
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}
