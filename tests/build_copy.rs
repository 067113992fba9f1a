//! `rbuild build`, COPY and ADD: sources, globs, destination rules, `--from`, `--chown`,
//! `--chmod`, `--link`, `--parents`, `--exclude`, local archives, URLs. Each test builds a real
//! image from the offline busybox base and reads the files it ends up with.

mod build_support;

use build_support::{Context, HttpServer, Served, TestStore};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

#[test]
fn copy_destination_rules() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         COPY a.txt /renamed\n\
         COPY a.txt b.txt /several/\n\
         COPY a.txt /made/deep/\n\
         COPY a.txt /tmp\n\
         COPY dir /contents\n\
         COPY dir/ /contents-slash/\n\
         WORKDIR /work\n\
         COPY a.txt .\n\
         COPY b.txt relative/\n\
         COPY b.txt relative-file\n\
         RUN ln -s /victim /link && ln -s victim-dir /tmp/dirlink && mkdir /tmp/victim-dir\n\
         COPY a.txt /link\n\
         COPY b.txt /tmp/dirlink\n",
    )
    .file("a.txt", "a\n")
    .file("b.txt", "b\n")
    .file("dir/one", "1\n")
    .file("dir/sub/two", "2\n");
    let built = store.build(&context, "copy-dest", &[]);
    assert_eq!(built.read("/renamed"), "a\n");
    assert_eq!(built.list("/several"), ["a.txt", "b.txt"]);
    assert_eq!(built.read("/made/deep/a.txt"), "a\n");
    // An existing directory without a trailing slash is still a directory.
    assert_eq!(built.read("/tmp/a.txt"), "a\n");
    // A directory source copies its contents, not itself.
    assert_eq!(built.list("/contents"), ["one", "sub"]);
    assert_eq!(built.read("/contents/sub/two"), "2\n");
    assert_eq!(built.list("/contents-slash"), ["one", "sub"]);
    assert_eq!(built.read("/work/a.txt"), "a\n");
    assert_eq!(built.read("/work/relative/b.txt"), "b\n");
    assert_eq!(built.read("/work/relative-file"), "b\n");
    // A symlink named as the destination is written through, as BuildKit does.
    assert_eq!(
        std::fs::read_link(built.path("/link")).unwrap(),
        std::path::Path::new("/victim")
    );
    assert_eq!(built.read("/victim"), "a\n");
    assert_eq!(built.read("/tmp/victim-dir/b.txt"), "b\n");
    // Created parents belong to root with mode 0755.
    assert_eq!(built.owner_mode("/made/deep"), (0o755, 0, 0));

    let several = Context::new("FROM busybox\nCOPY a.txt b.txt /no-slash\n")
        .file("a.txt", "a\n")
        .file("b.txt", "b\n");
    let log = store.build_fails(&several, &[]);
    assert!(
        log.contains("destination must be a directory and end with a /"),
        "{log}"
    );
    let missing = Context::new("FROM busybox\nCOPY nothing.txt /\n");
    let log = store.build_fails(&missing, &[]);
    assert!(
        log.contains("nothing.txt") && log.contains("not found"),
        "{log}"
    );
    assert!(log.contains("Dockerfile:2"), "no file:line in:\n{log}");
    store.fsck();
}

#[test]
fn copy_globs_symlinks_owners_modes_and_times() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         COPY *.txt /globbed/\n\
         COPY src/*/file.c /one-level/\n\
         COPY link.txt /followed\n\
         COPY tree /tree/\n\
         COPY exec.sh owned.txt /kept/\n",
    )
    .file("a.txt", "a\n")
    .file("b.txt", "b\n")
    .file("c.md", "c\n")
    .file("src/x/file.c", "x\n")
    .file("src/y/file.c", "y\n")
    .symlink("link.txt", "a.txt")
    .file("tree/target", "t\n")
    .symlink("tree/link", "target")
    .bytes("exec.sh", b"#!/bin/sh\n", 0o755)
    .file("owned.txt", "owned\n");
    let owned = context.path().join("owned.txt");
    std::os::unix::fs::chown(&owned, Some(1234), Some(5678)).unwrap();
    let mtime = filetime_of(1_500_000_000);
    set_mtime(&owned, mtime);
    let built = store.build(&context, "copy-globs", &[]);
    assert_eq!(
        built.list("/globbed"),
        ["a.txt", "b.txt", "link.txt", "owned.txt"]
    );
    assert_eq!(built.list("/one-level"), ["file.c"]);
    // A top-level symlink source is followed; one inside a directory is copied as a link.
    assert!(
        std::fs::symlink_metadata(built.path("/followed"))
            .unwrap()
            .is_file()
    );
    assert_eq!(built.read("/followed"), "a\n");
    assert_eq!(
        std::fs::read_link(built.path("/tree/link")).unwrap(),
        std::path::Path::new("target")
    );
    // Modes are kept; owners from the context become root; mtimes are kept.
    assert_eq!(built.owner_mode("/kept/exec.sh"), (0o755, 0, 0));
    assert_eq!(built.owner_mode("/kept/owned.txt"), (0o644, 0, 0));
    assert_eq!(built.mtime("/kept/owned.txt"), 1_500_000_000);
}

#[test]
fn copy_from_a_stage_by_name_and_index_and_from_an_image_keeps_owners() {
    let store = TestStore::with_busybox();
    let image = Context::new("FROM busybox\nRUN echo from-image > /image.txt\n");
    store.build(&image, "copy-source-image", &[]);
    let context = Context::new(
        "FROM busybox AS build\n\
         RUN mkdir -p /out/sub && echo built > /out/sub/artifact && chown -R app:app /out \
             && chmod 750 /out/sub\n\
         FROM busybox\n\
         COPY --from=build /out /by-name/\n\
         COPY --from=0 /out/sub/artifact /by-index\n\
         COPY --from=copy-source-image /image.txt /from-image\n\
         COPY --from=build --chown=0:0 /out/sub /rechowned/\n",
    );
    let built = store.build(&context, "copy-from", &[]);
    assert_eq!(built.read("/by-name/sub/artifact"), "built\n");
    assert_eq!(built.owner_mode("/by-name/sub"), (0o750, 1000, 1000));
    assert_eq!(built.owner_mode("/by-name/sub/artifact").1, 1000);
    // The destination a directory copy creates is 0755 root, whatever the source's.
    assert_eq!(built.owner_mode("/by-name"), (0o755, 0, 0));
    assert_eq!(built.read("/by-index"), "built\n");
    assert_eq!(built.read("/from-image"), "from-image\n");
    assert_eq!(built.owner_mode("/rechowned/artifact"), (0o644, 0, 0));
    assert_eq!(built.owner_mode("/rechowned"), (0o755, 0, 0));
}

#[test]
fn copy_chown_resolves_names_in_the_image() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN echo 'web:x:1500:2500::/srv:/bin/sh' >> /etc/passwd && echo 'www:x:2500:' >> /etc/group \
             && echo 'staff:x:3000:' >> /etc/group\n\
         COPY --chown=app:app a.txt /named\n\
         COPY --chown=web a.txt /user-only\n\
         COPY --chown=web:staff a.txt /user-group\n\
         COPY --chown=1234 a.txt /numeric-user\n\
         COPY --chown=1234:5678 dir /numeric/\n\
         COPY --chown=:staff a.txt /group-only\n\
         COPY --chown=nosuchuser:nosuchgroup a.txt /unknown\n\
         USER web\n\
         WORKDIR /srv/home\n\
         COPY a.txt /after-user\n",
    )
    .file("a.txt", "a\n")
    .file("dir/f", "f\n");
    let built = store.build(&context, "chown", &[]);
    let owner = |path: &str| {
        let (_, uid, gid) = built.owner_mode(path);
        (uid, gid)
    };
    assert_eq!(owner("/named"), (1000, 1000));
    // A user name alone takes the user's primary group from /etc/passwd.
    assert_eq!(owner("/user-only"), (1500, 2500));
    assert_eq!(owner("/user-group"), (1500, 3000));
    // A number alone is both uid and gid.
    assert_eq!(owner("/numeric-user"), (1234, 1234));
    assert_eq!(owner("/numeric"), (1234, 5678));
    assert_eq!(owner("/numeric/f"), (1234, 5678));
    assert_eq!(owner("/group-only"), (0, 3000));
    // Names the image does not know count as root, as in BuildKit (no error).
    assert_eq!(owner("/unknown"), (0, 0));
    // WORKDIR creates directories for USER the same way.
    assert_eq!(owner("/srv/home"), (1500, 2500));
    // USER does not change who owns what COPY writes.
    assert_eq!(owner("/after-user"), (0, 0));
}

#[test]
fn copy_chmod_octal_and_symbolic() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         COPY --chmod=640 a.txt /octal\n\
         COPY --chmod=0755 dir /octal-dir/\n\
         COPY --chmod=u+x,g+w a.txt /symbolic\n\
         COPY --chmod=a=rX dir /symbolic-dir/\n",
    )
    .file("a.txt", "a\n")
    .file("dir/sub/f", "f\n");
    std::fs::set_permissions(
        context.path().join("dir/sub"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let built = store.build(&context, "chmod", &[]);
    assert_eq!(built.owner_mode("/octal").0, 0o640);
    // --chmod is not applied to the destination directory a directory copy creates.
    assert_eq!(built.owner_mode("/octal-dir").0, 0o755);
    assert_eq!(built.owner_mode("/octal-dir/sub").0, 0o755);
    assert_eq!(built.owner_mode("/octal-dir/sub/f").0, 0o755);
    assert_eq!(built.owner_mode("/symbolic").0, 0o764);
    assert_eq!(built.owner_mode("/symbolic-dir/sub").0, 0o555);
    assert_eq!(built.owner_mode("/symbolic-dir/sub/f").0, 0o444);
}

#[test]
fn copy_link_parents_and_exclude() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN mkdir -p /linked/deeper /private && echo old > /linked/keep \
             && chown app /linked /private && chmod 700 /linked /private\n\
         COPY --link a.txt /linked/\n\
         COPY --link --chown=app a.txt /linked/deeper/\n\
         COPY a.txt /private/\n\
         COPY --parents src/*/main.c /parents/\n\
         COPY --parents ./src/./x/main.c /pivot/\n\
         COPY --exclude=*.log --exclude=secret --exclude=**/*.tmp logs/ /excluded/\n",
    )
    .file("a.txt", "a\n")
    .file("src/x/main.c", "x\n")
    .file("src/y/main.c", "y\n")
    .file("logs/keep.txt", "k\n")
    .file("logs/drop.log", "d\n")
    .file(
        "logs/nested/also.log",
        "kept: *.log matches at the top only\n",
    )
    .file("logs/nested/deep.tmp", "d\n")
    .file("logs/secret", "s\n");
    let built = store.build(&context, "copy-flags", &[]);
    assert_eq!(built.read("/linked/a.txt"), "a\n");
    assert_eq!(built.read("/linked/keep"), "old\n");
    // --link lays the copy over the image: its directories are the new layer's (0755, owned
    // by --chown or root), as BuildKit's merged layer makes them; a plain COPY keeps them.
    assert_eq!(built.owner_mode("/linked"), (0o755, 1000, 1000));
    assert_eq!(built.owner_mode("/linked/deeper"), (0o755, 1000, 1000));
    assert_eq!(built.owner_mode("/private"), (0o700, 1000, 0));
    assert_eq!(built.read("/parents/src/x/main.c"), "x\n");
    assert_eq!(built.read("/parents/src/y/main.c"), "y\n");
    assert_eq!(built.read("/pivot/x/main.c"), "x\n");
    assert!(!built.exists("/pivot/src"));
    assert_eq!(built.list("/excluded"), ["keep.txt", "nested"]);
    // Patterns match as in .dockerignore: `*.log` at the top only, `**/*.tmp` anywhere.
    assert_eq!(built.list("/excluded/nested"), ["also.log"]);
}

/// A tar holding `hello.txt` (owned 1234:5678, mode 0640) and `dir/inner.txt`.
fn sample_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, body: &[u8], mode: u32, uid: u64, gid: u64| {
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_400_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, body).unwrap();
    };
    add("hello.txt", b"hello from the archive\n", 0o640, 1234, 5678);
    add("dir/inner.txt", b"inner\n", 0o644, 0, 0);
    builder.into_inner().unwrap()
}

#[test]
fn add_extracts_local_archives_in_every_compression() {
    let store = TestStore::with_busybox();
    let tar = sample_tar();
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let bzip2 = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zstd = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let not_an_archive = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"just gzipped text\n").unwrap();
        e.finish().unwrap()
    };
    let context = Context::new(
        "FROM busybox\n\
         ADD plain.tar /plain/\n\
         ADD archive.tar.gz /gzip\n\
         ADD archive.tar.bz2 /bzip2/\n\
         ADD archive.tar.xz /xz/\n\
         ADD archive.tar.zst /zstd/\n\
         ADD text.gz /kept/\n\
         COPY archive.tar.gz /copied/\n",
    )
    .bytes("plain.tar", &tar, 0o644)
    .bytes("archive.tar.gz", &gzip, 0o644)
    .bytes("archive.tar.bz2", &bzip2, 0o644)
    .bytes("archive.tar.xz", &xz, 0o644)
    .bytes("archive.tar.zst", &zstd, 0o644)
    .bytes("text.gz", &not_an_archive, 0o644);
    let built = store.build(&context, "add-archives", &[]);
    for dir in ["/plain", "/gzip", "/bzip2", "/xz", "/zstd"] {
        assert_eq!(
            built.read(&format!("{dir}/hello.txt")),
            "hello from the archive\n",
            "{dir}"
        );
        assert_eq!(built.read(&format!("{dir}/dir/inner.txt")), "inner\n");
        assert_eq!(
            built.owner_mode(&format!("{dir}/hello.txt")),
            (0o640, 1234, 5678),
            "{dir}: the archive's owners and modes are kept"
        );
        assert_eq!(built.mtime(&format!("{dir}/hello.txt")), 1_400_000_000);
    }
    // A compressed file that is not a tar is copied as it is, and COPY never unpacks.
    assert_eq!(
        std::fs::read(built.path("/kept/text.gz")).unwrap(),
        not_an_archive
    );
    assert_eq!(
        std::fs::read(built.path("/copied/archive.tar.gz")).unwrap(),
        gzip
    );
}

#[test]
fn add_downloads_urls_with_checksum_name_mode_and_mtime() {
    let store = TestStore::with_busybox();
    let body = b"downloaded content\n".to_vec();
    let tar = sample_tar();
    let server = HttpServer::start(vec![
        (
            "/files/remote.txt",
            Served {
                body: body.clone(),
                last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()),
            },
        ),
        (
            "/files/with%20space.txt",
            Served {
                body: b"spaced\n".to_vec(),
                last_modified: None,
            },
        ),
        (
            "/files/remote.tar",
            Served {
                body: tar.clone(),
                last_modified: None,
            },
        ),
    ]);
    let url = server.url("/files/remote.txt");
    let checksum = rbuild::image::sha256_digest(&body).to_string();
    let context = Context::new(&format!(
        "FROM busybox\n\
         ADD {url} /downloads/\n\
         ADD --checksum={checksum} {url} /named-file\n\
         ADD --chmod=644 {url} /chmodded\n\
         ADD {url} /tmp\n\
         ADD {spaced_url} /spaced/\n\
         ADD {tar_url} /remote-archive/\n",
        tar_url = server.url("/files/remote.tar"),
        spaced_url = server.url("/files/with%20space.txt"),
    ));
    let built = store.build(&context, "add-url", &[]);
    assert_eq!(built.read("/downloads/remote.txt"), "downloaded content\n");
    assert_eq!(built.owner_mode("/downloads/remote.txt"), (0o600, 0, 0));
    assert_eq!(built.mtime("/downloads/remote.txt"), 784_111_777);
    assert_eq!(built.read("/named-file"), "downloaded content\n");
    assert_eq!(built.owner_mode("/chmodded").0, 0o644);
    // An existing directory is a directory destination even without a trailing slash.
    assert_eq!(built.read("/tmp/remote.txt"), "downloaded content\n");
    // The name is the decoded last segment of the URL's path.
    assert_eq!(built.read("/spaced/with space.txt"), "spaced\n");
    // Archives from URLs are not unpacked.
    assert_eq!(
        std::fs::read(built.path("/remote-archive/remote.tar")).unwrap(),
        tar
    );

    let wrong = rbuild::image::sha256_digest(b"something else").to_string();
    let bad = Context::new(&format!("FROM busybox\nADD --checksum={wrong} {url} /x\n"));
    let log = store.build_fails(&bad, &[]);
    assert!(
        log.contains("digest mismatch") || log.contains("checksum"),
        "{log}"
    );
    let local = Context::new(&format!(
        "FROM busybox\nADD --checksum={checksum} a.txt /x\n"
    ))
    .file("a.txt", "downloaded content\n");
    let log = store.build_fails(&local, &[]);
    assert!(
        log.contains("non-HTTP(S)") && log.contains("Dockerfile:2"),
        "{log}"
    );
    let copy_url = Context::new(&format!("FROM busybox\nCOPY {url} /x\n"));
    let log = store.build_fails(&copy_url, &[]);
    assert!(log.contains("can't be a URL for COPY"), "{log}");
    let missing = Context::new(&format!(
        "FROM busybox\nADD {} /x\n",
        server.url("/nothing-here")
    ));
    let log = store.build_fails(&missing, &[]);
    assert!(log.contains("404"), "{log}");
}

fn filetime_of(seconds: i64) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(seconds, 0)
}

fn set_mtime(path: &std::path::Path, mtime: nix::sys::time::TimeSpec) {
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &mtime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Runs git with a fixed identity; panics unless it succeeds; returns stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=rbuild",
            "-c",
            "user.email=rbuild@example.com",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn add_clones_git_repositories_at_a_ref_and_subdir() {
    build_support::require_tool("git");
    let store = TestStore::with_busybox();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir(&source).unwrap();
    git(&source, &["init", "-q"]);
    std::fs::write(source.join("README"), "version one\n").unwrap();
    std::fs::create_dir(source.join("sub")).unwrap();
    std::fs::write(source.join("sub/inner.txt"), "inner one\n").unwrap();
    git(&source, &["add", "."]);
    git(&source, &["commit", "-q", "-m", "one"]);
    git(&source, &["tag", "v1"]);
    let first = git(&source, &["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::write(source.join("README"), "version two\n").unwrap();
    git(&source, &["commit", "-q", "-am", "two"]);
    git(&source, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(source.join("README"), "feature branch\n").unwrap();
    git(&source, &["commit", "-q", "-am", "feature"]);
    git(&source, &["checkout", "-q", "main"]);
    let bare = work.path().join("repo.git");
    git(
        work.path(),
        &["clone", "-q", "--bare", "source", bare.to_str().unwrap()],
    );
    git(&bare, &["update-server-info"]);
    let server = HttpServer::start(HttpServer::files_under("/repo.git", &bare));
    let url = server.url("/repo.git");
    let context = Context::new(&format!(
        "FROM busybox\n\
         ADD {url} /default/\n\
         ADD {url}#v1 /tag/\n\
         ADD {url}#feature /branch/\n\
         ADD {url}#{first} /commit/\n\
         ADD {url}#main:sub /subdir/\n\
         ADD --keep-git-dir=true {url}#v1 /with-git/\n"
    ));
    let built = store.build(&context, "add-git", &[]);
    assert_eq!(built.read("/default/README"), "version two\n");
    assert_eq!(built.list("/default"), ["README", "sub"]);
    assert_eq!(built.read("/tag/README"), "version one\n");
    assert_eq!(built.read("/branch/README"), "feature branch\n");
    assert_eq!(built.read("/commit/README"), "version one\n");
    assert_eq!(built.list("/subdir"), ["inner.txt"]);
    assert_eq!(built.read("/subdir/inner.txt"), "inner one\n");
    assert!(built.exists("/with-git/.git/HEAD"));
    assert_eq!(built.owner_mode("/default/README"), (0o644, 0, 0));

    // A new commit on the branch is a new source (the key holds the commit the ref names);
    // the tag still names the old one and stays cached.
    std::fs::write(source.join("sub/inner.txt"), "inner two\n").unwrap();
    git(&source, &["commit", "-q", "-am", "three"]);
    git(&source, &["push", "-q", bare.to_str().unwrap(), "main"]);
    git(&bare, &["update-server-info"]);
    for (path, served) in HttpServer::files_under("/repo.git", &bare) {
        server.serve(&path, served);
    }
    let moved = Context::new(&format!(
        "FROM busybox\nADD {url}#v1 /tag/\nADD {url}#main:sub /subdir/\n"
    ));
    let built = store.build(&moved, "add-git-moved", &[]);
    assert_eq!(
        built.read("/subdir/inner.txt"),
        "inner two\n",
        "{}",
        built.log
    );
    let rebuilt = store.build(&moved, "add-git-moved", &[]);
    assert!(!rebuilt.log.contains("cache miss"), "{}", rebuilt.log);

    let bad = Context::new(&format!("FROM busybox\nADD {url}#no-such-ref /x/\n"));
    let log = store.build_fails(&bad, &[]);
    assert!(log.contains("no-such-ref"), "{log}");
}

#[test]
fn a_changed_remote_source_is_fetched_again_and_an_unchanged_one_is_cached() {
    let store = TestStore::with_busybox();
    let served = |body: &str| Served {
        body: body.as_bytes().to_vec(),
        last_modified: None,
    };
    let server = HttpServer::start(vec![("/data.txt", served("first\n"))]);
    let context = Context::new(&format!(
        "FROM busybox\nADD {} /data.txt\nRUN cat /data.txt > /copy\n",
        server.url("/data.txt")
    ));
    let built = store.build(&context, "remote-1", &[]);
    assert_eq!(built.read("/copy"), "first\n");
    assert_eq!(
        server.requests(),
        1,
        "one fetch keys the step and fills the layer"
    );
    let built = store.build(&context, "remote-2", &[]);
    assert_eq!(built.read("/copy"), "first\n");
    assert!(!built.log.contains("cache miss"), "{}", built.log);
    // BuildKit keys a URL by the digest of what it serves: new content, new layer.
    server.serve("/data.txt", served("second\n"));
    let built = store.build(&context, "remote-3", &[]);
    assert_eq!(built.read("/copy"), "second\n", "{}", built.log);
    assert_eq!(server.requests(), 3);
}

#[test]
fn reading_from_a_stage_not_yet_defined_fails_instead_of_waiting_forever() {
    let store = TestStore::with_busybox();
    let cycle = Context::new(
        "FROM busybox AS a\n\
         COPY --from=b /x /x\n\
         FROM a AS b\n\
         RUN touch /x\n",
    );
    let log = store.build_fails(&cycle, &[]);
    assert!(
        log.contains("Dockerfile:2") && log.contains("defined before"),
        "{log}"
    );
    let mount = Context::new(
        "FROM busybox AS a\n\
         RUN --mount=type=bind,from=a,target=/m true\n",
    );
    let log = store.build_fails(&mount, &[]);
    assert!(log.contains("Dockerfile:2"), "{log}");
}

/// The inode of `name` under every snapshot of the store that holds `relative`.
fn snapshot_inodes(store: &TestStore, relative: &str) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut inodes: Vec<u64> = std::fs::read_dir(store.root().join("snapshots"))
        .expect("snapshots dir")
        .filter_map(|entry| std::fs::symlink_metadata(entry.ok()?.path().join(relative)).ok())
        .map(|meta| meta.ino())
        .collect();
    inodes.sort_unstable();
    inodes
}

#[test]
fn copy_after_a_change_starts_from_the_last_result_and_gives_the_same_layer() {
    let store = TestStore::with_busybox();
    let context = Context::new("FROM busybox\nCOPY app /app\nRUN cat /app/a.txt > /seen\n")
        .file("app/a.txt", "first\n")
        .file("app/b.txt", "unchanged\n")
        .file("app/sub/c.txt", "deep\n");
    std::os::unix::fs::symlink("a.txt", context.path().join("app/link")).unwrap();
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let first = store.build(&context, "incremental:1", &epoch);
    assert_eq!(first.read("/seen"), "first\n");

    // One file edited, one added: the COPY re-runs and says why.
    std::fs::write(context.path().join("app/a.txt"), "second\n").unwrap();
    std::fs::write(context.path().join("app/sub/d.txt"), "new\n").unwrap();
    let second = store.build(&context, "incremental:2", &epoch);
    assert!(
        second.log.contains("file app/a.txt changed"),
        "{}",
        second.log
    );
    assert_eq!(second.read("/app/a.txt"), "second\n");
    assert_eq!(second.read("/app/sub/d.txt"), "new\n");
    assert_eq!(second.read("/app/b.txt"), "unchanged\n");
    assert_eq!(second.read("/app/link"), "second\n");
    assert_eq!(second.read("/seen"), "second\n");
    // The unchanged file is the last result's own inode; the edited one is new.
    let shared = snapshot_inodes(&store, "app/b.txt");
    assert_eq!(shared.len(), 2, "two COPY snapshots hold app/b.txt");
    assert_eq!(
        shared[0], shared[1],
        "app/b.txt linked from the last result"
    );
    let edited = snapshot_inodes(&store, "app/a.txt");
    assert_ne!(edited[0], edited[1], "app/a.txt written anew");
    // The first image is untouched by the second build.
    assert_eq!(store.cat("incremental:1", "/app/a.txt"), "first\n");
    assert!(
        !store
            .run("incremental:1", &["ls", "/app/sub"])
            .contains("d.txt")
    );

    // A full copy of the same context makes the same layers.
    let mut no_cache = vec!["--no-cache"];
    no_cache.extend_from_slice(&epoch);
    store.build(&context, "incremental:full", &no_cache);
    assert_eq!(
        store.inspect("incremental:2")["RootFS"]["Layers"],
        store.inspect("incremental:full")["RootFS"]["Layers"]
    );

    // A removed file sends the COPY the whole way: nothing of the last result survives.
    std::fs::remove_file(context.path().join("app/b.txt")).unwrap();
    let third = store.build(&context, "incremental:3", &epoch);
    assert!(!third.exists("/app/b.txt"));
    assert_eq!(third.read("/app/a.txt"), "second\n");
    store.fsck();
}

#[test]
fn copy_of_many_files_keeps_every_file_mode_and_hard_link() {
    use std::os::unix::fs::MetadataExt;
    let store = TestStore::with_busybox();
    let mut context = Context::new("FROM busybox\nCOPY many /many\n");
    for index in 0..300 {
        let mode = if index % 3 == 0 { 0o755 } else { 0o640 };
        context = context.bytes(
            &format!("many/d{}/f{index}", index % 7),
            format!("content {index}\n").as_bytes(),
            mode,
        );
    }
    std::fs::hard_link(
        context.path().join("many/d0/f0"),
        context.path().join("many/d1/linked"),
    )
    .unwrap();
    let built = store.build(&context, "many", &[]);
    for index in 0..300 {
        let path = format!("/many/d{}/f{index}", index % 7);
        assert_eq!(built.read(&path), format!("content {index}\n"));
        let mode = if index % 3 == 0 { 0o755 } else { 0o640 };
        assert_eq!(built.owner_mode(&path), (mode, 0, 0), "{path}");
    }
    let first = std::fs::metadata(built.path("/many/d0/f0")).unwrap();
    let linked = std::fs::metadata(built.path("/many/d1/linked")).unwrap();
    assert_eq!(first.ino(), linked.ino(), "hard link kept");
}

/// Most of a large COPY's files are made in the step's upper dir directly, not through its
/// overlay; where the image has the destination directory (here reached through a symlink)
/// they go through the overlay. Both must give the image the same files.
#[test]
fn copy_of_many_files_into_new_and_existing_directories_of_the_image() {
    let store = TestStore::with_busybox();
    let mut context = Context::new(
        "FROM busybox\n\
         RUN mkdir -p /real/sub && ln -s /real /link && echo old > /real/sub/f0 \
         && echo kept > /real/sub/kept\n\
         COPY many /link/sub/\n\
         COPY many /fresh/\n",
    );
    for index in 0..150 {
        let mode = if index % 2 == 0 { 0o755 } else { 0o600 };
        context = context.bytes(
            &format!("many/f{index}"),
            format!("new {index}\n").as_bytes(),
            mode,
        );
    }
    context = context.file("many/deeper/g", "deeper\n");
    let built = store.build(&context, "many-dirs", &[]);
    for dir in ["/real/sub", "/fresh"] {
        for index in 0..150 {
            let path = format!("{dir}/f{index}");
            assert_eq!(built.read(&path), format!("new {index}\n"), "{path}");
            let mode = if index % 2 == 0 { 0o755 } else { 0o600 };
            assert_eq!(built.owner_mode(&path), (mode, 0, 0), "{path}");
        }
        assert_eq!(built.read(&format!("{dir}/deeper/g")), "deeper\n");
    }
    assert_eq!(
        built.read("/real/sub/kept"),
        "kept\n",
        "the image's file stays"
    );
    let link = std::fs::symlink_metadata(built.path("/link")).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink stays a symlink");
}

/// The entries of an image's COPY layer (its second: a plain tar in the store) as `tar tv` shows them,
/// contents hashed, the mtime of the destination (`/app`, `/big`) left out: the build made
/// that directory (it is not copied from the context), so it has the time of the build, here
/// as with BuildKit.
fn copy_layer_entries(store: &TestStore, image: &str) -> Vec<String> {
    let layers = store.inspect(image)["RootFS"]["Layers"].clone();
    let top = layers[1].as_str().unwrap();
    let blob = store
        .root()
        .join("blobs/sha256")
        .join(top.trim_start_matches("sha256:"));
    let mut archive = tar::Archive::new(std::fs::File::open(blob).unwrap());
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        let destination = path.ends_with('/') && !path.trim_end_matches('/').contains('/');
        let mtime = if destination {
            0
        } else {
            header.mtime().unwrap()
        };
        entries.push(format!(
            "{path} {:?} {:o} {}:{} {mtime} {:?} {}",
            header.entry_type(),
            header.mode().unwrap(),
            header.uid().unwrap(),
            header.gid().unwrap(),
            header.link_name().unwrap(),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content)),
        ));
    }
    entries
}

/// An incremental COPY's layer holds what a full copy's holds.
fn assert_same_copy_layer(store: &TestStore, incremental: &str, full: &str) {
    assert_eq!(
        copy_layer_entries(store, incremental),
        copy_layer_entries(store, full)
    );
}

/// How many directories a snapshot of the store is made of, by ChainID: stacked ones name
/// the one they lie on in `stacks/<id>/lower`.
fn stack_depths(store: &TestStore) -> Vec<usize> {
    let stacks = store.root().join("stacks");
    let depth = |mut id: String| {
        let mut depth = 1;
        while let Ok(lower) = std::fs::read_to_string(stacks.join(&id).join("lower")) {
            id = lower.trim().trim_start_matches("sha256:").to_owned();
            depth += 1;
        }
        depth
    };
    std::fs::read_dir(&stacks)
        .expect("stacks dir")
        .map(|entry| depth(entry.unwrap().file_name().to_string_lossy().into_owned()))
        .collect()
}

#[test]
fn copy_after_a_change_stacks_the_changes_on_the_last_result() {
    let store = TestStore::with_busybox();
    let context = Context::new("FROM busybox\nCOPY app /app\nRUN cat /app/a.txt > /seen\n")
        .file("app/a.txt", "first\n")
        .file("app/b.txt", "unchanged\n")
        .file("app/sub/c.txt", "deep\n")
        .symlink("app/link", "a.txt");
    store.build(&context, "stacked:1", &[]);
    assert!(stack_depths(&store).is_empty());

    std::fs::write(context.path().join("app/a.txt"), "second\n").unwrap();
    std::fs::write(context.path().join("app/sub/d.txt"), "new\n").unwrap();
    let second = store.build(&context, "stacked:2", &[]);
    assert!(
        second.log.contains("file app/a.txt changed"),
        "{}",
        second.log
    );
    // The layer (exported from its tar) holds every file; the stacked snapshot only the
    // changed ones; a container sees them all through it.
    assert_eq!(second.read("/app/a.txt"), "second\n");
    assert_eq!(second.read("/app/b.txt"), "unchanged\n");
    assert_eq!(second.read("/app/sub/c.txt"), "deep\n");
    assert_eq!(second.read("/app/sub/d.txt"), "new\n");
    assert_eq!(second.read("/seen"), "second\n");
    assert_eq!(stack_depths(&store), [2]);
    let stack = std::fs::read_dir(store.root().join("stacks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(stack.join("upper/app/a.txt").is_file());
    assert!(!stack.join("upper/app/b.txt").exists());
    assert_eq!(
        store.run(
            "stacked:2",
            &["cat", "/app/b.txt", "/app/link", "/app/sub/d.txt"]
        ),
        "unchanged\nsecond\nnew\n"
    );
    assert_eq!(store.cat("stacked:1", "/app/a.txt"), "first\n");

    // A full copy of the same context makes the same layers.
    store.build(&context, "stacked:full", &["--no-cache"]);
    assert_same_copy_layer(&store, "stacked:2", "stacked:full");

    // Edit after edit, the stack grows to its limit and the next result is whole again.
    for edit in 3..=12 {
        std::fs::write(context.path().join("app/a.txt"), format!("edit {edit}\n")).unwrap();
        let built = store.build(&context, &format!("stacked:{edit}"), &[]);
        assert_eq!(built.read("/seen"), format!("edit {edit}\n"));
        assert!(stack_depths(&store).iter().all(|depth| *depth <= 8));
    }
    assert_eq!(
        store.run("stacked:12", &["cat", "/app/a.txt", "/app/b.txt"]),
        "edit 12\nunchanged\n"
    );
    store.build(&context, "stacked:full", &["--no-cache"]);
    assert_same_copy_layer(&store, "stacked:12", "stacked:full");

    // Collection keeps what the last image's stack lies on, and nothing else of the edits.
    let mut tags: Vec<String> = (1..=11).map(|n| format!("stacked:{n}")).collect();
    tags.push("stacked:full".to_owned());
    let mut rmi = vec!["rmi"];
    rmi.extend(tags.iter().map(String::as_str));
    store.rbuild(&rmi);
    store.rbuild(&["system", "prune", "-f"]);
    let depths = stack_depths(&store);
    assert_eq!(depths.len(), depths.iter().max().unwrap() - 1, "{depths:?}");
    assert_eq!(
        store.run("stacked:12", &["cat", "/app/a.txt", "/app/sub/c.txt"]),
        "edit 12\ndeep\n"
    );
    store.fsck();
}

#[test]
fn an_entry_become_another_kind_is_copied_the_whole_way() {
    let store = TestStore::with_busybox();
    let context = Context::new("FROM busybox\nCOPY app /app\n").file("app/a.txt", "a\n");
    std::fs::create_dir(context.path().join("app/x")).unwrap();
    store.build(&context, "kind:1", &[]);
    std::fs::remove_dir(context.path().join("app/x")).unwrap();
    std::fs::write(context.path().join("app/x"), "now a file\n").unwrap();
    let second = store.build(&context, "kind:2", &[]);
    assert_eq!(second.read("/app/x"), "now a file\n");
    assert_eq!(
        store.run("kind:2", &["cat", "/app/x", "/app/a.txt"]),
        "now a file\na\n"
    );
    store.build(&context, "kind:full", &["--no-cache"]);
    assert_same_copy_layer(&store, "kind:2", "kind:full");
}

#[test]
fn a_large_copy_is_written_while_the_next_step_runs_and_gives_the_same_layers() {
    let store = TestStore::with_busybox();
    let context = Context::new("FROM busybox\nCOPY big /big\nRUN wc -c /big/a /big/b > /sizes\n")
        .bytes("big/a", &vec![1u8; 12 << 20], 0o644)
        .bytes("big/b", &vec![2u8; 12 << 20], 0o600);
    let sizes = " 12582912 /big/a\n 12582912 /big/b\n 25165824 total\n";
    let first = store.build(&context, "big:1", &[]);
    assert_eq!(first.read("/sizes"), sizes);
    // Edited in place: stacked over the first result, whose 24 MiB layer is copied.
    std::fs::write(context.path().join("big/b"), vec![3u8; 12 << 20]).unwrap();
    let second = store.build(&context, "big:2", &[]);
    assert_eq!(second.read("/sizes"), sizes);
    assert_eq!(
        std::fs::read(second.path("/big/b")).unwrap(),
        vec![3u8; 12 << 20]
    );
    assert_eq!(stack_depths(&store), [2]);
    let again = store.build(&context, "big:3", &[]);
    assert_eq!(count_cached(&again.log), 2, "{}", again.log);
    store.build(&context, "big:full", &["--no-cache"]);
    assert_same_copy_layer(&store, "big:2", "big:full");
    store.fsck();
}

fn count_cached(log: &str) -> usize {
    log.matches("CACHED").count()
}
