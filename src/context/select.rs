//! COPY/ADD source selection as BuildKit does it: sources relative to the context root (`..`
//! stops at the root), symlinks on the way resolved inside the context, wildcards matched per
//! component with Go's `filepath.Match`, a directory copying its contents, `--exclude`, and
//! `--parents` with its `/./` pivot. Only directory listings are read here, never contents.

use super::pattern::{self, MatchInfo, PatternMatcher};
use super::{Context, ContextError, exclude_matcher, io_error};
use rayon::prelude::*;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Subfolders of one folder from which they are walked on the rayon pool's threads.
const PARALLEL_SUBDIRS_MIN: usize = 8;

/// Symlinks followed while resolving one path, as Linux's limit.
const MAX_SYMLINKS: usize = 255;

/// The type of a context entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The kind of a `st_mode`.
    pub(crate) fn of_mode(mode: u32) -> FileKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => FileKind::File,
        }
    }

    /// One byte naming the kind, in cache keys and cache files.
    pub(crate) fn tag(self) -> u8 {
        match self {
            FileKind::File => b'f',
            FileKind::Dir => b'd',
            FileKind::Symlink => b'l',
            FileKind::Fifo => b'p',
            FileKind::Socket => b's',
            FileKind::CharDevice => b'c',
            FileKind::BlockDevice => b'b',
        }
    }

    pub(crate) fn of_tag(tag: u8) -> Option<FileKind> {
        [
            FileKind::File,
            FileKind::Dir,
            FileKind::Symlink,
            FileKind::Fifo,
            FileKind::Socket,
            FileKind::CharDevice,
            FileKind::BlockDevice,
        ]
        .into_iter()
        .find(|kind| kind.tag() == tag)
    }

    pub(crate) fn of_dir_entry(file_type: nix::dir::Type) -> FileKind {
        match file_type {
            nix::dir::Type::Directory => FileKind::Dir,
            nix::dir::Type::Symlink => FileKind::Symlink,
            nix::dir::Type::Fifo => FileKind::Fifo,
            nix::dir::Type::Socket => FileKind::Socket,
            nix::dir::Type::CharacterDevice => FileKind::CharDevice,
            nix::dir::Type::BlockDevice => FileKind::BlockDevice,
            nix::dir::Type::File => FileKind::File,
        }
    }

    pub(crate) fn of(file_type: FileType) -> FileKind {
        if file_type.is_dir() {
            FileKind::Dir
        } else if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_char_device() {
            FileKind::CharDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::File
        }
    }
}

/// Flags of one COPY/ADD that shape what a source selects.
#[derive(Debug, Clone, Default)]
pub struct SelectOptions {
    /// `--exclude` patterns (dockerignore semantics), relative to the copied directory.
    pub excludes: Vec<String>,
    /// `--parents`: keep the path from the context root (or from a `/./` pivot).
    pub parents: bool,
}

/// One entry to copy, relative to its [`Match`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedEntry {
    /// Path relative to the match; empty for the match itself.
    pub path: String,
    pub kind: FileKind,
}

/// One path a source resolved to.
#[derive(Debug, Clone)]
pub struct Match {
    /// The matched path relative to the context root, as named (before a final symlink is
    /// followed); empty for the root.
    pub source_path: String,
    /// The name the match takes inside a directory destination (its base name).
    pub name: String,
    /// Where the (followed) match lives on the host.
    pub host_path: PathBuf,
    /// The followed match's path relative to the context root.
    pub context_path: String,
    /// `Dir`: the contents are copied; anything else: the match itself.
    pub kind: FileKind,
    /// What to copy, parents before children, siblings sorted by name. For a directory the
    /// first entry is the directory itself (path ""), whose mode a new destination takes.
    pub entries: Vec<SelectedEntry>,
}

impl Match {
    /// The host path of one of this match's entries.
    pub fn host_path_of(&self, entry: &SelectedEntry) -> PathBuf {
        if entry.path.is_empty() {
            self.host_path.clone()
        } else {
            self.host_path.join(&entry.path)
        }
    }

    /// The path of one of this match's entries relative to the context root.
    pub fn context_path_of(&self, entry: &SelectedEntry) -> String {
        join(&self.context_path, &entry.path)
    }
}

/// What one COPY/ADD source selects from the context. A wildcard that matches nothing
/// selects nothing, as BuildKit (AllowEmptyWildcard); a plain path that names nothing is
/// [`ContextError::NotFound`].
#[derive(Debug, Clone)]
pub struct Selection {
    /// The source as written in the Dockerfile.
    pub source: String,
    pub parents: bool,
    pub matches: Vec<Match>,
}

impl Selection {
    /// True when nothing was selected (a wildcard without matches).
    pub fn is_empty(&self) -> bool {
        self.matches.is_empty()
    }
}

/// An `--exclude` pattern that failed while matching.
fn exclude_failed(source: pattern::PatternError) -> ContextError {
    ContextError::ExcludePattern {
        pattern: source.pattern().to_string(),
        source,
    }
}

pub(super) fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => dir.to_string(),
        (false, false) => {
            let mut joined = String::with_capacity(dir.len() + 1 + name.len());
            joined.push_str(dir);
            joined.push('/');
            joined.push_str(name);
            joined
        }
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Filters applied while walking a match: the ignore file (paths relative to the context
/// root), `--exclude` and the `--parents` include pattern (paths relative to the match).
struct WalkFilter<'a> {
    /// The match's path relative to the context root.
    root: &'a str,
    ignore: &'a PatternMatcher,
    exclude: Option<&'a PatternMatcher>,
    include: Option<&'a PatternMatcher>,
}

#[derive(Clone, Default)]
struct WalkState {
    ignore: MatchInfo,
    exclude: MatchInfo,
    include: MatchInfo,
}

/// Whether an unmatched include pattern may still match below `dir` (fsutil's filter).
fn include_may_match_under(include: &PatternMatcher, dir: &str) -> bool {
    const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];
    let dir_slash = format!("{dir}/");
    include
        .patterns()
        .iter()
        .filter(|p| !p.is_exclusion())
        .any(|p| {
            let text = p.as_str();
            let text = text.strip_suffix("/**").unwrap_or(text);
            let text = text.strip_suffix("/*").unwrap_or(text);
            text.contains(PATTERN_CHARS) || format!("{text}/").starts_with(&dir_slash)
        })
}

impl Context {
    /// Selects what one COPY/ADD source names in the context.
    pub fn select(&self, source: &str, options: &SelectOptions) -> Result<Selection, ContextError> {
        let exclude = if options.excludes.is_empty() {
            None
        } else {
            Some(exclude_matcher(&options.excludes)?)
        };
        let matches = if options.parents {
            self.select_parents(source, exclude.as_ref())?
        } else {
            self.select_plain(source, exclude.as_ref())?
        };
        Ok(Selection {
            source: source.to_string(),
            parents: options.parents,
            matches,
        })
    }

    fn select_plain(
        &self,
        source: &str,
        exclude: Option<&PatternMatcher>,
    ) -> Result<Vec<Match>, ContextError> {
        let cleaned = pattern::clean(&format!("/{source}"));
        let relative = cleaned.trim_start_matches('/');
        let components: Vec<&str> = relative.split('/').filter(|c| !c.is_empty()).collect();
        let Some(first_wild) = components.iter().position(|c| pattern::has_wildcard(c)) else {
            let Some((real, kind)) = self.resolve(relative, true)? else {
                return Err(ContextError::NotFound(cleaned));
            };
            if !self.is_visible(&real, kind)? {
                return Err(ContextError::NotFound(cleaned));
            }
            return Ok(vec![self.make_match(relative, &real, kind, exclude, None)?]);
        };
        let base = components.get(..first_wild).unwrap_or_default().join("/");
        let wild = components.get(first_wild..).unwrap_or_default().join("/");
        let Some((base_real, FileKind::Dir)) = self.resolve(&base, true)? else {
            return Ok(Vec::new());
        };
        let depth = components.len() - first_wild;
        let mut found = Vec::new();
        self.find_wildcard_matches(&base_real, "", &wild, depth, &mut found)?;
        let mut matches = Vec::new();
        for (relative_to_base, _) in found {
            if let Some(exclude) = exclude {
                let excluded = exclude
                    .matches_or_parent_matches(&relative_to_base)
                    .map_err(exclude_failed)?;
                if excluded {
                    continue;
                }
            }
            let named = join(&base, &relative_to_base);
            let Some((real, kind)) = self.resolve(&named, true)? else {
                return Err(ContextError::NotFound(format!("/{named}")));
            };
            if !self.is_visible(&real, kind)? {
                continue;
            }
            matches.push(self.make_match(&named, &real, kind, exclude, None)?);
        }
        Ok(matches)
    }

    /// `--parents`: the part before `/./` (or the root) is copied as a directory whose
    /// contents are limited to the rest of the source, taken as an include pattern.
    fn select_parents(
        &self,
        source: &str,
        exclude: Option<&PatternMatcher>,
    ) -> Result<Vec<Match>, ContextError> {
        let (pivot, rest) = match source.split_once("/./") {
            Some((pivot, rest)) => (pivot, rest),
            None => ("/", source),
        };
        let include_pattern = pattern::clean(&format!("/{rest}"));
        let include_pattern = include_pattern.trim_start_matches('/');
        let include = PatternMatcher::new(&[include_pattern])
            .and_then(|include| include.check_compiled().map(|()| include))
            .map_err(|error| ContextError::ParentsPattern {
                source_path: source.to_string(),
                source: error,
            })?;
        let pivot_clean = pattern::clean(&format!("/{pivot}"));
        let pivot_relative = pivot_clean.trim_start_matches('/');
        let Some((real, kind)) = self.resolve(pivot_relative, true)? else {
            return Err(ContextError::NotFound(pivot_clean));
        };
        if kind != FileKind::Dir {
            return Err(ContextError::NotFound(pivot_clean));
        }
        Ok(vec![self.make_match(
            pivot_relative,
            &real,
            kind,
            exclude,
            Some(&include),
        )?])
    }

    fn make_match(
        &self,
        named: &str,
        real: &str,
        kind: FileKind,
        exclude: Option<&PatternMatcher>,
        include: Option<&PatternMatcher>,
    ) -> Result<Match, ContextError> {
        let host_path = self.host_path(real);
        let mut entries = vec![SelectedEntry {
            path: String::new(),
            kind,
        }];
        if kind == FileKind::Dir {
            let filter = WalkFilter {
                root: real,
                ignore: &self.ignore,
                exclude,
                include,
            };
            let state = self.state_of_dir(real)?;
            self.walk(&filter, &host_path, "", &state, &mut entries)?;
        }
        Ok(Match {
            source_path: named.to_string(),
            name: base_name(named),
            host_path,
            context_path: real.to_string(),
            kind,
            entries,
        })
    }

    fn host_path(&self, relative: &str) -> PathBuf {
        if relative.is_empty() {
            self.root.clone()
        } else {
            self.root.join(relative)
        }
    }

    /// The ignore matcher's state for a directory, so that walking inside it matches as the
    /// full-context walk would.
    fn state_of_dir(&self, real: &str) -> Result<WalkState, ContextError> {
        let mut state = WalkState::default();
        if real.is_empty() || self.ignore.is_empty() {
            return Ok(state);
        }
        let mut prefix = String::new();
        for component in real.split('/') {
            prefix = join(&prefix, component);
            let (_, info) = self
                .ignore
                .matches_using_parent_results(&prefix, &state.ignore)
                .map_err(|source| self.ignore_error(source))?;
            state.ignore = info;
        }
        Ok(state)
    }

    /// The entries of the host directory `dir`, sorted by name, each named `prefix/name`
    /// (just `name` when `prefix` is empty).
    fn read_sorted_dir(
        &self,
        dir: &Path,
        prefix: &str,
    ) -> Result<Vec<(String, FileKind)>, ContextError> {
        self.listings.sorted_entries(dir, prefix)
    }

    /// Walks a selected directory, appending what it keeps to `out`. An entry hidden by a
    /// filter is skipped; a hidden directory is still walked when an exception may re-include
    /// something inside it, and is kept only if something inside it is. Subdirectories are
    /// walked in parallel. Returns whether anything was kept.
    fn walk(
        &self,
        filter: &WalkFilter,
        host_dir: &Path,
        match_dir: &str,
        state: &WalkState,
        out: &mut Vec<SelectedEntry>,
    ) -> Result<bool, ContextError> {
        // Children that pass the filters, in order; directories with whether they are hidden
        // and the matcher state their own children start from.
        let mut kept = Vec::new();
        let mut subdirs = Vec::new();
        let mut context_path = String::new();
        for (match_path, kind) in self.read_sorted_dir(host_dir, match_dir)? {
            let is_dir = kind == FileKind::Dir;
            let mut child_state = WalkState::default();
            let mut hidden = false;

            let context_path = if filter.root.is_empty() {
                match_path.as_str()
            } else {
                context_path.clear();
                context_path.push_str(filter.root);
                context_path.push('/');
                context_path.push_str(&match_path);
                context_path.as_str()
            };
            let (ignored, info) = filter
                .ignore
                .matches_using_parent_results_of(context_path, &state.ignore, is_dir)
                .map_err(|source| self.ignore_error(source))?;
            child_state.ignore = info;
            if ignored {
                if !is_dir || !filter.ignore.exception_may_match_under(context_path) {
                    continue;
                }
                hidden = true;
            }
            if let Some(exclude) = filter.exclude {
                let (excluded, info) = exclude
                    .matches_using_parent_results_of(&match_path, &state.exclude, is_dir)
                    .map_err(exclude_failed)?;
                child_state.exclude = info;
                if excluded {
                    if !is_dir || !exclude.exception_may_match_under(&match_path) {
                        continue;
                    }
                    hidden = true;
                }
            }
            if let Some(include) = filter.include {
                let (included, info) = include
                    .matches_using_parent_results_of(&match_path, &state.include, is_dir)
                    .map_err(|source| ContextError::ParentsPattern {
                        source_path: match_path.clone(),
                        source,
                    })?;
                child_state.include = info;
                if !included {
                    if !is_dir || !include_may_match_under(include, &match_path) {
                        continue;
                    }
                    hidden = true;
                }
            }
            if is_dir {
                subdirs.push((kept.len(), hidden, child_state));
            }
            kept.push(SelectedEntry {
                path: match_path,
                kind,
            });
        }

        let walk_subdir = |(at, _, child_state): &(usize, bool, WalkState)| {
            let mut inside = Vec::new();
            let match_path = kept.get(*at).map_or("", |entry| entry.path.as_str());
            let name = match_path.rsplit('/').next().unwrap_or_default();
            let kept_inside = self.walk(
                filter,
                &host_dir.join(name),
                match_path,
                child_state,
                &mut inside,
            )?;
            Ok((kept_inside, inside))
        };
        // The pool only for many folders: waking its threads costs a small walk more than it
        // saves (a warm build of a small context took 12 ms instead of 8).
        let walked: Vec<(bool, Vec<SelectedEntry>)> =
            if self.parallel && subdirs.len() >= PARALLEL_SUBDIRS_MIN {
                subdirs
                    .par_iter()
                    .map(walk_subdir)
                    .collect::<Result<_, ContextError>>()?
            } else {
                subdirs
                    .iter()
                    .map(walk_subdir)
                    .collect::<Result<_, ContextError>>()?
            };

        out.reserve(kept.len() + walked.iter().map(|(_, inside)| inside.len()).sum::<usize>());
        let mut kept_any = false;
        let mut subdirs = subdirs.iter().zip(walked).peekable();
        for (at, entry) in kept.into_iter().enumerate() {
            match subdirs.next_if(|((dir_at, ..), _)| *dir_at == at) {
                Some(((_, hidden, ..), (kept_inside, inside))) => {
                    if !hidden || kept_inside {
                        out.push(entry);
                        out.extend(inside);
                        kept_any = true;
                    }
                }
                None => {
                    out.push(entry);
                    kept_any = true;
                }
            }
        }
        Ok(kept_any)
    }

    /// True when `real` (a resolved path relative to the root) is part of the context as
    /// BuildKit receives it: not ignored, or an ignored directory holding something
    /// re-included by an exception.
    fn is_visible(&self, real: &str, kind: FileKind) -> Result<bool, ContextError> {
        if real.is_empty() || self.ignore.is_empty() {
            return Ok(true);
        }
        let ignored = self
            .ignore
            .matches_or_parent_matches(real)
            .map_err(|source| self.ignore_error(source))?;
        if !ignored {
            return Ok(true);
        }
        if kind != FileKind::Dir || !self.ignore.exception_may_match_under(real) {
            return Ok(false);
        }
        let filter = WalkFilter {
            root: real,
            ignore: &self.ignore,
            exclude: None,
            include: None,
        };
        let state = self.state_of_dir(real)?;
        let mut inside = Vec::new();
        self.walk(&filter, &self.host_path(real), "", &state, &mut inside)
    }

    /// Walks the wildcard base down to the pattern's depth and collects the paths (relative to
    /// the base) that match, not descending into a matched directory: fsutil's
    /// `ResolveWildcards`.
    fn find_wildcard_matches(
        &self,
        base_real: &str,
        relative: &str,
        wild: &str,
        depth_left: usize,
        found: &mut Vec<(String, FileKind)>,
    ) -> Result<(), ContextError> {
        if depth_left == 0 {
            return Ok(());
        }
        let host_dir = self.host_path(&join(base_real, relative));
        for (candidate, kind) in self.read_sorted_dir(&host_dir, relative)? {
            let context_path = join(base_real, &candidate);
            if !self.is_visible(&context_path, kind)? {
                continue;
            }
            // fsutil ignores filepath.Match's error: a malformed pattern matches nothing.
            let matched = pattern::go_match(wild, &candidate).unwrap_or(false);
            if matched {
                found.push((candidate, kind));
            } else if kind == FileKind::Dir {
                self.find_wildcard_matches(base_real, &candidate, wild, depth_left - 1, found)?;
            }
        }
        Ok(())
    }

    /// Resolves `relative` inside the context the way a chroot would: `..` stops at the root,
    /// absolute link targets start from the root, so nothing outside is ever reached. The
    /// last component is followed only when `follow_last`. Returns the real path relative to
    /// the root and its type, or `None` when it does not exist.
    pub(crate) fn resolve(
        &self,
        relative: &str,
        follow_last: bool,
    ) -> Result<Option<(String, FileKind)>, ContextError> {
        let mut pending: std::collections::VecDeque<String> = relative
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut kind = FileKind::Dir;
        let mut links = 0;
        while let Some(component) = pending.pop_front() {
            if component == "." {
                continue;
            }
            if component == ".." {
                resolved.pop();
                kind = FileKind::Dir;
                continue;
            }
            let mut candidate = resolved.clone();
            candidate.push(component.clone());
            let candidate_path = candidate.join("/");
            let host = self.host_path(&candidate_path);
            let metadata = match std::fs::symlink_metadata(&host) {
                Ok(metadata) => metadata,
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(None);
                }
                Err(error) => return Err(io_error(&host)(error)),
            };
            let this_kind = FileKind::of(metadata.file_type());
            if this_kind == FileKind::Symlink && (follow_last || !pending.is_empty()) {
                if !self.is_visible(&candidate_path, this_kind)? {
                    return Ok(None);
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ContextError::SymlinkLoop(relative.to_string()));
                }
                let target = std::fs::read_link(&host).map_err(io_error(&host))?;
                let Some(target) = target.to_str() else {
                    return Ok(None);
                };
                if target.starts_with('/') {
                    resolved.clear();
                }
                for part in target.split('/').rev() {
                    if !part.is_empty() {
                        pending.push_front(part.to_string());
                    }
                }
                kind = FileKind::Dir;
                continue;
            }
            if !pending.is_empty() && this_kind != FileKind::Dir {
                return Ok(None);
            }
            resolved.push(component);
            kind = this_kind;
        }
        Ok(Some((resolved.join("/"), kind)))
    }
}
