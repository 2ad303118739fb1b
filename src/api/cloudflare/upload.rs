//! The asset calls of an upload session, with the upload token: check-missing, upload (buckets in
//! parallel, one at a time after an HTTP 524) and upsert-hashes.

use super::body::{UploadFile, UploadStream};
use super::error::{classify, flatten};
use super::{CfError, Cloudflare, REQUEST_TIMEOUT};
use crate::api::http::timeout_for_body;
use crate::api::retry::{Attempt, RetryPolicy, retry};
use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// After an HTTP 524 (a gateway timeout at Cloudflare's edge) uploads go one at a time for the
/// rest of the run, as wrangler does: requests already in flight finish, no new one starts while
/// another is running.
#[derive(Debug, Default)]
pub struct Gateway {
    tripped: AtomicBool,
    one_at_a_time: Mutex<()>,
}

impl Gateway {
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
    fn trip(&self) {
        self.tripped.store(true, Ordering::SeqCst);
    }
    /// Held for the length of one request once tripped.
    fn turn(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.tripped()
            .then(|| self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How the uploads went, beyond success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadSummary {
    /// An HTTP 524 dropped the uploads to one at a time.
    pub one_at_a_time: bool,
}

impl Cloudflare {
    /// An asset call with the upload JWT: refreshed when close to expiry or refused, bounded.
    fn asset_call(
        &self,
        path: &str,
        body_len: u64,
        body: &dyn Fn() -> reqwest::blocking::Body,
        policy: &RetryPolicy,
        gateway: Option<&Gateway>,
    ) -> Result<Value, CfError> {
        let url = self.url(path);
        let method = Method::POST;
        let what = "the request";
        retry(policy, what, |_| {
            let jwt = match self.current_jwt() {
                Ok(t) => t,
                Err(e) => return Attempt::Fail(e),
            };
            let rb = self
                .http
                .request(method.clone(), &url)
                .timeout(timeout_for_body(REQUEST_TIMEOUT, body_len))
                .bearer_auth(&jwt)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body());
            let turn = gateway.and_then(Gateway::turn);
            let result = self.execute(&method, &url, rb);
            drop(turn);
            match result {
                Ok(v) => {
                    self.book().accepted(&jwt);
                    Attempt::Done(v)
                }
                // A refused token is not a failed attempt: the refusal count bounds it.
                Err(e) if e.is_jwt_refused() => match self.replace_refused(&jwt) {
                    Ok(()) => Attempt::Again(e),
                    Err(fatal) => Attempt::Fail(fatal),
                },
                Err(e) if e.is_gateway_timeout() => {
                    if let Some(g) = gateway {
                        g.trip();
                    }
                    Attempt::Retry {
                        error: e,
                        after: None,
                    }
                }
                other => classify(other),
            }
        })
        .map_err(flatten)
    }

    /// `POST /pages/assets/check-missing`: which of `hashes` must be uploaded.
    pub fn check_missing(&self, hashes: &[String]) -> Result<Vec<String>, CfError> {
        let body = serde_json::to_vec(&serde_json::json!({ "hashes": hashes })).unwrap_or_default();
        let v = self.asset_call(
            "/pages/assets/check-missing",
            body.len() as u64,
            &|| body.clone().into(),
            &self.policy,
            None,
        )?;
        Ok(serde_json::from_value(v).unwrap_or_default())
    }

    /// `POST /pages/assets/upsert-hashes` with every hash of the deployment.
    pub fn upsert_hashes(&self, hashes: &[String]) -> Result<(), CfError> {
        let body = serde_json::to_vec(&serde_json::json!({ "hashes": hashes })).unwrap_or_default();
        self.asset_call(
            "/pages/assets/upsert-hashes",
            body.len() as u64,
            &|| body.clone().into(),
            &self.policy,
            None,
        )?;
        Ok(())
    }

    /// Uploads the buckets, up to `concurrency` at once (one at a time after the first HTTP 524).
    /// Each bucket has its own retry budget, and each request a timeout that grows with its body.
    /// `on_done(files, bytes)` is called per finished bucket.
    pub fn upload_buckets(
        &self,
        buckets: Vec<Vec<UploadFile>>,
        concurrency: usize,
        on_done: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<UploadSummary, CfError> {
        let queue = Mutex::new(
            buckets
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        );
        let gateway = Gateway::default();
        let failed: Mutex<Option<CfError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for worker in 0..concurrency.max(1) {
                let (queue, gateway, failed) = (&queue, &gateway, &failed);
                s.spawn(move || {
                    loop {
                        // After a 524 only the first worker goes on taking buckets.
                        if worker > 0 && gateway.tripped() {
                            return;
                        }
                        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                            return;
                        }
                        let Some(bucket) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                            return;
                        };
                        let files: Arc<[UploadFile]> = bucket.clone().into();
                        let result = self.asset_call(
                            "/pages/assets/upload",
                            UploadStream::length(&files),
                            &|| UploadStream::body(Arc::clone(&files)),
                            &self.policy,
                            Some(gateway),
                        );
                        match result {
                            Ok(_) => {
                                on_done(bucket.len() as u64, bucket.iter().map(|f| f.size).sum())
                            }
                            Err(e) => {
                                if let Ok(mut f) = failed.lock() {
                                    f.get_or_insert(e);
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(UploadSummary {
                one_at_a_time: gateway.tripped(),
            }),
        }
    }
}
