//! Source selection against real directories: .dockerignore, wildcards, --exclude, --parents,
//! symlinks kept inside the context, and BuildKit's not-found message.

mod context_support;

use context_support::write;
use rbuild::context::{Context, ContextError, FileKind, SelectOptions, Selection};
use std::os::unix::fs::symlink;

/// Every selected entry as "context/path" (matches in order, entries in walk order).
fn selected(selection: &Selection) -> Vec<String> {
    selection
        .matches
        .iter()
        .flat_map(|m| m.entries.iter().map(move |e| m.context_path_of(e)))
        .collect()
}

fn select(context: &Context, source: &str) -> Selection {
    context.select(source, &SelectOptions::default()).unwrap()
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, "app.py", "print(1)\n");
    write(root, "keep.log", "keep\n");
    write(root, "src/main.rs", "fn main() {}\n");
    write(root, "src/debug.log", "noise\n");
    write(root, "src/lib/util.rs", "\n");
    write(root, "src/lib/trace.log", "noise\n");
    write(root, "node_modules/junk/x.js", "junk\n");
    write(root, "docs/README.md", "readme\n");
    write(root, "docs/guide.md", "guide\n");
    write(root, "docs/img/logo.png", "png\n");
    dir
}

#[test]
fn dockerignore_excludes_with_exceptions_and_double_star() {
    let dir = tree();
    write(
        dir.path(),
        ".dockerignore",
        "# build junk\nnode_modules\n**/*.log\n!keep.log\n\n/docs\n!docs/README.md\n",
    );
    let context = Context::open(dir.path(), None).unwrap();
    assert_eq!(
        selected(&select(&context, ".")),
        [
            "",
            ".dockerignore",
            "Dockerfile",
            "app.py",
            "docs",
            "docs/README.md",
            "keep.log",
            "src",
            "src/lib",
            "src/lib/util.rs",
            "src/main.rs"
        ]
    );
    // An excluded directory re-included for one exception holds only that exception.
    assert_eq!(
        selected(&select(&context, "docs")),
        ["docs", "docs/README.md"]
    );
    let missing = context
        .select("docs/guide.md", &SelectOptions::default())
        .unwrap_err();
    assert_eq!(missing.to_string(), "\"/docs/guide.md\": not found");
    assert!(matches!(
        context.select("node_modules", &SelectOptions::default()),
        Err(ContextError::NotFound(_))
    ));
    assert!(context.is_ignored("src/lib/trace.log").unwrap());
    assert!(!context.is_ignored("keep.log").unwrap());
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    let dir = tree();
    write(dir.path(), ".dockerignore", "app.py\n");
    write(dir.path(), "build/web.Dockerfile", "FROM scratch\n");
    write(dir.path(), "build/web.Dockerfile.dockerignore", "docs\n");
    let dockerfile = dir.path().join("build/web.Dockerfile");
    let context = Context::open(dir.path(), Some(&dockerfile)).unwrap();
    assert!(
        context
            .ignore_file()
            .unwrap()
            .ends_with("web.Dockerfile.dockerignore")
    );
    select(&context, "app.py");
    assert!(context.select("docs", &SelectOptions::default()).is_err());
    // Without its own ignore file, a Dockerfile gets the root one.
    let plain = Context::open(dir.path(), Some(&dir.path().join("Dockerfile"))).unwrap();
    assert!(plain.select("app.py", &SelectOptions::default()).is_err());
}

#[test]
fn bad_ignore_pattern_names_file_and_line() {
    let dir = tree();
    write(dir.path(), ".dockerignore", "ok\n# comment\n[\n");
    let error = Context::open(dir.path(), None).unwrap_err().to_string();
    assert!(error.contains(".dockerignore:3:"), "{error}");
    // Valid for filepath.Match, not for Go's regexp (the range l-O): named up front.
    write(dir.path(), ".dockerignore", "ok\n[Local-Only]/\n");
    let error = Context::open(dir.path(), None).unwrap_err().to_string();
    assert!(error.contains(".dockerignore:2:"), "{error}");
}

#[test]
fn sources_cannot_climb_out_of_the_context() {
    let dir = tree();
    let context = Context::open(&dir.path().join("src"), None).unwrap();
    let error = context
        .select("../../../etc/passwd", &SelectOptions::default())
        .unwrap_err();
    assert_eq!(error.to_string(), "\"/etc/passwd\": not found");
    // ".." stops at the context root: "../main.rs" is the root's main.rs.
    assert_eq!(selected(&select(&context, "../main.rs")), ["main.rs"]);
}

#[test]
fn wildcards_match_per_component_and_skip_matched_directories() {
    let dir = tree();
    write(dir.path(), "a1.txt", "1");
    write(dir.path(), "a2.txt", "2");
    write(dir.path(), "ab.txt", "b");
    write(dir.path(), "x/a.txt", "x");
    write(dir.path(), "y/a.txt", "y");
    write(dir.path(), "y/deeper/a.txt", "no");
    write(dir.path(), "lit*eral", "star");
    let context = Context::open(dir.path(), None).unwrap();
    assert_eq!(
        selected(&select(&context, "a?.txt")),
        ["a1.txt", "a2.txt", "ab.txt"]
    );
    assert_eq!(
        selected(&select(&context, "a[0-9].txt")),
        ["a1.txt", "a2.txt"]
    );
    assert_eq!(
        selected(&select(&context, "*/a.txt")),
        ["x/a.txt", "y/a.txt"]
    );
    assert_eq!(selected(&select(&context, "/./src/*.rs")), ["src/main.rs"]);
    assert_eq!(selected(&select(&context, "lit[*]eral")), ["lit*eral"]);
    // A matched directory is a match of its own: its contents, not walked for the pattern.
    let docs = select(&context, "d*");
    assert_eq!(docs.matches.len(), 1);
    assert_eq!(docs.matches[0].kind, FileKind::Dir);
    assert_eq!(docs.matches[0].name, "docs");
    // BuildKit allows a wildcard that matches nothing.
    assert!(select(&context, "nothing*").is_empty());
    assert!(select(&context, "nodir/*").is_empty());
    // fsutil ignores filepath.Match's syntax error: a malformed wildcard matches nothing.
    assert!(select(&context, "a[").is_empty());
}

#[test]
fn directory_source_copies_contents_relative_to_it() {
    let dir = tree();
    let context = Context::open(dir.path(), None).unwrap();
    let selection = select(&context, "./src/");
    let only = &selection.matches[0];
    assert_eq!(only.kind, FileKind::Dir);
    let relative: Vec<&str> = only.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        relative,
        [
            "",
            "debug.log",
            "lib",
            "lib/trace.log",
            "lib/util.rs",
            "main.rs"
        ]
    );
    assert_eq!(
        only.host_path_of(&only.entries[5]),
        dir.path().canonicalize().unwrap().join("src/main.rs")
    );
    let file = select(&context, "src/main.rs");
    assert_eq!(file.matches[0].kind, FileKind::File);
    assert_eq!(file.matches[0].name, "main.rs");
}

#[test]
fn exclude_flag_filters_relative_to_the_copied_directory() {
    let dir = tree();
    let context = Context::open(dir.path(), None).unwrap();
    let options = SelectOptions {
        excludes: vec!["*.log".into(), "lib".into(), "!lib/util.rs".into()],
        parents: false,
    };
    let selection = context.select("src", &options).unwrap();
    let relative: Vec<&str> = selection.matches[0]
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(relative, ["", "lib", "lib/util.rs", "main.rs"]);
    let options = SelectOptions {
        excludes: vec!["*.md".into()],
        parents: false,
    };
    assert_eq!(
        selected(&context.select("docs/*", &options).unwrap()),
        ["docs/img", "docs/img/logo.png"]
    );
    let bad = SelectOptions {
        excludes: vec!["[".into()],
        parents: false,
    };
    assert!(
        context
            .select("src", &bad)
            .unwrap_err()
            .to_string()
            .starts_with("--exclude=[")
    );
}

#[test]
fn parents_keep_the_path_from_the_root_or_the_pivot() {
    let dir = tree();
    write(dir.path(), "x/a.txt", "x");
    write(dir.path(), "y/a.txt", "y");
    write(dir.path(), "y/b.bin", "b");
    let context = Context::open(dir.path(), None).unwrap();
    let parents = SelectOptions {
        excludes: vec![],
        parents: true,
    };
    let selection = context.select("./x/a.txt", &parents).unwrap();
    let relative: Vec<&str> = selection.matches[0]
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(relative, ["", "x", "x/a.txt"]);
    let selection = context.select("*/a.txt", &parents).unwrap();
    let relative: Vec<&str> = selection.matches[0]
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(relative, ["", "x", "x/a.txt", "y", "y/a.txt"]);
    // The /./ pivot: the part before it is left out of the destination path.
    let selection = context.select("src/./lib/*.rs", &parents).unwrap();
    assert_eq!(selection.matches[0].context_path, "src");
    let relative: Vec<&str> = selection.matches[0]
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(relative, ["", "lib", "lib/util.rs"]);
    // A directory keeps all of its contents.
    let selection = context.select("docs/img", &parents).unwrap();
    let relative: Vec<&str> = selection.matches[0]
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(relative, ["", "docs", "docs/img", "docs/img/logo.png"]);
}

#[test]
fn symlinks_stay_symlinks_and_resolve_inside_the_context() {
    let dir = tree();
    let root = dir.path();
    write(root, "data/secret.txt", "inside");
    symlink("/etc", root.join("etc-link")).unwrap();
    symlink("/data", root.join("abs-data")).unwrap();
    symlink("../../../../data/secret.txt", root.join("src/climb")).unwrap();
    symlink("app.py", root.join("app-link")).unwrap();
    symlink("loop-b", root.join("loop-a")).unwrap();
    symlink("loop-a", root.join("loop-b")).unwrap();
    let context = Context::open(root, None).unwrap();

    // /etc outside is never reached: the link resolves to <context>/etc, which does not exist.
    let error = context
        .select("etc-link/passwd", &SelectOptions::default())
        .unwrap_err();
    assert_eq!(error.to_string(), "\"/etc-link/passwd\": not found");
    // Absolute targets and climbing targets start from the context root.
    assert_eq!(
        selected(&select(&context, "abs-data/secret.txt")),
        ["data/secret.txt"]
    );
    let climb = select(&context, "src/climb");
    assert_eq!(climb.matches[0].context_path, "data/secret.txt");
    assert_eq!(climb.matches[0].name, "climb");
    // A named symlink source is followed; inside a copied directory it stays a symlink.
    assert_eq!(select(&context, "app-link").matches[0].kind, FileKind::File);
    let src = select(&context, "src");
    let link = src.matches[0]
        .entries
        .iter()
        .find(|e| e.path == "climb")
        .unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert!(matches!(
        context.select("loop-a", &SelectOptions::default()),
        Err(ContextError::SymlinkLoop(_))
    ));
}
