//! The build context: walker, .dockerignore matcher with moby's semantics, content hashes.
//!
//! The build engine opens a [`Context`] (a directory, or a tar stream extracted safely with
//! [`Context::from_tar`]), asks it for the paths each COPY/ADD source selects
//! ([`Context::select`]), and hashes each [`Selection`] for its cache key with
//! [`hash_selection`], remembering content digests in a [`StatCache`] so that a rebuild with
//! nothing changed reads no file contents. [`SourceHash::changes_since`] names the paths that
//! changed between two builds.

mod hash;
mod listing;
pub mod pattern;
mod select;
mod statcache;
mod tarball;

pub use hash::{EntryDigest, PathChange, SourceHash, hash_selection};
pub use pattern::{MatchInfo, PatternError, PatternMatcher};
pub use select::{FileKind, Match, SelectOptions, SelectedEntry, Selection};
pub use statcache::{HashStats, StatCache};

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading, selecting or hashing the context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {source}", file.display())]
    IgnorePattern {
        file: PathBuf,
        line: usize,
        source: PatternError,
    },
    #[error("--exclude={pattern}: {source}")]
    ExcludePattern {
        pattern: String,
        source: PatternError,
    },
    #[error("invalid pattern in --parents source {source_path}: {source}")]
    ParentsPattern {
        source_path: String,
        source: PatternError,
    },
    /// BuildKit's message for a source that names nothing in the context.
    #[error("{0:?}: not found")]
    NotFound(String),
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
    #[error("context tar entry {entry:?}: {reason}")]
    UnsafeTarEntry { entry: String, reason: String },
    #[error("stat cache {}: {reason}", path.display())]
    StatCache { path: PathBuf, reason: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A build context: a directory on the host seen through its `.dockerignore`.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    ignore: PatternMatcher,
    ignore_file: Option<PathBuf>,
    listings: listing::Listings,
    /// Whether walks may use the rayon pool's threads (see [`Context::without_ignore`]).
    parallel: bool,
    /// Keeps a context extracted from a tar stream alive as long as the context.
    _extracted: Option<tempfile::TempDir>,
}

impl Context {
    /// Opens the context directory `dir`. The ignore file is `<dockerfile>.dockerignore` beside
    /// the Dockerfile when it exists, else `.dockerignore` at the context root, as BuildKit.
    /// Its walks run on the rayon pool's threads too, which see the process's mounts.
    pub fn open(dir: &Path, dockerfile: Option<&Path>) -> Result<Context, ContextError> {
        let root = std::fs::canonicalize(dir).map_err(io_error(dir))?;
        let metadata = std::fs::metadata(&root).map_err(io_error(&root))?;
        if !metadata.is_dir() {
            return Err(ContextError::Io {
                path: root,
                source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        let mut candidates = Vec::new();
        if let Some(dockerfile) = dockerfile {
            let mut name = dockerfile.as_os_str().to_os_string();
            name.push(".dockerignore");
            candidates.push(PathBuf::from(name));
        }
        candidates.push(root.join(".dockerignore"));
        for candidate in candidates {
            match std::fs::read(&candidate) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let ignore = ignore_matcher(&candidate, &text)?;
                    return Ok(Context {
                        root,
                        ignore,
                        ignore_file: Some(candidate),
                        listings: listing::Listings::default(),
                        parallel: true,
                        _extracted: None,
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(&candidate)(error)),
            }
        }
        Ok(Context {
            root,
            ignore: PatternMatcher::default(),
            ignore_file: None,
            listings: listing::Listings::default(),
            parallel: true,
            _extracted: None,
        })
    }

    /// A directory read without any ignore file: an image's or a stage's root file system as
    /// the source of `COPY --from`. It is walked on the calling thread alone: such a root is
    /// often mounted in the caller's private mount namespace, which other threads do not see.
    pub fn without_ignore(dir: &Path) -> Result<Context, ContextError> {
        let root = std::fs::canonicalize(dir).map_err(io_error(dir))?;
        Ok(Context {
            root,
            ignore: PatternMatcher::default(),
            ignore_file: None,
            listings: listing::Listings::default(),
            parallel: false,
            _extracted: None,
        })
    }

    /// Extracts a context sent as a tar stream (`rbuild build -`) into a new directory under
    /// `temp_parent`, refusing any entry that would land outside it, and opens it. A relative
    /// `dockerfile` is a path inside the context.
    pub fn from_tar(
        reader: impl std::io::Read,
        temp_parent: &Path,
        dockerfile: Option<&Path>,
    ) -> Result<Context, ContextError> {
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(temp_parent)
            .map_err(io_error(temp_parent))?;
        tarball::extract(reader, dir.path())?;
        let dockerfile = dockerfile.map(|path| dir.path().join(path));
        let mut context = Context::open(dir.path(), dockerfile.as_deref())?;
        context._extracted = Some(dir);
        Ok(context)
    }

    /// Remembers the context's directory listings in `cache_dir` (read there now, written by
    /// [`Context::save_listings`]): a later walk of an unchanged directory stats it instead
    /// of reading it.
    pub fn keep_listings_in(&self, cache_dir: &Path) {
        self.listings.keep_in(cache_dir);
    }

    /// Writes the listings remembered by this walk, if any.
    pub fn save_listings(&self) -> Result<(), ContextError> {
        self.listings.save()
    }

    /// How many directories were read rather than taken from the kept listings.
    pub fn directories_read(&self) -> u64 {
        self.listings.directories_read()
    }

    /// The context directory on the host (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore file in effect, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// The `.dockerignore` patterns in effect.
    pub fn ignore_patterns(&self) -> &PatternMatcher {
        &self.ignore
    }

    /// True when `path` (relative to the context root) is left out by the ignore file, for
    /// warnings such as "copying an ignored file".
    pub fn is_ignored(&self, path: &str) -> Result<bool, ContextError> {
        let cleaned = pattern::clean(path.trim_start_matches('/'));
        self.ignore
            .matches_or_parent_matches(&cleaned)
            .map_err(|source| self.ignore_error(source))
    }

    fn ignore_error(&self, source: PatternError) -> ContextError {
        ContextError::IgnorePattern {
            file: self.ignore_file.clone().unwrap_or_default(),
            line: 0,
            source,
        }
    }
}

/// Builds the matcher of an ignore file, naming the line of a bad pattern.
fn ignore_matcher(file: &Path, text: &str) -> Result<PatternMatcher, ContextError> {
    let lines = pattern::read_ignore_file(text);
    for (line, text) in &lines {
        PatternMatcher::new(&[text])
            .and_then(|single| single.check_compiled())
            .map_err(|source| ContextError::IgnorePattern {
                file: file.to_path_buf(),
                line: *line,
                source,
            })?;
    }
    let patterns: Vec<&str> = lines.iter().map(|(_, p)| p.as_str()).collect();
    PatternMatcher::new(&patterns).map_err(|source| ContextError::IgnorePattern {
        file: file.to_path_buf(),
        line: 0,
        source,
    })
}

/// Builds the matcher of `--exclude` flags, naming the bad pattern.
fn exclude_matcher(patterns: &[String]) -> Result<PatternMatcher, ContextError> {
    for pattern in patterns {
        PatternMatcher::new(&[pattern])
            .and_then(|single| single.check_compiled())
            .map_err(|source| ContextError::ExcludePattern {
                pattern: pattern.clone(),
                source,
            })?;
    }
    PatternMatcher::new(patterns).map_err(|source| ContextError::ExcludePattern {
        pattern: patterns.join(" "),
        source,
    })
}
