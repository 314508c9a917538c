//! Copies of TMDB's images: each fetched once, kept in `data_dir/images/tmdb/{size}/{file}`,
//! served from there after. Concurrent first requests for one image share one fetch.

use crate::tmdb::{BACKDROP_SIZE, POSTER_SIZE, is_image_file};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an image cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not an image size or name this server serves.
    #[error("no such image")]
    NotFound,
    /// TMDB did not give the image.
    #[error("the image host answered {0}")]
    Upstream(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The local copies and how to fetch a missing one.
pub struct TmdbImages {
    base: String,
    dir: PathBuf,
    http: reqwest::Client,
    /// One lock per image being fetched, so a burst of first requests fetches it once.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TmdbImages {
    /// Images fetched from `base` (TMDB's `https://image.tmdb.org/t/p`), kept under `data_dir`.
    pub fn new(base: &str, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        Ok(TmdbImages {
            base: base.trim_end_matches('/').to_string(),
            dir: data_dir.join("images").join("tmdb"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            fetching: Mutex::default(),
        })
    }

    /// The image's bytes and content type: the kept copy, or fetched and kept now.
    pub async fn get(&self, size: &str, file: &str) -> Result<(Vec<u8>, &'static str), ImageError> {
        if ![POSTER_SIZE, BACKDROP_SIZE].contains(&size) || !is_image_file(file) {
            return Err(ImageError::NotFound);
        }
        let kind = content_type(file);
        let path = self.dir.join(size).join(file);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            return Ok((bytes, kind));
        }
        let key = format!("{size}/{file}");
        let lock = self
            .fetching
            .lock()
            .map_err(|_| ImageError::Upstream("cache lock poisoned".into()))?
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = lock.lock().await;
        // Another request may have fetched it while this one waited.
        let answer = match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(_) => self.fetch(&key, &path).await,
        };
        if let Ok(mut fetching) = self.fetching.lock() {
            fetching.remove(&key);
        }
        Ok((answer?, kind))
    }

    async fn fetch(&self, key: &str, path: &std::path::Path) -> Result<Vec<u8>, ImageError> {
        let resp = self
            .http
            .get(format!("{}/{key}", self.base))
            .send()
            .await
            .map_err(|e| ImageError::Upstream(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(ImageError::Upstream(resp.status().to_string()));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ImageError::Upstream(e.without_url().to_string()))?
            .to_vec();
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Written whole, then renamed: a reader never sees half an image.
        let part = path.with_extension("part");
        tokio::fs::write(&part, &bytes).await?;
        tokio::fs::rename(&part, path).await?;
        Ok(bytes)
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, e)| e) {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_that_could_leave_the_cache_are_not_served() {
        let images = TmdbImages::new("http://127.0.0.1:9", std::path::Path::new("/tmp")).unwrap();
        for (size, file) in [
            ("w342", "../etc/passwd"),
            ("w342", "a/b.jpg"),
            ("w342", ".jpg"),
            ("w342", "x.svg"),
            ("../w342", "x.jpg"),
            ("w500", "x.jpg"),
        ] {
            assert!(
                matches!(images.get(size, file).await, Err(ImageError::NotFound)),
                "{size}/{file}"
            );
        }
    }
}
