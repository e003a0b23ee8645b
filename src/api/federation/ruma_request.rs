//! Federation requests parsed with ruma's request type for their endpoint, so that the
//! path, query and body of another server's request are checked field by field.

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use ruma::api::IncomingRequest;
use ruma::api::IncomingRequestExt;
use ruma::api::error::{DeserializationError, FromHttpRequestError};

use crate::api::AppState;
use crate::error::{Error, ErrorKind};

/// A request of type `T`; bad input is a Matrix error (400), never a panic.
pub struct RumaRequest<T>(pub T);

impl<T: IncomingRequest> FromRequest<AppState> for RumaRequest<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let (mut parts, body) = req.into_parts();
        let args: Vec<String> = match RawPathParams::from_request_parts(&mut parts, state).await {
            Ok(params) => params.iter().map(|(_, value)| value.to_owned()).collect(),
            Err(RawPathParamsRejection::MissingPathParams(_)) => Vec::new(),
            Err(e) => return Err(Error::invalid_param(format!("Invalid path: {e}"))),
        };
        let limit = state.config.max_request_bytes;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            Error::new(
                ErrorKind::TooLarge,
                format!("Request body is larger than {limit} bytes"),
            )
        })?;
        let request = axum::http::Request::from_parts(parts, &bytes[..]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        T::try_from_http_request(request, &args)
            .map(RumaRequest)
            .map_err(parse_error)
    }
}

fn parse_error(err: FromHttpRequestError) -> Error {
    match err {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => {
            if e.is_syntax() || e.is_eof() {
                Error::new(ErrorKind::NotJson, format!("Body is not JSON: {e}"))
            } else {
                Error::bad_json(format!("Invalid request body: {e}"))
            }
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            let message = format!("Invalid query parameters: {e}");
            if message.contains("missing field") {
                Error::missing_param(message)
            } else {
                Error::invalid_param(message)
            }
        }
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
            Error::invalid_param(format!("Invalid identifier: {e}"))
        }
        other => Error::invalid_param(format!("Invalid request: {other}")),
    }
}
