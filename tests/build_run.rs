//! `rbuild build`, RUN's flags: `--mount` (bind, cache, tmpfs, secret, ssh), `--network`, and
//! what a failing RUN reports and leaves behind. Each test builds a real image from the offline
//! busybox base and checks its files, its config or the build's log.

mod build_support;

use build_support::{Context, HttpServer, Served, TestStore};

#[test]
fn bind_mounts_from_the_context_are_read_only_unless_rw_and_writes_are_discarded() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN --mount=type=bind,source=data,target=/mnt cat /mnt/input > /copied\n\
         RUN --mount=type=bind,target=/ctx sh -c 'cat /ctx/data/input > /whole; \
             if touch /ctx/new 2>/dev/null; then echo writable; else echo read-only; fi > /ro'\n\
         RUN --mount=type=bind,source=data,target=/rw,rw sh -c \
             'echo scribble > /rw/input && echo more > /rw/new && cat /rw/input > /rw-saw'\n\
         RUN --mount=type=bind,source=data/input,target=/single.txt cat /single.txt > /single\n",
    )
    .file("data/input", "from the context\n");
    let built = store.build(&context, "bind-context", &[]);
    assert_eq!(built.read("/copied"), "from the context\n");
    assert_eq!(built.read("/whole"), "from the context\n");
    assert_eq!(built.read("/ro"), "read-only\n");
    assert_eq!(built.read("/rw-saw"), "scribble\n");
    assert_eq!(built.read("/single"), "from the context\n");
    // Writes through rw went to a throwaway copy: neither the context nor the image has them.
    assert_eq!(
        std::fs::read_to_string(context.path().join("data/input")).unwrap(),
        "from the context\n"
    );
    assert!(!context.path().join("data/new").exists());
    assert!(
        !built.exists("/rw/new"),
        "rw mount writes leaked into the image"
    );
    assert!(!built.exists("/rw/input"));
    assert!(!built.exists("/mnt/input"));
    // Mount points the steps needed are not left in the image (BuildKit removes the stubs).
    for stub in ["/mnt", "/ctx", "/rw", "/single.txt"] {
        assert!(!built.exists(stub), "mount point {stub} left in the image");
    }
}

#[test]
fn bind_mounts_from_the_context_leave_out_what_dockerignore_excludes() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN --mount=type=bind,target=/ctx sh -c 'ls -A /ctx > /listed'\n\
         RUN --mount=type=bind,source=dir,target=/dir,rw sh -c 'ls -A /dir > /listed-rw'\n",
    )
    .file(".dockerignore", "secret.txt\ndir/*.key\n")
    .file("secret.txt", "do not show\n")
    .file("public.txt", "shown\n")
    .file("dir/id.key", "do not show\n")
    .file("dir/readme", "shown\n");
    let built = store.build(&context, "bind-ignore", &[]);
    assert_eq!(
        built.read("/listed"),
        ".dockerignore\nDockerfile\ndir\npublic.txt\n"
    );
    assert_eq!(built.read("/listed-rw"), "readme\n");
}

#[test]
fn bind_mounts_from_a_stage_and_from_an_image() {
    let store = TestStore::with_busybox();
    let other = Context::new("FROM busybox\nRUN echo image > /image.txt\n");
    store.build(&other, "mount-source", &[]);
    let context = Context::new(
        "FROM busybox AS tools\n\
         RUN mkdir /out && echo stage > /out/stage.txt\n\
         FROM busybox\n\
         RUN --mount=type=bind,from=tools,source=/out,target=/tools cat /tools/stage.txt > /from-stage\n\
         RUN --mount=type=bind,from=0,source=/out/stage.txt,target=/one cat /one > /from-index\n\
         RUN --mount=type=bind,from=mount-source,target=/img cat /img/image.txt > /from-image\n\
         RUN --mount=type=bind,from=tools,source=/out,target=/tools sh -c \
             'touch /tools/x 2>/dev/null && echo writable > /stage-ro || echo read-only > /stage-ro'\n",
    );
    let built = store.build(&context, "bind-stage", &[]);
    assert_eq!(built.read("/from-stage"), "stage\n");
    assert_eq!(built.read("/from-index"), "stage\n");
    assert_eq!(built.read("/from-image"), "image\n");
    assert_eq!(built.read("/stage-ro"), "read-only\n");
    assert!(
        !built.exists("/out"),
        "the tools stage's files are not in the image"
    );
}

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_the_image() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; cat /cache/log > /seen'\n\
         RUN --mount=type=cache,id=shared,target=/a echo via-a > /a/note\n\
         RUN --mount=type=cache,id=shared,target=/b,sharing=locked cat /b/note > /via-id\n\
         RUN --mount=type=cache,target=/owned,uid=1000,gid=1000,mode=0700,sharing=private \
             stat -c '%u %g %a' /owned > /owned-stat\n",
    );
    let first = store.build(&context, "cache-1", &[]);
    assert_eq!(first.read("/seen"), "run\n");
    assert_eq!(first.read("/via-id"), "via-a\n");
    assert_eq!(first.read("/owned-stat"), "1000 1000 700\n");
    assert!(
        !first.exists("/cache/log"),
        "cache contents leaked into the image"
    );
    assert!(!first.exists("/a/note"));
    // A second build that re-runs the step finds what the first left in the cache.
    let second = store.build(&context, "cache-2", &["--no-cache"]);
    assert_eq!(second.read("/seen"), "run\nrun\n");
}

#[test]
fn a_cache_mount_from_a_stage_starts_as_that_stage_s_files() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox AS seed\n\
         RUN mkdir -p /seed/sub && echo seeded > /seed/sub/file\n\
         FROM busybox\n\
         RUN --mount=type=cache,target=/cache,from=seed,source=/seed \
             sh -c 'cat /cache/sub/file > /first; echo added > /cache/added'\n\
         RUN --mount=type=cache,target=/cache,from=seed,source=/seed \
             sh -c 'cat /cache/sub/file /cache/added > /second'\n",
    );
    let built = store.build(&context, "cache-from", &[]);
    assert_eq!(built.read("/first"), "seeded\n");
    // The same cache, not seeded again: what the first step added is there.
    assert_eq!(built.read("/second"), "seeded\nadded\n");
    assert!(!built.exists("/cache/added"));
    // Writes to the cache leave the stage it was seeded from as it was.
    let seed = store.build(&context, "cache-seed", &["--target", "seed"]);
    assert_eq!(seed.read("/seed/sub/file"), "seeded\n");
    assert!(!seed.exists("/seed/added"));
}

#[test]
fn tmpfs_mounts_are_tmpfs_and_leave_nothing_behind() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN --mount=type=tmpfs,target=/scratch sh -c \
             'echo temp > /scratch/file && grep \" /scratch \" /proc/mounts | cut -d\" \" -f3 > /fstype'\n",
    );
    let built = store.build(&context, "tmpfs", &[]);
    assert_eq!(built.read("/fstype"), "tmpfs\n");
    assert!(!built.exists("/scratch/file"));
}

#[test]
fn secrets_reach_the_step_but_never_the_image_the_store_or_the_cache_key() {
    let store = TestStore::with_busybox();
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("token");
    std::fs::write(&file, "s3cr3t-file-value").unwrap();
    let context = Context::new(
        "FROM busybox\n\
         RUN --mount=type=secret,id=token sh -c \
             'wc -c < /run/secrets/token > /file-length && stat -c \"%a %u\" /run/secrets/token > /file-stat'\n\
         RUN --mount=type=secret,id=token,target=/etc/token.txt,mode=0440,uid=1000 \
             stat -c '%a %u' /etc/token.txt > /target-stat\n\
         RUN --mount=type=secret,id=fromenv,env=TOKEN sh -c 'printf %s \"$TOKEN\" | sha256sum | cut -c1-64 > /env-sha'\n\
         RUN --mount=type=secret,id=absent sh -c 'test -e /run/secrets/absent && echo present > /absent || echo absent > /absent'\n",
    );
    let secret_file = format!("id=token,src={}", file.display());
    let args = [
        "--secret",
        secret_file.as_str(),
        "--secret",
        "id=fromenv,env=RBUILD_TEST_SECRET",
    ];
    let built = store.build_with_env(
        &context,
        "secrets",
        &args,
        &[("RBUILD_TEST_SECRET", "s3cr3t-env-value")],
    );
    assert_eq!(built.read("/file-length").trim(), "17");
    assert_eq!(built.read("/file-stat"), "400 0\n");
    assert_eq!(built.read("/target-stat"), "440 1000\n");
    let expected = rbuild::image::sha256_digest(b"s3cr3t-env-value");
    assert_eq!(
        format!("sha256:{}", built.read("/env-sha").trim()),
        expected.to_string()
    );
    assert_eq!(built.read("/absent"), "absent\n");
    assert!(!built.exists("/run/secrets/token"));
    assert!(!built.exists("/etc/token.txt"));
    for value in ["s3cr3t-file-value", "s3cr3t-env-value"] {
        assert_eq!(
            store.files_containing(value.as_bytes()),
            Vec::<std::path::PathBuf>::new(),
            "the secret {value} was written into the store"
        );
    }
    let history = store.history("secrets");
    assert!(history.iter().all(|(by, _)| !by.contains("s3cr3t")));

    // BuildKit keeps secrets out of the cache key: a new value reuses the cached step.
    std::fs::write(&file, "another-value-of-another-length").unwrap();
    let again = store.build_with_env(
        &context,
        "secrets-2",
        &args,
        &[("RBUILD_TEST_SECRET", "s3cr3t-env-value")],
    );
    assert_eq!(again.read("/file-length").trim(), "17", "{}", again.log);
    assert!(!again.log.contains("cache miss"), "{}", again.log);

    // A required secret that was not given fails the build.
    let required = Context::new(
        "FROM busybox\nRUN --mount=type=secret,id=missing,required=true cat /run/secrets/missing\n",
    );
    let log = store.build_fails(&required, &[]);
    assert!(log.contains("missing"), "{log}");
}

#[test]
fn ssh_mounts_forward_the_agent_socket() {
    let store = TestStore::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let context = Context::new(
        "FROM busybox\n\
         RUN --mount=type=ssh sh -c 'test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /ssh'\n",
    );
    let built = store.build_with_env(
        &context,
        "ssh",
        &["--ssh", "default"],
        &[("SSH_AUTH_SOCK", socket.to_str().unwrap())],
    );
    assert_eq!(built.read("/ssh"), "/run/buildkit/ssh_agent.0\n");
}

#[test]
fn network_none_cuts_a_step_off_while_the_default_reaches_the_host() {
    let store = TestStore::with_busybox();
    let server = HttpServer::start(vec![(
        "/hello",
        Served {
            body: b"hello over http\n".to_vec(),
            last_modified: None,
        },
    )]);
    let url = server.url("/hello");
    let context = Context::new(&format!(
        "FROM busybox\n\
         RUN wget -q -O /fetched {url}\n\
         RUN --network=none sh -c 'wget -q -O /blocked {url} && echo reached > /none || echo unreachable > /none'\n\
         RUN --network=host wget -q -O /host {url}\n"
    ));
    let built = store.build(&context, "network", &[]);
    assert_eq!(built.read("/fetched"), "hello over http\n");
    assert_eq!(built.read("/none"), "unreachable\n");
    assert_eq!(built.read("/host"), "hello over http\n");

    // --network none on the command line applies to every RUN.
    let cut = Context::new(&format!(
        "FROM busybox\nRUN wget -q -O /x {url} || echo unreachable > /x\n"
    ));
    let built = store.build(&cut, "network-cli", &["--network", "none"]);
    assert_eq!(built.read("/x"), "unreachable\n");
}

#[test]
fn a_failing_run_names_its_line_exit_code_and_output_and_leaves_the_store_consistent() {
    let store = TestStore::with_busybox();
    let dockerfile = "FROM busybox\n\
                      RUN echo first > /first\n\
                      RUN echo line-one-of-output && echo the-last-words >&2 && exit 3\n\
                      RUN echo never > /never\n";
    let context = Context::new(dockerfile);
    let log = store.build_fails(&context, &[]);
    assert!(log.contains("Dockerfile:3"), "no file:line in:\n{log}");
    assert!(log.contains("exit code: 3"), "no exit code in:\n{log}");
    assert!(log.contains("the-last-words"), "no output tail in:\n{log}");
    assert!(
        log.contains("RUN echo line-one-of-output"),
        "no instruction in:\n{log}"
    );
    store.fsck();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(store.root().to_str().unwrap()),
        "mounts left behind:\n{mounts}"
    );
    // Fixed, the build reuses the step that succeeded.
    let fixed = context.dockerfile(
        "FROM busybox\n\
         RUN echo first > /first\n\
         RUN echo fixed > /fixed\n",
    );
    let built = store.build(&fixed, "fixed", &[]);
    assert_eq!(built.read("/fixed"), "fixed\n");
    assert!(built.log.contains("CACHED"), "{}", built.log);
    store.fsck();
}

#[test]
fn proxy_build_args_reach_run_without_entering_history_or_cache_key() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN echo \"[$HTTP_PROXY][$http_proxy][$NO_PROXY][$no_proxy]\" > /proxy\n",
    );
    let built = store.build(
        &context,
        "proxy",
        &[
            "--build-arg",
            "HTTP_PROXY=http://proxy.example:3128",
            "--build-arg",
            "no_proxy=localhost",
        ],
    );
    assert_eq!(
        built.read("/proxy"),
        "[http://proxy.example:3128][http://proxy.example:3128][localhost][localhost]\n"
    );
    assert!(
        store
            .history("proxy")
            .iter()
            .all(|(by, _)| !by.contains("proxy.example")),
        "{:?}",
        store.history("proxy")
    );
    assert!(
        store.container_config("proxy")["Env"]
            .to_string()
            .find("proxy.example")
            .is_none()
    );
    // Another proxy is not another step: BuildKit keeps proxies out of the cache key.
    let again = store.build(
        &context,
        "proxy-2",
        &["--build-arg", "HTTP_PROXY=http://other.example:8080"],
    );
    assert!(!again.log.contains("cache miss"), "{}", again.log);
}
