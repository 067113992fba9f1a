//! `rbuild build`, instruction by instruction: each test builds a real image from the offline
//! busybox base and checks the result by reading its files (exported with
//! `--output type=local`), running it, or reading its config and history — against what
//! BuildKit (docker build) does.

mod build_support;

use build_support::{Context, TestStore};
use serde_json::json;

#[test]
fn run_shell_form_expands_in_the_shell_and_exec_form_does_not() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ENV GREETING=hello\n\
         RUN echo \"$GREETING from $0\" > /shell\n\
         RUN [\"/bin/sh\", \"-c\", \"echo exec $GREETING > /exec\"]\n\
         RUN [\"/bin/echo\", \"$GREETING\"]\n\
         RUN [\"/bin/sh\", \"-c\", \"echo \\\"$1\\\" > /literal\", \"sh\", \"$GREETING\"]\n",
    );
    let built = store.build(&context, "run-forms", &[]);
    assert_eq!(built.read("/shell"), "hello from /bin/sh\n");
    assert_eq!(built.read("/exec"), "exec hello\n");
    // Exec form: no expansion by the builder, the word reaches the program as written.
    assert_eq!(built.read("/literal"), "$GREETING\n");
}

#[test]
fn shell_changes_the_shell_of_later_run_cmd_and_entrypoint() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN echo \"[$MARK]\" > /before\n\
         SHELL [\"/usr/bin/env\", \"MARK=from-shell\", \"/bin/sh\", \"-c\"]\n\
         RUN echo \"[$MARK]\" > /after\n\
         CMD echo \"[$MARK]\"\n",
    );
    let built = store.build(&context, "shell", &[]);
    assert_eq!(built.read("/before"), "[]\n");
    assert_eq!(built.read("/after"), "[from-shell]\n");
    let config = store.container_config("shell");
    assert_eq!(
        config["Shell"],
        json!(["/usr/bin/env", "MARK=from-shell", "/bin/sh", "-c"])
    );
    assert_eq!(
        config["Cmd"],
        json!([
            "/usr/bin/env",
            "MARK=from-shell",
            "/bin/sh",
            "-c",
            "echo \"[$MARK]\""
        ])
    );
    assert_eq!(store.run("shell", &[]), "[from-shell]\n");
}

#[test]
fn run_heredocs_run_as_scripts() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ENV WHO=heredoc\n\
         RUN <<EOF\n\
         echo one > /plain\n\
         echo \"two $WHO\" >> /plain\n\
         EOF\n\
         RUN <<EOF\n\
         #!/usr/bin/awk -f\n\
         BEGIN { print \"awk ran me\" > \"/shebang\" }\n\
         EOF\n\
         RUN cat > /first <<ONE && cat > /second <<'TWO'\n\
         first $WHO\n\
         ONE\n\
         second $WHO\n\
         TWO\n\
         RUN <<-EOF\n\
         \techo tabs stripped > /chomped\n\
         \tEOF\n",
    );
    let built = store.build(&context, "heredocs", &[]);
    assert_eq!(built.read("/plain"), "one\ntwo heredoc\n");
    assert_eq!(built.read("/shebang"), "awk ran me\n");
    assert_eq!(built.read("/first"), "first heredoc\n");
    assert_eq!(built.read("/second"), "second $WHO\n");
    assert_eq!(built.read("/chomped"), "tabs stripped\n");
    // The script of a `#!` heredoc is mounted for the step only.
    assert!(!built.exists("/dev/pipes/EOF"));
}

#[test]
fn copy_heredocs_expand_unless_the_marker_is_quoted() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ARG NAME=world\n\
         COPY <<EOF /expanded\n\
         hello ${NAME}\n\
         EOF\n\
         COPY <<\"EOF\" /verbatim\n\
         hello ${NAME}\n\
         EOF\n\
         COPY --chmod=755 <<A <<B /dir/\n\
         a\n\
         A\n\
         b\n\
         B\n",
    );
    let built = store.build(&context, "copy-heredocs", &["--build-arg", "NAME=rbuild"]);
    assert_eq!(built.read("/expanded"), "hello rbuild\n");
    assert_eq!(built.read("/verbatim"), "hello ${NAME}\n");
    assert_eq!(built.read("/dir/A"), "a\n");
    assert_eq!(built.read("/dir/B"), "b\n");
    assert_eq!(built.owner_mode("/expanded"), (0o644, 0, 0));
    assert_eq!(built.owner_mode("/dir/B").0, 0o755);
}

#[test]
fn run_sees_declared_args_and_env_but_the_image_keeps_only_env() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ARG FROM_ARG=default\n\
         ARG NO_DEFAULT\n\
         ARG OVERRIDDEN=arg\n\
         ENV FROM_ENV=env-${FROM_ARG} OVERRIDDEN=env\n\
         RUN echo \"$FROM_ARG|$FROM_ENV|${NO_DEFAULT-unset}|$OVERRIDDEN|${UNDECLARED-unset}\" > /vars\n",
    );
    let built = store.build(&context, "env-args", &[]);
    assert_eq!(built.read("/vars"), "default|env-default|unset|env|unset\n");
    let built = store.build(
        &context,
        "env-args2",
        &[
            "--build-arg",
            "FROM_ARG=cli",
            "--build-arg",
            "NO_DEFAULT=given",
            "--build-arg",
            "UNDECLARED=x",
        ],
    );
    assert_eq!(built.read("/vars"), "cli|env-cli|given|env|unset\n");
    let env = store.container_config("env-args2")["Env"].clone();
    assert_eq!(
        env,
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FROM_ENV=env-cli",
            "OVERRIDDEN=env"
        ])
    );
}

#[test]
fn user_by_name_and_by_number_owns_what_run_creates() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         USER app\n\
         RUN id -u > /tmp/by-name && id -g >> /tmp/by-name\n\
         USER 1234:5678\n\
         RUN touch /tmp/by-number && id -u > /tmp/ids && id -g >> /tmp/ids\n\
         USER nobody:app\n\
         RUN touch /tmp/named-group\n",
    );
    let built = store.build(&context, "users", &[]);
    assert_eq!(built.read("/tmp/by-name"), "1000\n1000\n");
    assert_eq!(built.owner_mode("/tmp/by-name").1, 1000);
    assert_eq!(built.owner_mode("/tmp/by-name").2, 1000);
    assert_eq!(built.read("/tmp/ids"), "1234\n5678\n");
    let (_, uid, gid) = built.owner_mode("/tmp/by-number");
    assert_eq!((uid, gid), (1234, 5678));
    let (_, uid, gid) = built.owner_mode("/tmp/named-group");
    assert_eq!((uid, gid), (65534, 1000));
    assert_eq!(store.container_config("users")["User"], json!("nobody:app"));
    assert_eq!(store.run("users", &["id", "-u"]), "65534\n");
}

#[test]
fn workdir_resolves_relative_paths_and_creates_directories_owned_by_user() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ENV BASE=/srv\n\
         WORKDIR $BASE/a\n\
         WORKDIR b\n\
         RUN pwd > /pwd\n\
         USER app\n\
         WORKDIR /home/app/work/deep\n\
         RUN touch mine\n\
         WORKDIR ..\n",
    );
    let built = store.build(&context, "workdir", &[]);
    assert_eq!(built.read("/pwd"), "/srv/a/b\n");
    assert_eq!(built.owner_mode("/srv/a/b"), (0o755, 0, 0));
    assert_eq!(built.owner_mode("/home/app/work/deep"), (0o755, 1000, 1000));
    assert_eq!(built.owner_mode("/home/app/work"), (0o755, 1000, 1000));
    assert_eq!(built.owner_mode("/home/app/work/deep/mine").1, 1000);
    assert_eq!(
        store.container_config("workdir")["WorkingDir"],
        json!("/home/app/work")
    );
    assert_eq!(store.run("workdir", &["pwd"]), "/home/app/work\n");
}

#[test]
fn config_instructions_set_the_image_config() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ENV A=1 B=\"two words\"\n\
         ENV A=one\n\
         LABEL org.example.name=\"rbuild test\" version=1\n\
         EXPOSE 80 53/udp 8000-8001\n\
         VOLUME /data\n\
         VOLUME [\"/logs\"]\n\
         USER app\n\
         WORKDIR /app\n\
         STOPSIGNAL SIGUSR1\n\
         HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q localhost || exit 1\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         ONBUILD RUN echo triggered\n\
         ENTRYPOINT [\"/bin/echo\"]\n\
         CMD [\"default\", \"args\"]\n\
         MAINTAINER someone@example.com\n",
    );
    store.build(&context, "config", &["--label", "from.cli=yes"]);
    let config = store.config("config");
    assert_eq!(config["author"], json!("someone@example.com"));
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=one",
            "B=two words"
        ])
    );
    assert_eq!(
        c["Labels"],
        json!({"org.example.name": "rbuild test", "version": "1", "from.cli": "yes"})
    );
    assert_eq!(
        c["ExposedPorts"],
        json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
    );
    assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
    assert_eq!(c["User"], json!("app"));
    assert_eq!(c["WorkingDir"], json!("/app"));
    assert_eq!(c["StopSignal"], json!("SIGUSR1"));
    assert_eq!(
        c["Healthcheck"],
        json!({
            "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
            "Interval": 5_000_000_000u64,
            "Timeout": 2_000_000_000u64,
            "Retries": 4
        })
    );
    assert_eq!(c["Shell"], json!(["/bin/sh", "-ec"]));
    assert_eq!(c["OnBuild"], json!(["RUN echo triggered"]));
    assert_eq!(c["Entrypoint"], json!(["/bin/echo"]));
    assert_eq!(c["Cmd"], json!(["default", "args"]));
    assert_eq!(c["ArgsEscaped"], json!(true), "BuildKit sets it with CMD");
    assert_eq!(store.run("config", &[]), "default args\n");
}

#[test]
fn a_new_entrypoint_clears_an_inherited_cmd_but_not_one_set_in_the_same_stage() {
    let store = TestStore::with_busybox();
    let base = Context::new("FROM busybox\nCMD [\"inherited\"]\n");
    store.build(&base, "with-cmd", &[]);
    let cleared = Context::new("FROM with-cmd\nENTRYPOINT [\"/bin/echo\"]\n");
    store.build(&cleared, "cleared", &[]);
    let config = store.container_config("cleared");
    assert_eq!(config["Entrypoint"], json!(["/bin/echo"]));
    assert!(config["Cmd"].is_null(), "inherited CMD kept: {config}");
    assert_eq!(store.run("cleared", &[]), "\n");

    let kept = Context::new("FROM with-cmd\nCMD [\"mine\"]\nENTRYPOINT [\"/bin/echo\"]\n");
    store.build(&kept, "kept", &[]);
    assert_eq!(store.container_config("kept")["Cmd"], json!(["mine"]));
    assert_eq!(store.run("kept", &[]), "mine\n");

    // Through a stage too: CMD set in the parent stage is inherited, so cleared.
    let staged = Context::new(
        "FROM busybox AS parent\nCMD [\"parent\"]\nFROM parent\nENTRYPOINT [\"/bin/echo\", \"shell\"]\n",
    );
    store.build(&staged, "staged", &[]);
    assert!(store.container_config("staged")["Cmd"].is_null());
    // An empty list is written as no value at all.
    let empty = Context::new("FROM with-cmd\nENTRYPOINT []\n");
    store.build(&empty, "empty-entrypoint", &[]);
    let config = store.container_config("empty-entrypoint");
    assert!(config["Entrypoint"].is_null(), "{config}");
    assert!(config["Cmd"].is_null(), "{config}");
    // A shell-form ENTRYPOINT is wrapped in the shell.
    let shell_form = Context::new("FROM busybox\nENTRYPOINT echo hi\n");
    store.build(&shell_form, "shell-entrypoint", &[]);
    assert_eq!(
        store.container_config("shell-entrypoint")["Entrypoint"],
        json!(["/bin/sh", "-c", "echo hi"])
    );
}

#[test]
fn onbuild_triggers_of_a_base_image_run_first_in_the_stage_that_uses_it() {
    let store = TestStore::with_busybox();
    let base = Context::new(
        "FROM busybox\n\
         ONBUILD COPY marker.txt /from-trigger.txt\n\
         ONBUILD RUN echo ran > /trigger-ran\n\
         RUN echo base > /base\n",
    );
    let base_fs = store.build(&base, "onbuild-base", &[]);
    assert_eq!(
        store.container_config("onbuild-base")["OnBuild"],
        json!([
            "COPY marker.txt /from-trigger.txt",
            "RUN echo ran > /trigger-ran"
        ])
    );
    assert!(
        !base_fs.exists("/trigger-ran"),
        "triggers ran in their own image"
    );

    let child = Context::new(
        "FROM onbuild-base\n\
         RUN test -f /trigger-ran && cat /from-trigger.txt > /seen-by-child\n",
    )
    .file("marker.txt", "from the child's context\n");
    let built = store.build(&child, "onbuild-child", &[]);
    assert_eq!(built.read("/seen-by-child"), "from the child's context\n");
    assert_eq!(built.read("/base"), "base\n");
    // Triggers are consumed: the child's image has none.
    assert!(store.container_config("onbuild-child")["OnBuild"].is_null());

    // A trigger may read from a stage of the child's Dockerfile that only it needs.
    let reader = Context::new("FROM busybox\nONBUILD COPY --from=builder /made /made\n");
    store.build(&reader, "onbuild-reader", &[]);
    let child = Context::new(
        "FROM busybox AS builder\n\
         RUN echo made-by-builder > /made\n\
         FROM onbuild-reader\n\
         RUN cat /made > /seen\n",
    );
    let built = store.build(&child, "onbuild-reader-child", &[]);
    assert_eq!(built.read("/seen"), "made-by-builder\n");

    // ONBUILD in a stage fires in a stage built FROM it.
    let staged = Context::new(
        "FROM busybox AS parent\n\
         ONBUILD RUN echo fired > /fired\n\
         FROM parent\n\
         RUN cat /fired > /copy\n",
    );
    let built = store.build(&staged, "onbuild-staged", &[]);
    assert_eq!(built.read("/copy"), "fired\n");
}

#[test]
fn arg_scoping_follows_buildkit() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "ARG BASE=busybox\n\
         ARG V=global\n\
         FROM ${BASE} AS first\n\
         RUN echo \"[$V]\" > /not-redeclared\n\
         ARG V\n\
         RUN echo \"[$V]\" > /redeclared\n\
         ARG STAGE_ONLY=first\n\
         FROM busybox\n\
         ARG TARGETARCH TARGETOS\n\
         RUN echo \"[${STAGE_ONLY-}]\" > /other-stage && echo \"$TARGETOS/$TARGETARCH\" > /platform\n\
         COPY --from=first /not-redeclared /redeclared /\n",
    );
    let built = store.build(&context, "args", &[]);
    assert_eq!(built.read("/not-redeclared"), "[]\n");
    assert_eq!(built.read("/redeclared"), "[global]\n");
    assert_eq!(built.read("/other-stage"), "[]\n");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(built.read("/platform"), format!("linux/{arch}\n"));
    let built = store.build(&context, "args-cli", &["--build-arg", "V=cli"]);
    assert_eq!(built.read("/redeclared"), "[cli]\n");
    assert_eq!(built.read("/not-redeclared"), "[]\n");
}

#[test]
fn history_reads_as_docker_build_writes_it() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         ARG VERSION=1.0\n\
         ENV APP=demo\n\
         LABEL stage=test\n\
         RUN echo $VERSION > /version\n\
         COPY a.txt b.txt ./\n\
         WORKDIR /app\n\
         WORKDIR /tmp\n\
         RUN true\n\
         USER app\n\
         EXPOSE 80 53/udp\n\
         VOLUME /data\n\
         ONBUILD RUN true\n\
         HEALTHCHECK --interval=30s --retries=3 CMD true\n\
         STOPSIGNAL SIGTERM\n\
         SHELL [\"/bin/sh\", \"-c\"]\n\
         ENTRYPOINT [\"/bin/sh\"]\n\
         CMD [\"-c\", \"echo hi\"]\n\
         COPY <<EOF /inline.txt\n\
         inline\n\
         EOF\n\
         RUN <<EOF\n\
         echo heredoc > /tmp/heredoc\n\
         EOF\n\
         RUN <<EOF\n\
         #!/bin/sh\n\
         echo script > /tmp/script\n\
         EOF\n",
    )
    .file("a.txt", "a\n")
    .file("b.txt", "b\n");
    store.build(&context, "history", &[]);
    let history = store.history("history");
    let base_entries = store.history("busybox").len();
    let ours: Vec<(&str, bool)> = history[base_entries..]
        .iter()
        .map(|(by, empty)| (by.as_str(), *empty))
        .collect();
    assert_eq!(
        ours,
        vec![
            ("ARG VERSION=1.0", true),
            ("ENV APP=demo", true),
            ("LABEL stage=test", true),
            (
                "RUN |1 VERSION=1.0 /bin/sh -c echo $VERSION > /version # buildkit",
                false
            ),
            ("COPY a.txt b.txt ./ # buildkit", false),
            ("WORKDIR /app", false),
            // /tmp exists: the step changes nothing, so no layer.
            ("WORKDIR /tmp", true),
            ("RUN |1 VERSION=1.0 /bin/sh -c true # buildkit", true),
            ("USER app", true),
            ("EXPOSE [80/tcp 53/udp]", true),
            ("VOLUME [/data]", true),
            (
                "HEALTHCHECK {Test:[CMD-SHELL true] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}",
                true
            ),
            ("STOPSIGNAL SIGTERM", true),
            ("SHELL [/bin/sh -c]", true),
            ("ENTRYPOINT [\"/bin/sh\"]", true),
            ("CMD [\"-c\" \"echo hi\"]", true),
            ("COPY <<EOF /inline.txt # buildkit", false),
            (
                "RUN |1 VERSION=1.0 /bin/sh -c echo heredoc > /tmp/heredoc\n # buildkit",
                false
            ),
            // A `#!` heredoc is a file the shell runs.
            (
                "RUN |1 VERSION=1.0 /bin/sh -c /dev/pipes/EOF # buildkit",
                false
            ),
        ]
    );
    let config = store.config("history");
    let layers = config["rootfs"]["diff_ids"].as_array().unwrap().len();
    let non_empty = history.iter().filter(|(_, empty)| !empty).count();
    assert_eq!(layers, non_empty, "one layer per non-empty history entry");
}

#[test]
fn a_scratch_stage_starts_with_buildkits_empty_image_config() {
    let store = TestStore::with_busybox();
    let context = Context::new("FROM scratch\nCOPY a.txt /\n").file("a.txt", "a\n");
    let built = store.build(&context, "scratch", &[]);
    assert_eq!(built.list("/"), ["a.txt"]);
    let config = store.container_config("scratch");
    assert_eq!(config["WorkingDir"], json!("/"));
    assert_eq!(
        config["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
}

#[test]
fn deletions_in_run_become_whiteouts_and_opaque_directories() {
    let store = TestStore::with_busybox();
    let context = Context::new(
        "FROM busybox\n\
         RUN mkdir -p /data/sub && echo old > /data/sub/old && echo gone > /data/gone\n\
         RUN rm /data/gone /etc/group && rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/new\n\
         RUN rm -rf /home && mkdir /home && touch /home/fresh\n",
    );
    let built = store.build(&context, "whiteouts", &[]);
    assert!(!built.exists("/data/gone"));
    assert!(
        !built.exists("/etc/group"),
        "a base image file deleted by RUN is gone"
    );
    assert_eq!(built.list("/data/sub"), ["new"]);
    assert_eq!(built.list("/home"), ["fresh"]);
    // Running the image shows the same tree as the export.
    assert_eq!(store.run("whiteouts", &["ls", "/data/sub"]), "new\n");
    let cat = store.rbuild_output(&["run", "--rm", "whiteouts", "cat", "/etc/group"]);
    assert!(!cat.status.success(), "/etc/group is still there when run");
}

#[test]
fn from_expands_global_args_overridden_by_build_args() {
    let store = TestStore::with_busybox();
    let other = Context::new("FROM busybox\nRUN echo other > /which\n");
    store.build(&other, "other-base", &[]);
    let context = Context::new(
        "ARG BASE=busybox\n\
         FROM ${BASE}\n\
         ENV PORT=8080\n\
         EXPOSE $PORT\n\
         HEALTHCHECK NONE\n\
         RUN cat /which 2>/dev/null || echo busybox > /which\n",
    );
    let built = store.build(&context, "from-default", &[]);
    assert_eq!(built.read("/which"), "busybox\n");
    let config = store.container_config("from-default");
    assert_eq!(config["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(config["Healthcheck"], json!({"Test": ["NONE"]}));
    let built = store.build(&context, "from-arg", &["--build-arg", "BASE=other-base"]);
    assert_eq!(built.read("/which"), "other\n");
}

#[test]
fn copy_dot_honours_dockerignore_with_exceptions() {
    let store = TestStore::with_busybox();
    let context = Context::new("FROM busybox\nCOPY . /ctx/\n")
        .file(".dockerignore", "*.log\n!keep.log\nbuild/\n**/*.tmp\n")
        .file("app.txt", "app\n")
        .file("debug.log", "d\n")
        .file("keep.log", "k\n")
        .file("build/out", "o\n")
        .file("src/x.tmp", "t\n")
        .file("src/x.rs", "r\n");
    let built = store.build(&context, "dockerignore", &[]);
    assert_eq!(
        built.list("/ctx"),
        [".dockerignore", "Dockerfile", "app.txt", "keep.log", "src"]
    );
    assert_eq!(built.list("/ctx/src"), ["x.rs"]);
}
