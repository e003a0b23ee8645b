//! Email addresses (`/account/3pid*`), the password reset mail, and the Hearth pages a
//! mailed link opens: address validation and digest unsubscription.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::account::password_requirement;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Query};
use crate::error::{Error, Result};
use crate::service::email::digest::UNSUBSCRIBE_PATH;
use crate::service::email::threepid::{TokenRequest, VALIDATE_PATH};
use crate::service::email::{escape, html_page};
use crate::service::identity::bind::unbind_result;
use crate::store::ThreepidPurpose;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/account/3pid", get(list))
        .route("/_matrix/client/v3/account/3pid/add", post(add))
        .route("/_matrix/client/v3/account/3pid/delete", post(delete))
        .route("/_matrix/client/v3/account/3pid/bind", post(bind))
        .route("/_matrix/client/v3/account/3pid/unbind", post(unbind))
        // The names SyTest (and older clients) use, which Synapse still serves.
        .route("/_matrix/client/unstable/account/3pid/bind", post(bind))
        .route("/_matrix/client/unstable/account/3pid/unbind", post(unbind))
        .route(
            "/_matrix/client/v3/account/3pid/email/requestToken",
            post(request_add_token),
        )
        .route(
            "/_matrix/client/v3/account/password/email/requestToken",
            post(request_reset_token),
        )
        .route(VALIDATE_PATH, get(validate_form).post(validate))
        .route(UNSUBSCRIBE_PATH, get(unsubscribe_form).post(unsubscribe))
}

#[derive(Deserialize)]
struct RequestTokenBody {
    client_secret: String,
    email: String,
    send_attempt: u64,
    next_link: Option<String>,
    // `id_server` and `id_access_token` are for identity servers, which Hearth does
    // not use: the homeserver sends the mail itself.
}

async fn request_token(
    state: &AppState,
    purpose: ThreepidPurpose,
    body: RequestTokenBody,
) -> Result<Json<Value>> {
    let sid = state
        .request_email_token(
            purpose,
            TokenRequest {
                client_secret: body.client_secret,
                email: body.email,
                send_attempt: body.send_attempt,
                next_link: body.next_link,
            },
        )
        .await?;
    Ok(Json(json!({ "sid": sid })))
}

async fn request_add_token(
    State(state): State<AppState>,
    MatrixJson(body): MatrixJson<RequestTokenBody>,
) -> Result<Json<Value>> {
    request_token(&state, ThreepidPurpose::Add, body).await
}

async fn request_reset_token(
    State(state): State<AppState>,
    MatrixJson(body): MatrixJson<RequestTokenBody>,
) -> Result<Json<Value>> {
    request_token(&state, ThreepidPurpose::PasswordReset, body).await
}

async fn list(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    Ok(Json(state.list_threepids(&authed.user_id)?))
}

#[derive(Deserialize)]
struct AddBody {
    sid: String,
    client_secret: String,
    auth: Option<Map<String, Value>>,
}

async fn add(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<AddBody>,
) -> Result<Json<Value>> {
    state
        .authenticate(
            password_requirement("add_threepid", &authed.user_id).for_target(body.sid.clone()),
            body.auth.as_ref(),
        )
        .await?;
    state.add_threepid(&authed.user_id, &body.sid, &body.client_secret)?;
    Ok(Json(json!({})))
}

/// `/account/3pid/delete` and `/account/3pid/unbind`: the 3PID, and optionally the
/// identity server to unbind it at (else wherever this server bound it).
#[derive(Deserialize)]
struct DeleteBody {
    medium: String,
    address: String,
    id_server: Option<String>,
}

/// Unbinds the address at identity servers, then removes it from the account.
async fn delete(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<DeleteBody>,
) -> Result<Json<Value>> {
    let unbound = state
        .unbind_threepid(
            &authed.user_id,
            &body.medium,
            &body.address,
            body.id_server.as_deref(),
        )
        .await?;
    state.delete_threepid(&authed.user_id, &body.medium, &body.address)?;
    Ok(Json(
        json!({ "id_server_unbind_result": unbind_result(unbound) }),
    ))
}

#[derive(Deserialize)]
struct BindBody {
    id_server: String,
    id_access_token: String,
    sid: String,
    client_secret: String,
}

async fn bind(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<BindBody>,
) -> Result<Json<Value>> {
    state
        .bind_threepid(
            &authed.user_id,
            &body.id_server,
            &body.id_access_token,
            &body.sid,
            &body.client_secret,
        )
        .await?;
    Ok(Json(json!({})))
}

async fn unbind(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<DeleteBody>,
) -> Result<Json<Value>> {
    let unbound = state
        .unbind_threepid(
            &authed.user_id,
            &body.medium,
            &body.address,
            body.id_server.as_deref(),
        )
        .await?;
    Ok(Json(
        json!({ "id_server_unbind_result": unbind_result(unbound) }),
    ))
}

#[derive(Deserialize)]
struct LinkParams {
    sid: String,
    client_secret: String,
    token: String,
}

/// An HTML page; `no-store`, and not to be framed.
fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let mut response = (status, Html(html_page(title, body_html))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

fn form_params<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| Error::invalid_param(format!("Invalid form: {e}")))
}

/// The mailed link shows a button: a link scanner fetching the page validates nothing.
async fn validate_form(
    State(state): State<AppState>,
    Query(params): Query<LinkParams>,
) -> Result<Response> {
    state.email_link_session(&params.sid, &params.client_secret, &params.token)?;
    let body = format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"sid\" value=\"{}\"><input type=\"hidden\" name=\"client_secret\" value=\"{}\"><input type=\"hidden\" name=\"token\" value=\"{}\"><p><button type=\"submit\">Confirm this email address</button></p></form>",
        escape(VALIDATE_PATH),
        escape(&params.sid),
        escape(&params.client_secret),
        escape(&params.token),
    );
    Ok(page(StatusCode::OK, "Confirm your email address", &body))
}

async fn validate(State(state): State<AppState>, body: Bytes) -> Result<Response> {
    let params: LinkParams = form_params(&body)?;
    let next_link = state.validate_email_link(&params.sid, &params.client_secret, &params.token)?;
    if let Some(link) = next_link
        && let Ok(value) = HeaderValue::from_str(&link)
    {
        return Ok((StatusCode::FOUND, [(header::LOCATION, value)]).into_response());
    }
    Ok(page(
        StatusCode::OK,
        "Email address confirmed",
        "<p>You can go back to your Matrix client and continue there.</p>",
    ))
}

#[derive(Deserialize)]
struct UnsubscribeParams {
    user: String,
    address: String,
    sig: String,
}

async fn unsubscribe_form(
    State(state): State<AppState>,
    Query(params): Query<UnsubscribeParams>,
) -> Result<Response> {
    state.check_unsubscribe(&params.user, &params.address, &params.sig)?;
    let body = format!(
        "<p>Stop sending digests of missed messages to {}?</p><form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"user\" value=\"{}\"><input type=\"hidden\" name=\"address\" value=\"{}\"><input type=\"hidden\" name=\"sig\" value=\"{}\"><p><button type=\"submit\">Unsubscribe</button></p></form>",
        escape(&params.address),
        escape(UNSUBSCRIBE_PATH),
        escape(&params.user),
        escape(&params.address),
        escape(&params.sig),
    );
    Ok(page(StatusCode::OK, "Unsubscribe", &body))
}

/// Also the target of the mails' `List-Unsubscribe-Post` one-click header (RFC 8058).
async fn unsubscribe(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response> {
    let params: UnsubscribeParams = match uri.query() {
        Some(query) if !query.is_empty() => serde_urlencoded::from_str(query)
            .map_err(|e| Error::invalid_param(format!("Invalid query parameters: {e}")))?,
        _ => form_params(&body)?,
    };
    state.unsubscribe_email(&params.user, &params.address, &params.sig)?;
    Ok(page(
        StatusCode::OK,
        "Unsubscribed",
        "<p>You will get no more digests of missed messages at this address.</p>",
    ))
}
