//! GIF search through Giphy, with the server as the only party Giphy ever talks to: the
//! API key stays here, searches reach Giphy without the searcher's address, and a picked
//! GIF is copied into the media repository so readers load it from this server.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ruma::UserId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{GifsConfig, IpRange};
use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::federation::guard::{IpGuard, guarded_client};
use crate::service::media::thumbnail;
use crate::service::media::{Fetch, UploadMeta};
use crate::store::ImageKind;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Previews are small renditions (about 100 px wide); anything bigger is not one.
pub const MAX_PREVIEW_BYTES: usize = 2 << 20;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 50;
/// Giphy refuses offsets above this.
pub const MAX_OFFSET: u32 = 4999;
const MAX_QUERY_CHARS: usize = 200;
const MAX_ID_LEN: usize = 64;

pub struct Gifs {
    /// For the configured Giphy API: the operator chose that address.
    client: reqwest::Client,
    /// For the file URLs in Giphy's answers, which pass `federation.ip_range_denylist`.
    files: reqwest::Client,
    guard: Arc<IpGuard>,
}

impl Gifs {
    pub fn new(denylist: Vec<IpRange>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        let guard = Arc::new(IpGuard::new(denylist));
        let files = guarded_client(guard.clone())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()?;
        Ok(Self {
            client,
            files,
            guard,
        })
    }

    /// GETs a file URL from Giphy's answer, unless it names a denied address.
    async fn get_file(&self, url: &str) -> Result<reqwest::Response> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| upstream("Giphy named a file by a bad URL"))?;
        if self.guard.denied_literal(&parsed).is_some() {
            return Err(upstream(
                "Giphy named a file at an address this server does not connect to",
            ));
        }
        self.files.get(parsed).send().await.map_err(request_failed)
    }
}

/// Giphy's IDs are alphanumeric; allowing nothing else keeps a client from steering the
/// server's request to Giphy anywhere else.
pub fn valid_gif_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default)]
    data: Vec<Gif>,
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct SingleAnswer {
    data: Gif,
}

#[derive(Deserialize)]
struct Pagination {
    total_count: Option<u64>,
    count: Option<u64>,
    offset: Option<u64>,
}

#[derive(Deserialize)]
struct Gif {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    images: Images,
}

#[derive(Deserialize, Default)]
struct Images {
    fixed_width_small: Option<Rendition>,
    fixed_width: Option<Rendition>,
    fixed_width_small_still: Option<Rendition>,
    fixed_width_still: Option<Rendition>,
    original: Option<Rendition>,
    downsized: Option<Rendition>,
}

/// Giphy sends the numbers as strings ("200"); numbers are taken as well.
#[derive(Deserialize)]
struct Rendition {
    url: Option<String>,
    #[serde(default)]
    width: Option<Value>,
    #[serde(default)]
    height: Option<Value>,
}

fn number(value: &Option<Value>) -> Option<u64> {
    match value.as_ref()? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Rendition {
    /// Only web URLs: an answer naming a `file:` URL or the like is not followed.
    fn url(&self) -> Option<&str> {
        self.url
            .as_deref()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    }
}

impl Images {
    fn preview(&self) -> Option<&Rendition> {
        [
            &self.fixed_width_small,
            &self.fixed_width,
            &self.fixed_width_small_still,
            &self.fixed_width_still,
        ]
        .into_iter()
        .flatten()
        .find(|r| r.url().is_some())
    }

    fn full(&self) -> Option<&Rendition> {
        [&self.original, &self.downsized]
            .into_iter()
            .flatten()
            .find(|r| r.url().is_some())
    }
}

fn upstream(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::BadGateway, message)
}

/// reqwest's messages carry the URL, and Giphy's URLs carry the key: log without it.
fn request_failed(e: reqwest::Error) -> Error {
    let e = e.without_url();
    tracing::warn!(error = %e, "request to Giphy failed");
    if e.is_timeout() {
        upstream("Giphy did not answer in time")
    } else {
        upstream("Could not reach Giphy")
    }
}

fn check_status(status: reqwest::StatusCode) -> Result<()> {
    match status.as_u16() {
        200..=299 => Ok(()),
        404 => Err(Error::not_found("Giphy has no GIF with this ID")),
        401 | 403 => {
            tracing::warn!(%status, "Giphy refused the configured API key");
            Err(upstream("Giphy refused this server's API key"))
        }
        429 => Err(upstream(
            "This server has used up its Giphy allowance for now; try again later",
        )),
        _ => Err(upstream(format!("Giphy answered with HTTP {status}"))),
    }
}

/// What the client is told about a search hit: nothing that leads to Giphy.
fn result_json(gif: &Gif) -> Option<Value> {
    if !valid_gif_id(&gif.id) {
        return None;
    }
    let preview = gif.images.preview()?;
    Some(json!({
        "id": gif.id,
        "title": gif.title,
        "width": number(&preview.width),
        "height": number(&preview.height),
    }))
}

fn next_offset(pagination: Option<&Pagination>, offset: u32, returned: usize) -> Option<u64> {
    let p = pagination?;
    let start = p.offset.unwrap_or(u64::from(offset));
    let count = p.count.unwrap_or(returned as u64);
    let next = start + count;
    let more = count > 0 && p.total_count.is_none_or(|total| next < total);
    (more && next <= u64::from(MAX_OFFSET)).then_some(next)
}

/// A preview image fetched into memory.
pub struct Preview {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Services {
    fn gifs_config(&self) -> Result<(&GifsConfig, &str)> {
        let config = &self.config.gifs;
        match config.giphy_api_key.as_deref() {
            Some(key) => Ok((config, key)),
            None => Err(Error::new(
                ErrorKind::Unrecognized {
                    method_not_allowed: false,
                },
                "GIF search is not configured on this server",
            )),
        }
    }

    async fn giphy_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        let (config, key) = self.gifs_config()?;
        let url = format!("{}{path}", config.giphy_base_url.trim_end_matches('/'));
        let response = self
            .gifs
            .client
            .get(url)
            .query(&[("api_key", key)])
            .query(query)
            .send()
            .await
            .map_err(request_failed)?;
        check_status(response.status())?;
        response.json::<T>().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "Giphy's answer did not parse");
            upstream("Giphy's answer was not in the expected format")
        })
    }

    /// `M_UNRECOGNIZED` without a key, before anything about the request is judged.
    pub fn require_gifs(&self) -> Result<()> {
        self.gifs_config().map(|_| ())
    }

    async fn giphy_gif(&self, id: &str) -> Result<Gif> {
        self.require_gifs()?;
        if !valid_gif_id(id) {
            return Err(Error::invalid_param(
                "GIF IDs consist of letters and digits only",
            ));
        }
        let answer: SingleAnswer = self.giphy_json(&format!("/v1/gifs/{id}"), &[]).await?;
        Ok(answer.data)
    }

    /// `GET /_hearth/client/v1/gifs/search`.
    pub async fn gif_search(&self, q: &str, limit: u32, offset: u32) -> Result<Value> {
        self.gifs_config()?;
        let q = q.trim();
        if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid_param(format!(
                "q must have 1 to {MAX_QUERY_CHARS} characters"
            )));
        }
        let rating = self.config.gifs.rating.clone();
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let answer: SearchAnswer = self
            .giphy_json(
                "/v1/gifs/search",
                &[
                    ("q", q),
                    ("limit", &limit),
                    ("offset", &offset),
                    ("rating", &rating),
                ],
            )
            .await?;
        let results: Vec<Value> = answer.data.iter().filter_map(result_json).collect();
        let offset = offset.parse().unwrap_or(0);
        let next = next_offset(answer.pagination.as_ref(), offset, answer.data.len());
        let mut body = json!({ "results": results });
        if let Some(next) = next {
            body["next_offset"] = json!(next);
        }
        Ok(body)
    }

    /// `GET /_hearth/client/v1/gifs/{id}/preview`: the small rendition, held in memory
    /// (it is capped) so a wrong type or size is refused before anything is sent.
    pub async fn gif_preview(&self, id: &str) -> Result<Preview> {
        let gif = self.giphy_gif(id).await?;
        let url = gif
            .images
            .preview()
            .and_then(Rendition::url)
            .ok_or_else(|| upstream("Giphy offered no preview of this GIF"))?;
        let response = self.gifs.get_file(url).await?;
        check_status(response.status())?;
        let too_big = || upstream("Giphy's preview was larger than a preview can be");
        if response
            .content_length()
            .is_some_and(|n| n > MAX_PREVIEW_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(request_failed)?;
            if bytes.len() + chunk.len() > MAX_PREVIEW_BYTES {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        let kind =
            ImageKind::sniff(&bytes).ok_or_else(|| upstream("Giphy's preview was not an image"))?;
        Ok(Preview {
            content_type: kind.mime(),
            bytes,
        })
    }

    /// `POST /_hearth/client/v1/gifs/{id}/import`: the full GIF becomes an ordinary upload
    /// of `user` (same size cap, rate limit, hashing and sniffing as any upload).
    pub async fn gif_import(&self, user: &UserId, id: &str) -> Result<Value> {
        let gif = self.giphy_gif(id).await?;
        let url = gif
            .images
            .full()
            .and_then(Rendition::url)
            .ok_or_else(|| upstream("Giphy offered no file for this GIF"))?;
        let response = self.gifs.get_file(url).await?;
        check_status(response.status())?;
        let declared = response.content_length();
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| e.without_url()));
        let name = if gif.title.trim().is_empty() {
            format!("{id}.gif")
        } else {
            format!("{}.gif", gif.title.trim())
        };
        let meta = UploadMeta {
            content_type: Some("image/gif".into()),
            filename: Some(name.chars().filter(|c| !c.is_control()).take(200).collect()),
        };
        let media_id = self.upload_media(user, meta, declared, body).await?;
        let server_name = self.server_name().to_string();
        let stored = self
            .media_content(&server_name, &media_id, Fetch::local(Some(0)))
            .await?;
        let Some(kind) = stored.content.image else {
            return Err(upstream("Giphy's file was not an image"));
        };
        let path = stored.path.clone();
        let probe = tokio::task::spawn_blocking(move || thumbnail::probe(&path, kind))
            .await
            .map_err(Error::internal)?
            .map_err(|_| upstream("Giphy's file was not a readable image"))?;
        Ok(json!({
            "content_uri": self.mxc(&media_id),
            "title": gif.title,
            "info": {
                "mimetype": stored.content.content_type,
                "w": probe.width,
                "h": probe.height,
                "size": stored.content.size,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_ids_are_alphanumeric_only() {
        assert!(valid_gif_id("xT9IgG50Fb7Mi0prBC"));
        assert!(!valid_gif_id(""));
        assert!(!valid_gif_id("a/b"));
        assert!(!valid_gif_id("a?api_key=x"));
        assert!(!valid_gif_id("..%2F"));
        assert!(!valid_gif_id(&"a".repeat(65)));
    }

    #[test]
    fn next_offset_stops_at_the_end() {
        let page = |total, count, offset| Pagination {
            total_count: Some(total),
            count: Some(count),
            offset: Some(offset),
        };
        assert_eq!(next_offset(Some(&page(100, 20, 0)), 0, 20), Some(20));
        assert_eq!(next_offset(Some(&page(100, 20, 80)), 80, 20), None);
        assert_eq!(next_offset(Some(&page(100, 0, 100)), 100, 0), None);
        assert_eq!(next_offset(Some(&page(9000, 50, 4980)), 4980, 50), None);
        assert_eq!(next_offset(None, 0, 20), None);
    }
}
