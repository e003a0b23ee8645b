//! Accounts, at Synapse's paths: list, show, create or modify, devices, joined rooms,
//! the admin role, password reset, deactivation and whois; and Hearth's log-out-everywhere.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Entry, next_token};
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path, Query};
use crate::error::Result;
use crate::service::admin::{AdminUser, UserChanges, UserListQuery, parse_user_id};

pub(super) fn table() -> Vec<Entry> {
    vec![
        (Method::GET, "/_synapse/admin/v2/users", get(list)),
        (Method::GET, "/_synapse/admin/v2/users/{user_id}", get(show)),
        (
            Method::PUT,
            "/_synapse/admin/v2/users/{user_id}",
            axum::routing::put(put_user),
        ),
        (
            Method::GET,
            "/_synapse/admin/v2/users/{user_id}/devices",
            get(devices),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/users/{user_id}/joined_rooms",
            get(joined_rooms),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/users/{user_id}/admin",
            get(get_admin_role),
        ),
        (
            Method::PUT,
            "/_synapse/admin/v1/users/{user_id}/admin",
            axum::routing::put(put_admin_role),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/reset_password/{user_id}",
            post(reset_password),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/deactivate/{user_id}",
            post(deactivate),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/users/{user_id}/shadow_ban",
            post(shadow_ban),
        ),
        (
            Method::DELETE,
            "/_synapse/admin/v1/users/{user_id}/shadow_ban",
            axum::routing::delete(lift_shadow_ban),
        ),
        (
            Method::POST,
            "/_hearth/admin/v1/users/{user_id}/logout",
            post(logout_everywhere),
        ),
    ]
}

/// Synapse's user JSON.
pub(super) fn user_json(user: &AdminUser) -> Value {
    json!({
        "name": user.user_id,
        "displayname": user.displayname,
        "avatar_url": user.avatar_url,
        "threepids": user
            .threepids
            .iter()
            .map(|(address, record)| json!({
                "medium": "email",
                "address": address,
                "added_at": record.added_at,
                "validated_at": record.validated_at,
            }))
            .collect::<Vec<_>>(),
        "external_ids": [],
        "is_guest": user.record.guest,
        "admin": user.record.admin,
        "deactivated": user.record.deactivated,
        "erased": user.record.erased,
        "shadow_banned": user.record.shadow_banned,
        "locked": user.record.locked,
        "suspended": user.record.suspended,
        "approved": true,
        "creation_ts": user.record.created_ts,
        "last_seen_ts": user.last_seen_ts,
        "user_type": null,
        "appservice_id": null,
        "consent_server_notice_sent": null,
        "consent_version": null,
        "consent_ts": null,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    name: Option<String>,
    user_id: Option<String>,
    /// `false` leaves guest accounts out.
    guests: Option<bool>,
    #[serde(default)]
    deactivated: bool,
    #[serde(default)]
    locked: bool,
    admins: Option<bool>,
}

pub(super) fn parse_from(from: Option<&str>) -> Result<usize> {
    match from {
        None | Some("") => Ok(0),
        Some(text) => text
            .parse()
            .map_err(|_| crate::error::Error::invalid_param("from must be a non-negative integer")),
    }
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_from(query.from.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    let (users, total) = state.admin_list_users(&UserListQuery {
        name: query.name,
        user_id: query.user_id,
        deactivated: query.deactivated,
        locked: query.locked,
        admins: query.admins,
        guests: query.guests.unwrap_or(true),
        from,
        limit,
    })?;
    let mut body = json!({
        "users": users.iter().map(user_json).collect::<Vec<_>>(),
        "total": total,
    });
    if let Some(next) = next_token(from, users.len(), total) {
        body["next_token"] = json!(next);
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let user = state.admin_show_user(&user_id)?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
struct PutUserBody {
    password: Option<String>,
    #[serde(default = "yes")]
    logout_devices: bool,
    displayname: Option<String>,
    avatar_url: Option<String>,
    admin: Option<bool>,
    deactivated: Option<bool>,
    locked: Option<bool>,
}

fn yes() -> bool {
    true
}

async fn put_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<PutUserBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let user_id = parse_user_id(&user_id, &state)?;
    let created = state
        .admin_put_user(
            &admin.user_id,
            &user_id,
            UserChanges {
                password: body.password,
                logout_devices: body.logout_devices,
                displayname: body.displayname,
                avatar_url: body.avatar_url,
                admin: body.admin,
                deactivated: body.deactivated,
                locked: body.locked,
            },
        )
        .await?;
    let user = state.admin_show_user(&user_id)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(user_json(&user))))
}

async fn devices(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let devices = state.admin_user_devices(&user_id)?;
    let list: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({
                "device_id": d.device_id,
                "display_name": d.display_name,
                "last_seen_ip": d.last_seen_ip,
                "last_seen_ts": d.last_seen_ts,
                "last_seen_user_agent": d.last_seen_user_agent,
                "user_id": user_id,
            })
        })
        .collect();
    Ok(Json(json!({ "total": list.len(), "devices": list })))
}

async fn joined_rooms(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state.admin_show_user(&user_id)?;
    let rooms = state.admin_joined_rooms(&user_id)?;
    Ok(Json(json!({ "total": rooms.len(), "joined_rooms": rooms })))
}

async fn get_admin_role(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let user = state.admin_show_user(&user_id)?;
    Ok(Json(json!({ "admin": user.record.admin })))
}

#[derive(Deserialize)]
struct AdminRoleBody {
    admin: bool,
}

async fn put_admin_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<AdminRoleBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state
        .admin_set_role(&admin.user_id, &user_id, body.admin)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ResetPasswordBody {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

async fn reset_password(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<ResetPasswordBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state
        .admin_reset_password(
            &admin.user_id,
            &user_id,
            body.new_password,
            body.logout_devices,
        )
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeactivateBody {
    #[serde(default)]
    erase: bool,
}

async fn deactivate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<DeactivateBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state
        .admin_deactivate(&admin.user_id, &user_id, body.erase)
        .await?;
    // Synapse's answer; Hearth has no identity-server bindings to undo.
    Ok(Json(json!({ "id_server_unbind_result": "success" })))
}

async fn logout_everywhere(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state.admin_show_user(&user_id)?;
    let devices = state.sessions.devices(&user_id)?.len();
    state.remove_all_devices(&user_id, None).await?;
    state.audit(
        &admin.user_id,
        "user.logout",
        &user_id,
        Some(format!("{devices} devices")),
    )?;
    Ok(Json(json!({ "devices_logged_out": devices })))
}

async fn shadow_ban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state
        .admin_set_shadow_banned(&admin.user_id, &user_id, true)
        .await?;
    Ok(Json(json!({})))
}

async fn lift_shadow_ban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state
        .admin_set_shadow_banned(&admin.user_id, &user_id, false)
        .await?;
    Ok(Json(json!({})))
}
