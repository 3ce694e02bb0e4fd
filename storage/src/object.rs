//! Checkpoint storage in S3-compatible object storage through `object_store`: one client
//! per bucket, shared by the process, with retries and timeouts; requests run on a small
//! runtime of their own and the callers wait for them.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Result, StorageError};

/// Settings of S3-compatible storage, named as Flink names them (`s3.endpoint`,
/// `s3.access-key`, `s3.secret-key`, `s3.path.style.access`). What is not set comes from
/// the usual AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...).
#[derive(Clone, Default, PartialEq)]
pub struct S3Options {
    /// `s3.endpoint`: the server's URL, for storage other than AWS (an `http://` endpoint
    /// is allowed).
    pub endpoint: Option<String>,
    /// `s3.access-key`.
    pub access_key: Option<String>,
    /// `s3.secret-key` (a secret: never printed).
    pub secret_key: Option<String>,
    /// `s3.region`.
    pub region: Option<String>,
    /// `s3.path.style.access`: address buckets as `endpoint/bucket` (the default with an
    /// endpoint) rather than `bucket.endpoint`.
    pub path_style_access: Option<bool>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "******"))
            .field("region", &self.region)
            .field("path_style_access", &self.path_style_access)
            .finish()
    }
}

fn options() -> &'static RwLock<S3Options> {
    static OPTIONS: OnceLock<RwLock<S3Options>> = OnceLock::new();
    OPTIONS.get_or_init(Default::default)
}

fn clients() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// Sets the process's S3 settings (at start, from its configuration); clients made
/// before are replaced.
pub fn configure_s3(settings: S3Options) {
    tracing::debug!(options = ?settings, "S3 storage configured");
    *options().write().unwrap_or_else(|p| p.into_inner()) = settings;
    clients().lock().unwrap_or_else(|p| p.into_inner()).clear();
}

fn client(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut clients = clients().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = clients.get(bucket) {
        return Ok(client.clone());
    }
    let settings = options().read().unwrap_or_else(|p| p.into_inner()).clone();
    let retry =
        RetryConfig { backoff: BackoffConfig::default(), max_retries: 10, retry_timeout: Duration::from_secs(60) };
    let client_options =
        ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(120));
    let mut builder =
        AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry).with_client_options(client_options);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(key) = &settings.access_key {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &settings.secret_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(path_style) = settings.path_style_access {
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    let client: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|source| StorageError::Object {
        action: "configure S3 storage for",
        location: format!("s3://{bucket}"),
        source,
    })?);
    clients.insert(bucket.to_string(), client.clone());
    Ok(client)
}

/// Runs `request` on the storage runtime and waits for it, from any thread.
fn wait<T: Send + 'static>(request: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("sluice-storage").enable_all().build()
    });
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            let source = std::io::Error::new(e.kind(), e.to_string());
            return Err(StorageError::Io { action: "start", location: "the storage runtime".into(), source });
        }
    };
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = sender.send(request.await);
    });
    receiver.recv().unwrap_or_else(|_| {
        Err(StorageError::Io {
            action: "finish",
            location: "a storage request".into(),
            source: std::io::Error::other("the request ended without an answer"),
        })
    })
}

/// What one request needs: the bucket's client, the key, and how to report a failure.
struct Request {
    client: Arc<dyn ObjectStore>,
    path: ObjectPath,
    failure: Failure,
}

/// Turns an object store error into the storage error saying what failed where.
#[derive(Clone)]
struct Failure {
    action: &'static str,
    location: String,
}

impl Failure {
    fn of(&self, source: object_store::Error) -> StorageError {
        let location = self.location.clone();
        match source {
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
                StorageError::AlreadyExists { location }
            }
            object_store::Error::NotFound { .. } => StorageError::NotFound { location },
            source => StorageError::Object { action: self.action, location, source },
        }
    }
}

/// A part of a key as it was given to [`ObjectLocation::join`] (object_store stores `%`
/// and a few other characters percent-encoded, so `dt=a%3Ab` is kept as `dt=a%253Ab`).
fn part_name(part: &str) -> String {
    percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned()
}

/// A key (or prefix) in a bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectLocation {
    bucket: String,
    path: ObjectPath,
}

impl std::fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.as_ref().is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            let parts: Vec<String> = self.path.parts().map(|p| part_name(p.as_ref())).collect();
            write!(f, "s3://{}/{}", self.bucket, parts.join("/"))
        }
    }
}

impl ObjectLocation {
    pub(crate) fn new(bucket: &str, key: &str) -> Self {
        ObjectLocation { bucket: bucket.to_string(), path: ObjectPath::from(key) }
    }

    pub(crate) fn join(&self, relative: &str) -> Self {
        let mut path = self.path.clone();
        path.extend(relative.split('/'));
        ObjectLocation { bucket: self.bucket.clone(), path }
    }

    pub(crate) fn file_name(&self) -> Option<String> {
        self.path.filename().map(part_name)
    }

    pub(crate) fn parent(&self) -> Option<Self> {
        let count = self.path.parts_count();
        (count > 0)
            .then(|| ObjectLocation { bucket: self.bucket.clone(), path: self.path.parts().take(count - 1).collect() })
    }

    /// The client, the key, and how to describe a failure of `action` here.
    fn request(&self, action: &'static str) -> Result<Request> {
        Ok(Request {
            client: client(&self.bucket)?,
            path: self.path.clone(),
            failure: Failure { action, location: self.to_string() },
        })
    }

    pub(crate) fn put_file(&self, source: &Path) -> Result<(u64, u64)> {
        let Request { client, path, failure } = self.request("upload to")?;
        let source = source.to_path_buf();
        wait(async move {
            let read_error = |e| StorageError::Io { action: "read", location: source.display().to_string(), source: e };
            let mut file = tokio::fs::File::open(&source).await.map_err(read_error)?;
            // One PUT up to 8 MiB, a multipart upload of 8 MiB parts above.
            let mut writer = BufWriter::with_capacity(client, path, 8 << 20);
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            let mut size = 0u64;
            let uploaded: Result<()> = async {
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    let n = file.read(&mut chunk).await.map_err(read_error)?;
                    if n == 0 {
                        break;
                    }
                    chunk.truncate(n);
                    hasher.update(&chunk);
                    size += n as u64;
                    writer.put(Bytes::from(chunk)).await.map_err(|e| failure.of(e))?;
                }
                writer.shutdown().await.map_err(|e| match e.downcast::<object_store::Error>() {
                    Ok(e) => failure.of(e),
                    Err(e) => failure.of(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
                })
            }
            .await;
            if let Err(e) = uploaded {
                let _ = writer.abort().await;
                return Err(e);
            }
            Ok((size, hasher.digest()))
        })
    }

    pub(crate) fn put(&self, bytes: Vec<u8>, create_only: bool) -> Result<()> {
        let Request { client, path, failure } = self.request("write")?;
        let mode = if create_only { PutMode::Create } else { PutMode::Overwrite };
        wait(async move {
            let options = PutOptions { mode, ..Default::default() };
            client.put_opts(&path, PutPayload::from(bytes), options).await.map_err(|e| failure.of(e))?;
            Ok(())
        })
    }

    pub(crate) fn read(&self) -> Result<Vec<u8>> {
        let Request { client, path, failure } = self.request("read")?;
        wait(async move {
            let result = client.get(&path).await.map_err(|e| failure.of(e))?;
            Ok(result.bytes().await.map_err(|e| failure.of(e))?.to_vec())
        })
    }

    pub(crate) fn size(&self) -> Result<Option<u64>> {
        let Request { client, path, failure } = self.request("read")?;
        wait(async move {
            match client.head(&path).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(failure.of(e)),
            }
        })
    }

    pub(crate) fn fetch(&self, target: &Path) -> Result<(u64, u64)> {
        let Request { client, path, failure } = self.request("download")?;
        let target = target.to_path_buf();
        wait(async move {
            let write_error =
                |e| StorageError::Io { action: "write", location: target.display().to_string(), source: e };
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(write_error)?;
            }
            let mut stream = client.get(&path).await.map_err(|e| failure.of(e))?.into_stream();
            let mut file = tokio::fs::File::create(&target).await.map_err(write_error)?;
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| failure.of(e))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(write_error)?;
            }
            file.sync_all().await.map_err(write_error)?;
            Ok((size, hasher.digest()))
        })
    }

    pub(crate) fn delete(&self) -> Result<()> {
        let Request { client, path, failure } = self.request("delete")?;
        wait(async move {
            match client.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(failure.of(e)),
            }
        })
    }

    pub(crate) fn delete_all(&self) -> Result<()> {
        let Request { client, path, failure } = self.request("delete")?;
        wait(async move {
            let keys = client.list(Some(&path)).map_ok(|meta| meta.location).boxed();
            let deleted: Vec<_> = client.delete_stream(keys).collect().await;
            for result in deleted {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(failure.of(e)),
                }
            }
            Ok(())
        })
    }

    pub(crate) fn files(&self) -> Result<Vec<String>> {
        let Request { client, path, failure } = self.request("list")?;
        let depth = path.parts_count();
        wait(async move {
            let objects: Vec<object_store::ObjectMeta> =
                client.list(Some(&path)).try_collect().await.map_err(|e| failure.of(e))?;
            Ok(objects
                .into_iter()
                .map(|o| o.location.parts().skip(depth).map(|p| part_name(p.as_ref())).collect::<Vec<_>>().join("/"))
                .collect())
        })
    }

    pub(crate) fn copy_to(&self, target: &ObjectLocation) -> Result<()> {
        let Request { client, path, failure } = self.request("copy")?;
        if target.bucket != self.bucket {
            let data = self.read()?;
            return target.put(data, false);
        }
        let to = target.path.clone();
        wait(async move { client.copy(&path, &to).await.map_err(|e| failure.of(e)) })
    }

    pub(crate) fn children(&self) -> Result<Vec<String>> {
        let Request { client, path, failure } = self.request("list")?;
        wait(async move {
            let listing = client.list_with_delimiter(Some(&path)).await.map_err(|e| failure.of(e))?;
            let directories = listing.common_prefixes.iter().filter_map(|p| p.filename().map(part_name));
            let files = listing.objects.iter().filter_map(|o| o.location.filename().map(part_name));
            Ok(directories.chain(files).collect())
        })
    }
}
