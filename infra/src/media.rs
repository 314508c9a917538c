//! Media on disk: HLS ladders (the bundled demo ladders and those made by `cinelog media
//! ingest`), the bundled catalog, and ffmpeg.

use anyhow::{Context, bail};
use bytes::Bytes;
use cinelog_domain::title::{Episode, Kind, Media, Rendition, Season, TitleInfo};
use cinelog_domain::values::Maturity;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::process::Command;

/// The bundled catalog, compiled in so the embedded default needs no files besides the media.
const BUNDLED_CATALOG: &str = include_str!("../../assets/catalog/titles.json");

/// Heights `media ingest` makes, with their video bitrates (kbit/s): always up to
/// [`LADDER_FLOOR`], and above it as far as the source goes.
pub const LADDER: [(u32, u32); 6] = [
    (240, 300),
    (480, 800),
    (720, 1800),
    (1080, 3500),
    (1440, 7000),
    (2160, 14000),
];
/// Every ingested title plays at least 240p to this height.
pub const LADDER_FLOOR: u32 = 1080;
/// Segment length; every rendition is cut at the same instants.
pub const SEGMENT_SECS: u32 = 2;

/// Where ladders live: `bundled/<name>` in the shipped assets, `ingested/<title>.<version>` in the
/// data dir.
#[derive(Debug, Clone)]
pub struct MediaLibrary {
    bundled: PathBuf,
    ingested: PathBuf,
    /// Ladder descriptions read so far, with the modification time they were read at.
    known: Arc<Mutex<HashMap<String, (SystemTime, Media)>>>,
    /// Playlists and segments read so far. A ladder's files never change once made (a new
    /// ingest makes a new folder), so each is read from disk once and then served from here
    /// without a copy.
    files: moka::sync::Cache<PathBuf, Bytes>,
}

/// Bytes of media files kept in memory.
const FILES_KEPT_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Deserialize)]
struct LadderFile {
    duration_secs: f64,
    renditions: Vec<Rendition>,
}

/// A title of the bundled catalog and the demo ladder it plays.
#[derive(Debug, Clone)]
pub struct BundledTitle {
    pub id: String,
    pub info: TitleInfo,
    pub ladder: String,
}

#[derive(Deserialize)]
struct RawTitle {
    slug: String,
    kind: String,
    title: String,
    year: i32,
    genres: Vec<String>,
    maturity: String,
    runtime_mins: u32,
    synopsis: String,
    #[serde(default)]
    tagline: String,
    popularity: f64,
    media: String,
    #[serde(default)]
    seasons: Vec<RawSeason>,
}

#[derive(Deserialize)]
struct RawSeason {
    number: u32,
    episodes: Vec<Episode>,
}

/// The titles shipped with Cinelog.
pub fn bundled_catalog() -> anyhow::Result<Vec<BundledTitle>> {
    let raw: Vec<RawTitle> = serde_json::from_str(BUNDLED_CATALOG)?;
    raw.into_iter()
        .map(|t| {
            Ok(BundledTitle {
                ladder: format!("bundled/{}", t.media),
                info: TitleInfo {
                    kind: Kind::parse(&t.kind).context("kind")?,
                    name: t.title,
                    year: t.year,
                    genres: t.genres,
                    maturity: Maturity::parse(&t.maturity).map_err(|e| anyhow::anyhow!("{e}"))?,
                    runtime_mins: t.runtime_mins,
                    synopsis: t.synopsis,
                    tagline: t.tagline,
                    popularity: t.popularity,
                    poster: None,
                    backdrop: None,
                    seasons: t
                        .seasons
                        .into_iter()
                        .map(|s| Season {
                            number: s.number,
                            episodes: s.episodes,
                        })
                        .collect(),
                    source: "bundled".into(),
                },
                id: t.slug,
            })
        })
        .collect()
}

/// The shipped media folder: `assets/media` under the working directory, else the one beside
/// the source this binary was built from.
fn default_bundled_dir() -> PathBuf {
    let here = PathBuf::from("assets/media");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/media")
}

/// A safe single path component: letters, digits, `-`, `_`, `.` (not only dots).
pub fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.chars().all(|c| c == '.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl cinelog_commands::ports::Ladders for MediaLibrary {
    fn ladder(&self, name: &str) -> Option<Media> {
        self.read_ladder(name).ok()
    }
}

/// An HLS master playlist listing these renditions.
pub fn master_playlist(renditions: &[Rendition]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in renditions {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",NAME=\"{}\"\n{}/index.m3u8\n",
            r.bandwidth, r.width, r.height, r.codecs, r.name, r.name
        ));
    }
    out
}

impl MediaLibrary {
    /// The ladders shipped with Cinelog, and those ingested into `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            bundled: default_bundled_dir(),
            ingested: data_dir.join("media"),
            known: Arc::default(),
            files: moka::sync::Cache::builder()
                .max_capacity(FILES_KEPT_BYTES)
                .weigher(|_, bytes: &Bytes| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
                .build(),
        }
    }

    /// The folder of a ladder, if the name is well-formed.
    pub fn ladder_dir(&self, ladder: &str) -> Option<PathBuf> {
        let (root, name) = ladder.split_once('/')?;
        if !safe_component(name) {
            return None;
        }
        match root {
            "bundled" => Some(self.bundled.join(name)),
            "ingested" => Some(self.ingested.join(name)),
            _ => None,
        }
    }

    /// A rendition's playlist (`index.m3u8`) or segment (`*.ts`) and its content type; `None`
    /// for a name that is not one, or a file that is not there.
    pub async fn stream_file(
        &self,
        ladder: &str,
        rendition: &str,
        file: &str,
    ) -> Option<(Bytes, &'static str)> {
        if !safe_component(file) || !safe_component(rendition) {
            return None;
        }
        let content_type = if file.ends_with(".m3u8") {
            "application/vnd.apple.mpegurl"
        } else if file.ends_with(".ts") {
            "video/mp2t"
        } else {
            return None;
        };
        let path = self.ladder_dir(ladder)?.join(rendition).join(file);
        if let Some(bytes) = self.files.get(&path) {
            return Some((bytes, content_type));
        }
        let bytes = Bytes::from(tokio::fs::read(&path).await.ok()?);
        self.files.insert(path, bytes.clone());
        Some((bytes, content_type))
    }

    /// Reads a ladder's description (`ladder.json`); kept in memory until the file changes.
    pub fn read_ladder(&self, ladder: &str) -> anyhow::Result<Media> {
        let dir = self
            .ladder_dir(ladder)
            .with_context(|| format!("bad ladder name {ladder:?}"))?;
        let path = dir.join("ladder.json");
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading {}", path.display()))?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, media)) = known.get(ladder)
            && *at == modified
        {
            return Ok(media.clone());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: LadderFile = serde_json::from_str(&text)?;
        let media = Media {
            ladder: ladder.to_string(),
            duration_secs: file.duration_secs,
            renditions: file.renditions,
        };
        known.insert(ladder.to_string(), (modified, media.clone()));
        Ok(media)
    }

    /// Makes an HLS ladder of `input` with ffmpeg (240p to 1080p, and above as far as the source
    /// goes, cut at the same 2-second keyframes) in a new folder, and describes it. The title's
    /// current ladder stays as it is, so sessions playing it go on and a failed run changes nothing.
    pub async fn ingest(&self, input: &Path, title_id: &str) -> anyhow::Result<Media> {
        let name = format!(
            "{title_id}.{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S%3f")
        );
        if !safe_component(title_id) || !safe_component(&name) {
            bail!("title id {title_id:?} cannot name a folder");
        }
        if !input.is_file() {
            bail!("{} is not a file", input.display());
        }
        let dir = self.ingested.join(&name);
        let made = self.make_ladder(input, &dir, &name).await;
        if made.is_err() {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        made
    }

    async fn make_ladder(&self, input: &Path, dir: &Path, folder: &str) -> anyhow::Result<Media> {
        let duration = probe(input, "format=duration").await?.parse::<f64>()?;
        let source_height: u32 = probe_stream(input, "height").await?.parse()?;
        let mut renditions = Vec::new();
        for (height, kbps) in LADDER {
            if height > source_height.max(LADDER_FLOOR) {
                continue;
            }
            let name = format!("{height}p");
            let out = dir.join(&name);
            tokio::fs::create_dir_all(&out).await?;
            let status = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(input)
                .args(["-map", "0:v:0", "-map", "0:a:0?"])
                .args(["-vf", &format!("scale=-2:{height}")])
                .args([
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-profile:v",
                    "main",
                    "-pix_fmt",
                    "yuv420p",
                ])
                .args([
                    "-b:v",
                    &format!("{kbps}k"),
                    "-maxrate",
                    &format!("{}k", kbps * 3 / 2),
                    "-bufsize",
                    &format!("{}k", kbps * 2),
                ])
                .args([
                    "-force_key_frames",
                    &format!("expr:gte(t,n_forced*{SEGMENT_SECS})"),
                    "-sc_threshold",
                    "0",
                ])
                .args(["-c:a", "aac", "-b:a", "96k", "-ac", "2"])
                .args([
                    "-f",
                    "hls",
                    "-hls_time",
                    &SEGMENT_SECS.to_string(),
                    "-hls_playlist_type",
                    "vod",
                ])
                .arg("-hls_segment_filename")
                .arg(out.join("seg_%03d.ts"))
                .arg(out.join("index.m3u8"))
                .status()
                .await
                .context("running ffmpeg (install it: apt-get install ffmpeg)")?;
            if !status.success() {
                bail!("ffmpeg failed making {name}");
            }
            let first = out.join("seg_000.ts");
            let width: u32 = probe_stream(&first, "width").await?.parse()?;
            let mut bytes = 0u64;
            let mut entries = tokio::fs::read_dir(&out).await?;
            while let Some(e) = entries.next_entry().await? {
                bytes += e.metadata().await?.len();
            }
            renditions.push(Rendition {
                name,
                width,
                height,
                bandwidth: ((bytes as f64 * 8.0) / duration.max(0.1)) as u64,
                codecs: "avc1.4d4028,mp4a.40.2".into(),
            });
        }
        let media = Media {
            ladder: format!("ingested/{folder}"),
            duration_secs: duration,
            renditions,
        };
        let ladder = serde_json::json!({"duration_secs": media.duration_secs, "renditions": media.renditions});
        tokio::fs::write(dir.join("ladder.json"), serde_json::to_vec_pretty(&ladder)?).await?;
        Ok(media)
    }
}

async fn probe(input: &Path, entries: &str) -> anyhow::Result<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
        .arg(input)
        .output()
        .await
        .context("running ffprobe (install ffmpeg)")?;
    if !out.status.success() {
        bail!("ffprobe cannot read {}", input.display());
    }
    first_line(&out.stdout)
}

async fn probe_stream(input: &Path, field: &str) -> anyhow::Result<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            &format!("stream={field}"),
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .await
        .context("running ffprobe (install ffmpeg)")?;
    if !out.status.success() {
        bail!("ffprobe cannot read {}", input.display());
    }
    first_line(&out.stdout)
}

/// ffprobe may repeat a value (per program and per stream): the first non-empty line.
fn first_line(stdout: &[u8]) -> anyhow::Result<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_end_matches(',').to_string())
        .context("ffprobe printed nothing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_catalog_is_complete_and_its_ladders_exist() {
        let titles = bundled_catalog().unwrap();
        assert!(titles.len() >= 40);
        assert!(
            titles
                .iter()
                .any(|t| t.info.kind == Kind::Series && !t.info.seasons.is_empty())
        );
        let library = MediaLibrary::new(Path::new("/nonexistent"));
        for t in &titles {
            let media = library.read_ladder(&t.ladder).unwrap();
            assert_eq!(media.renditions.len(), 4, "{}", t.ladder);
        }
    }

    #[test]
    fn ladder_names_cannot_escape_their_folder() {
        let library = MediaLibrary::new(Path::new("/data"));
        assert!(library.ladder_dir("bundled/aurora").is_some());
        for bad in [
            "bundled/..",
            "bundled/../x",
            "other/aurora",
            "aurora",
            "ingested/a/b",
            "bundled/",
            "bundled/a b",
        ] {
            assert!(library.ladder_dir(bad).is_none(), "{bad}");
        }
    }
}
