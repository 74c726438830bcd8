//! The HTTP layer of a `gcs` replica with `STORAGE_EMULATOR_HOST` set: `object_store` speaks
//! GCS's XML API, which fake-gcs-server (the emulator Google's clients and Litestream 0.3.13
//! are tested against) serves only for reads and listings. Object uploads and deletes are
//! rewritten to the JSON API, which Google's own clients use with an emulator:
//!
//! - `PUT /<bucket>/<object>` becomes `POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=<object>`,
//!   and the JSON answer's `etag` and `generation` become the `ETag` and `x-goog-generation`
//!   headers `object_store` reads from an XML upload;
//! - `DELETE /<bucket>/<object>` becomes `DELETE /storage/v1/b/<bucket>/o/<object>`.
//!
//! Every other request (reads, listings) passes through unchanged. Multipart uploads have no
//! equivalent here: the client sends every object in one `PUT` when talking to an emulator.
//! Nothing of this is used with real GCS.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use reqwest::Method;
use reqwest::header::HeaderValue;

/// Builds the rewriting [`HttpClient`] over `object_store`'s own reqwest client.
#[derive(Debug, Default)]
pub(super) struct GcsEmulatorConnector;

/// The rewriting service: see the module documentation.
#[derive(Debug)]
struct GcsEmulatorService {
    inner: HttpClient,
}

/// What a request becomes.
#[derive(Debug, PartialEq, Eq)]
enum Rewrite {
    /// An upload: the new URI; the response gets its headers from the JSON body.
    Upload(String),
    /// A delete: the new URI.
    Delete(String),
}

impl HttpConnector for GcsEmulatorConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(GcsEmulatorService { inner }))
    }
}

#[async_trait]
impl HttpService for GcsEmulatorService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let copy = req.headers().contains_key("x-goog-copy-source");
        let rewrite = if copy {
            None
        } else {
            rewrite(req.method(), &req.uri().to_string())
        };
        let Some(rewrite) = rewrite else {
            return self.inner.execute(req).await;
        };
        let (mut parts, body) = req.into_parts();
        match rewrite {
            Rewrite::Delete(uri) => {
                parts.uri = uri
                    .parse()
                    .map_err(|err| HttpError::new(HttpErrorKind::Request, err))?;
                self.inner
                    .execute(HttpRequest::from_parts(parts, body))
                    .await
            }
            Rewrite::Upload(uri) => {
                parts.method = Method::POST;
                parts.uri = uri
                    .parse()
                    .map_err(|err| HttpError::new(HttpErrorKind::Request, err))?;
                let response = self
                    .inner
                    .execute(HttpRequest::from_parts(parts, body))
                    .await?;
                let (mut parts, body) = response.into_parts();
                let body = body.bytes().await?;
                if parts.status.is_success() {
                    for (header, value) in upload_headers(&body) {
                        parts.headers.insert(header, value);
                    }
                }
                Ok(HttpResponse::from_parts(
                    parts,
                    HttpResponseBody::from(body),
                ))
            }
        }
    }
}

/// The JSON API form of an XML API upload or delete at `uri`, or `None` to send it as is.
/// `object_store` percent-encodes the whole object name into one path segment, so the last
/// segment is the object and the one before it the bucket.
fn rewrite(method: &Method, uri: &str) -> Option<Rewrite> {
    if *method != Method::PUT && *method != Method::DELETE {
        return None;
    }
    if uri.contains('?') {
        // Multipart parts, completions and aborts: never sent to an emulator.
        return None;
    }
    let (base, object) = uri.rsplit_once('/')?;
    let (origin, bucket) = base.rsplit_once('/')?;
    if object.is_empty() || bucket.is_empty() || !origin.contains("://") {
        return None;
    }
    Some(if *method == Method::PUT {
        Rewrite::Upload(format!(
            "{origin}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}"
        ))
    } else {
        Rewrite::Delete(format!("{origin}/storage/v1/b/{bucket}/o/{object}"))
    })
}

/// The `ETag` and `x-goog-generation` headers of the object resource in a JSON API upload's
/// answer; none when the answer is not one.
fn upload_headers(body: &Bytes) -> Vec<(&'static str, HeaderValue)> {
    let Ok(resource) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    [("etag", "etag"), ("x-goog-generation", "generation")]
        .into_iter()
        .filter_map(|(header, field)| {
            let value = resource.get(field)?.as_str()?;
            Some((header, HeaderValue::from_str(value).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_put_and_delete_go_to_json_api() {
        let object = "http://127.0.0.1:4443/bkt/db%2Fgenerations%2Fx";
        assert_eq!(
            rewrite(&Method::PUT, object),
            Some(Rewrite::Upload(
                "http://127.0.0.1:4443/upload/storage/v1/b/bkt/o?uploadType=media&name=db%2Fgenerations%2Fx"
                    .to_owned()
            ))
        );
        assert_eq!(
            rewrite(&Method::DELETE, object),
            Some(Rewrite::Delete(
                "http://127.0.0.1:4443/storage/v1/b/bkt/o/db%2Fgenerations%2Fx".to_owned()
            ))
        );
    }

    #[test]
    fn rewrite_reads_lists_and_multipart_pass_through() {
        let object = "http://127.0.0.1:4443/bkt/db%2Fx";
        assert_eq!(rewrite(&Method::GET, object), None);
        assert_eq!(
            rewrite(&Method::PUT, &format!("{object}?partNumber=1&uploadId=u")),
            None
        );
        assert_eq!(rewrite(&Method::DELETE, "http://127.0.0.1:4443/bkt/"), None);
        assert_eq!(rewrite(&Method::PUT, "bkt/x"), None);
    }

    #[test]
    fn upload_headers_taken_from_object_resource() {
        let body = Bytes::from_static(br#"{"name":"x","etag":"CKih","generation":"17"}"#);
        let headers: Vec<(&str, String)> = upload_headers(&body)
            .into_iter()
            .map(|(name, value)| (name, value.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("etag", "CKih".to_owned()),
                ("x-goog-generation", "17".to_owned())
            ]
        );
        assert!(upload_headers(&Bytes::from_static(b"<xml/>")).is_empty());
    }
}
